"""`effdl-ros replay`: bags and sequences through an in-process graph, report, --record, bad input."""
import json
from pathlib import Path

import numpy as np
import pytest

from effdl_ros.bench.replay import Pacer, open_input
from effdl_ros.cli.main import main
from effdl_ros.data import bags
from effdl_ros.errors import ConfigError, DataError
from effdl_ros.resources import shared_data_dir
from effdl_ros.runtime import Node
from effdl_ros.runtime.messages import Detection2D, Detection2DArray, EnergyReport, Image
from effdl_ros.runtime.qos import latched, qos_profile_sensor_data

ROOT = Path(__file__).resolve().parents[1]
VOT = shared_data_dir() / "tracking" / "vot_bag"
SPOT = shared_data_dir() / "rosbags" / "spot_ros1"


def real_frames(n):
    import cv2

    files = sorted((ROOT / "samples" / "vtest").glob("*.jpg"))[:n]
    return [np.ascontiguousarray(cv2.imread(str(f))[..., ::-1]) for f in files]


class StillTracker(Node):
    """A stand-in tracker: answers every image with its init box moved 3 px right; reports energy."""

    def __init__(self, **kwargs):
        super().__init__("tracker", **kwargs)
        self.box = None
        self.items = 0
        self.create_subscription(Detection2D, "tracker/init", self._init, latched(1))
        self.create_subscription(Image, "image", self._image, qos_profile_sensor_data)
        self.pub = self.create_publisher(Detection2DArray, "tracks", 10)
        self.reports = self.create_publisher(EnergyReport, "energy/reports", 10)

    def _init(self, msg):
        self.box = msg.bbox

    def _image(self, msg):
        self.items += 1
        out = Detection2DArray(header=msg.header)
        if self.box is not None:
            det = Detection2D(header=msg.header)
            det.bbox.center.position.x = self.box.center.position.x + 3.0
            det.bbox.center.position.y = self.box.center.position.y
            det.bbox.size_x, det.bbox.size_y = self.box.size_x, self.box.size_y
            out.detections = [det]
        self.pub.publish(out)
        self.reports.publish(EnergyReport(node="/tracker", energy_j=0.01 * self.items, power_w=1.5,
                                          items_processed=self.items, source=1, meter="test"))


@pytest.fixture
def config(tmp_path, monkeypatch):
    """A pipeline of the (skipped) source and the stand-in tracker."""
    import effdl_ros.nodes

    real = effdl_ros.nodes.node_class
    monkeypatch.setattr(effdl_ros.nodes, "node_class",
                        lambda name: StillTracker if name == "tracker" else real(name))
    path = tmp_path / "pipeline.yaml"
    path.write_text("nodes:\n  - {executable: source, name: source}\n  - {executable: tracker, name: tracker}\n")
    return path


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_bag_round_trip_through_the_graph(tmp_path, config, storage, capsys):
    bag = tmp_path / "in"
    bags.write_image_bag(bag, real_frames(5), storage=storage, compressed="jpeg", fps=10.0)
    rep, rec = tmp_path / "rep", tmp_path / ("out.mcap" if storage == "mcap" else "out")
    code = main(["replay", str(bag), "--config", str(config), "--as-fast-as-possible",
                 "--report", str(rep), "--record", str(rec)])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((rep / "metrics.json").read_text())
    assert metrics["frames"] == 5
    assert metrics["latency_ms"]["tracker"]["count"] == 5
    assert metrics["energy"]["tracker"]["source"] == "modelled"
    assert metrics["run"]["image_topic"] == "/camera/image"
    assert "tracking" not in metrics  # a bag has no ground truth
    assert (rep / "latency.png").is_file() and (rep / "summary.md").is_file()
    # the recorded outputs are a rosbag2 bag that rosbags reads: one tracks message per frame
    counts = {t.topic: t.count for t in bags.list_topics(rec)}
    assert counts["/tracks"] == 5 and counts["/energy/reports"] == 5


@pytest.mark.parametrize("name", ["out.mcap", "out.db3", "outdir"])
def test_record_keeps_input_stamps_latched_topics_and_the_named_path(tmp_path, config, name):
    from rosbags.highlevel import AnyReader

    config.write_text(config.read_text() + "  - {executable: segmentation, name: segmentation}\n")
    bag = tmp_path / "in"
    bags.write_image_bag(bag, real_frames(3), storage="sqlite3", fps=10.0)
    inputs = [f.stamp_ns for f in bags.read_frames(bag, "/camera/image")]
    rec = tmp_path / name
    assert main(["replay", str(bag), "--config", str(config), "--as-fast-as-possible", "--record", str(rec)]) == 0
    assert rec.is_file() == (name != "outdir") and sorted(p.name for p in tmp_path.iterdir() if "out" in p.name) == [name]
    with AnyReader([rec]) as reader:
        topics = {c.topic: c for c in reader.connections}
        assert "/segmentation/label_info" in topics  # latched: published before the recorder's first frame
        stamps = {}
        for conn, log_ns, raw in reader.messages():
            if conn.topic in ("/tracks", "/segmentation/labels"):
                msg = reader.deserialize(raw, conn.msgtype)
                header_ns = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
                assert header_ns == log_ns
                stamps.setdefault(conn.topic, []).append(header_ns)
    assert stamps["/tracks"] == inputs and stamps["/segmentation/labels"] == inputs
    if name == "outdir":
        assert "transient_local" in (rec / "metadata.yaml").read_text().lower() or "durability: 1" in (
            rec / "metadata.yaml").read_text()


def test_sequence_with_ground_truth(config, tmp_path):
    if not VOT.is_dir():
        pytest.skip(f"shared tracking data absent ({VOT})")
    rep = tmp_path / "rep"
    assert main(["replay", str(VOT), "--config", str(config), "--max-frames", "6",
                 "--as-fast-as-possible", "--report", str(rep)]) == 0
    metrics = json.loads((rep / "metrics.json").read_text())
    assert metrics["frames"] == 6 and metrics["tracking"]["frames_with_gt"] == 6
    lines = [json.loads(line) for line in (rep / "frames.jsonl").read_text().splitlines()]
    first_gt, first_box = np.array(lines[0]["gt_box"]), np.array(lines[0]["box"])
    assert first_box == pytest.approx(first_gt + [3.0, 0, 0, 0])  # the init box reached the tracker
    assert 0.0 < metrics["tracking"]["success_auc"] <= 1.0
    assert (rep / "success.png").is_file()


def test_ros1_bag(config, tmp_path):
    if not SPOT.is_dir():
        pytest.skip(f"shared ROS 1 bags absent ({SPOT})")
    rep = tmp_path / "rep"
    assert main(["replay", str(SPOT / "raw.bag"), "--config", str(config), "--report", str(rep)]) == 0
    assert json.loads((rep / "metrics.json").read_text())["frames"] == 1


def test_malformed_ground_truth_line(tmp_path, config, capsys):
    import cv2

    seq = tmp_path / "seq"
    seq.mkdir()
    for i, f in enumerate(real_frames(3)):
        cv2.imwrite(str(seq / f"{i + 1:08d}.jpg"), f[..., ::-1])
    (seq / "groundtruth.txt").write_text("10,10,20,20\n11,10,twenty,20\n12,10,20,20\n")
    assert main(["replay", str(seq), "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "groundtruth.txt, line 2" in err and err.count("\n") == 1 and "Traceback" not in err


def test_truncated_bag_cli(tmp_path, config, capsys):
    bag = tmp_path / "in"
    bags.write_image_bag(bag, real_frames(3), storage="mcap")
    (mcap,) = bag.glob("*.mcap")
    mcap.write_bytes(mcap.read_bytes()[:2000])
    assert main(["replay", str(mcap), "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert str(mcap) in err and "truncated or corrupt" in err and err.count("\n") == 1


def test_frame_folder_and_limits(tmp_path):
    inp = open_input(ROOT / "samples" / "vtest", fps=5.0, limit=4)
    assert inp.kind == "frames" and inp.count == 4 and not inp.has_ground_truth
    frames = list(inp.frames())
    assert len(frames) == 4 and frames[1].stamp_ns - frames[0].stamp_ns == 200_000_000
    assert frames[0].image.shape == (240, 320, 3)
    with pytest.raises(ConfigError):
        open_input(ROOT / "samples" / "vtest", fps=0)
    with pytest.raises(DataError, match="does not exist"):
        open_input(tmp_path / "nothing")


def test_pacer_follows_stamps_scaled_by_rate():
    now = [100.0]
    waited = []

    def idle(s):
        waited.append(round(s, 6))
        now[0] += s

    pacer = Pacer(2.0, clock=lambda: now[0])
    for i in range(3):
        pacer.wait(i * 1_000_000_000, idle=idle)  # frames 1 s apart, played at x2
        now[0] += 0.1  # the graph took 0.1 s per frame
    assert waited == [0.4, 0.4]
    now[0] += 5.0
    pacer.wait(3_000_000_000, idle=idle)
    assert pacer.late == 1 and waited == [0.4, 0.4]
    assert Pacer(None).wait(123) == 0.0
    with pytest.raises(ConfigError):
        Pacer(0.0)


def test_bundled_clip_opens_from_any_folder(tmp_path, monkeypatch):
    # `effdl-ros demo` run outside the checkout: its default input is the bundled samples/vtest
    monkeypatch.chdir(tmp_path)
    source = open_input("samples/vtest", limit=2)
    assert len(list(source.frames())) == 2
    with pytest.raises(DataError, match="nothing_here does not exist"):
        open_input("nothing_here")

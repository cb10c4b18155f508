"""Adapting segmentation to the robot's own camera (issue 17): CamVid's sequences split by time never
leak report frames into adaptation; the target reader takes a folder, a video and every bag format;
`train madan --target` runs a tiny adaptation on CPU, writes a model card, resumes after a kill, and
the segmentation node loads what it wrote and labels a frame at two scales."""
import random
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from effdl_ros.data import camvid
from effdl_ros.data.bags import write_image_bag
from effdl_ros.data.target_frames import even_indices, read_target_frames
from effdl_ros.errors import ConfigError, DataError
from effdl_ros.segmentation import train as T
from effdl_ros.segmentation.domains import check_sources, load_target

H, W = 48, 64


def _frames(n=6, h=30, w=40):
    """Frames whose mean grey level encodes their index (so order and sampling can be checked)."""
    return [np.full((h, w, 3), 20 * i + 10, np.uint8) for i in range(n)]


# ------------------------------------------------------------------------------ sequences and time

def test_sequence_and_frame_number_come_from_camvid_file_names():
    assert camvid.sequence_of("x/0001TP_006690.png") == "0001TP"
    assert camvid.frame_number("0001TP_006690.png") == 6690
    assert camvid.frame_number("Seq05VD_f00420.png") == 420
    with pytest.raises(DataError, match="sequence prefix"):
        camvid.sequence_of("frame.png")


def test_time_split_keeps_every_report_frame_after_every_adaptation_frame_whatever_the_input_order():
    items = [(Path(f"0001TP_{n:06d}.jpg"), Path(f"0001TP_{n:06d}.png")) for n in range(6690, 8550, 30)]
    rng = random.Random(0)
    for _ in range(20):
        shuffled = items[:]
        rng.shuffle(shuffled)
        adapt, report = camvid.time_split(shuffled, 40)
        assert len(adapt) == 40 and len(report) == len(items) - 40
        assert not {p for p, _ in adapt} & {p for p, _ in report}
        assert max(camvid.frame_number(p) for p, _ in adapt) < min(camvid.frame_number(p) for p, _ in report)
    with pytest.raises(DataError, match="both parts"):
        camvid.time_split(items, len(items))


def test_dusk_split_on_camvid():
    root = camvid.default_root()
    if not (root / "train").is_dir():
        pytest.skip("../shared/data/segmentation/camvid absent")
    adapt, report = camvid.dusk_split(root)
    assert (len(adapt), len(report)) == (40, 22)
    assert all(camvid.sequence_of(p) == camvid.DUSK for p, _ in adapt + report)
    assert camvid.frame_number(adapt[-1][0]) < camvid.frame_number(report[0][0])
    # the dusk target reads the adaptation frames only
    target = load_target("camvid:0001TP", height=H, width=W, camvid_root=root)
    assert target.images.shape == (40, H, W, 3) and "last 22" in target.description


def test_a_source_cannot_be_the_target_or_the_dusk_sequence():
    with pytest.raises(ConfigError, match="leak"):
        check_sources(["camvid:0006R0", "sunny"], "camvid:0006R0")
    with pytest.raises(ConfigError, match="at least two"):
        check_sources(["sunny"], "camvid")
    from effdl_ros.segmentation.domains import load_source
    with pytest.raises(ConfigError, match="dusk target"):
        load_source("camvid:0001TP", height=H, width=W, n_rendered=1, seed=0, camvid_root=Path("."))


# ---------------------------------------------------------------------------------- target reader

def test_even_indices_spread_over_the_recording():
    assert even_indices(10, None) == list(range(10))
    assert even_indices(10, 3) == [0, 4, 9] or even_indices(10, 3) == [0, 5, 9]
    assert even_indices(3, 10) == [0, 1, 2]


def test_target_reader_takes_a_folder(tmp_path):
    for i, f in enumerate(_frames()):
        cv2.imwrite(str(tmp_path / f"{i:04d}.png"), f)
    t = read_target_frames(tmp_path, height=H, width=W, limit=3)
    assert t.images.shape == (3, H, W, 3) and t.kind == "folder" and t.total == 6
    assert t.picked[0] == 0 and t.picked[-1] == 5               # first and last frame: spread in time
    assert int(t.images[-1].mean()) == 110


def test_target_reader_takes_a_video(tmp_path):
    path = tmp_path / "cam.avi"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (40, 30))
    for f in _frames():
        vw.write(f)
    vw.release()
    t = read_target_frames(path, height=H, width=W)
    assert t.kind == "video" and t.images.shape == (6, H, W, 3)
    assert abs(float(t.images[5].mean()) - 110) < 6                 # JPEG in the AVI: near, not exact


@pytest.mark.parametrize("storage,suffix", [("sqlite3", ".db3"), ("mcap", ".mcap")])
def test_target_reader_takes_a_rosbag2(tmp_path, storage, suffix):
    path = tmp_path / f"cam{suffix}"
    write_image_bag(path, [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in _frames()], storage=storage,
                    topic="/camera/image_raw")
    if not path.exists():          # rosbags may write a folder named after the file
        path = next(tmp_path.iterdir())
    t = read_target_frames(path, height=H, width=W, limit=4, image_topic="/camera/image_raw")
    assert t.kind == "bag" and t.topic == "/camera/image_raw" and t.images.shape == (4, H, W, 3)
    assert int(t.images[0].mean()) == 10 and int(t.images[-1].mean()) == 110


def test_target_reader_takes_a_ros1_bag(tmp_path):
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS1_NOETIC)
    Img = store.types["sensor_msgs/msg/Image"]
    Hdr = store.types["std_msgs/msg/Header"]
    Time = store.types["builtin_interfaces/msg/Time"]
    path = tmp_path / "cam.bag"
    with Writer(path) as w:
        conn = w.add_connection("/cam/image", Img.__msgtype__, typestore=store)
        for i, f in enumerate(_frames(3)):
            rgb = cv2.cvtColor(f, cv2.COLOR_BGR2RGB)
            msg = Img(header=Hdr(seq=i, stamp=Time(sec=100 + i, nanosec=0), frame_id="cam"), height=30, width=40,
                      encoding="rgb8", is_bigendian=0, step=120, data=rgb.reshape(-1))
            w.write(conn, (100 + i) * 10**9, store.serialize_ros1(msg, Img.__msgtype__))
    t = read_target_frames(path, height=H, width=W)
    assert t.kind == "bag" and t.images.shape == (3, H, W, 3) and int(t.images[2].mean()) == 50


def test_target_reader_says_what_is_wrong(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_target_frames(tmp_path / "nope", height=H, width=W)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="neither a folder"):
        read_target_frames(tmp_path / "notes.txt", height=H, width=W)
    with pytest.raises(DataError, match="only applies to a bag"):
        read_target_frames(tmp_path, height=H, width=W, image_topic="/x")


# ------------------------------------------------------------------------ adaptation, resume, node

def test_train_madan_on_a_folder_target_writes_checkpoint_and_card_and_the_node_uses_it(tmp_path):
    from effdl_ros.cli.main import main as cli_main

    frames = tmp_path / "robot"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        cv2.imwrite(str(frames / f"{i:03d}.jpg"), rng.integers(0, 255, (60, 80, 3), dtype=np.uint8))
    models = tmp_path / "models"
    out = models / "madan_robot.pt"
    torch.set_num_threads(1)
    assert cli_main(["train", "madan", "--preset", "tiny", "--target", str(frames), "--out", str(out)]) == 0
    card = (models / "madan_robot.md").read_text()
    assert "8 of 8 frames of folder" in card and "sunny" in card and "--target" in card
    assert not (models / ".madan_robot.stages").exists()        # the work folder goes once done

    from effdl_ros.nodes.segmentation import SegmentationNode
    from effdl_ros.runtime import Parameter
    from effdl_ros.runtime.testing import InprocGraph
    from effdl_ros.segmentation.inference import predict
    with InprocGraph(simulated=True) as g:
        node = g.add(SegmentationNode, parameter_overrides=[Parameter("model_path", value=str(out))])
        g.step(0.05)
        assert node.model is not None and Path(node.model_path).resolve() == out.resolve()
        img = rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)
        for scale in (1.0, 0.5):      # the node's budget knob: the same frame at two input scales
            labels = predict(node.model, node.config, img, scale=scale)
            assert labels.shape == img.shape[:2] and labels.max() < 11


def test_a_killed_run_resumes_from_its_finished_stages(tmp_path, monkeypatch):
    root = camvid.default_root()
    frames = np.random.default_rng(1).integers(0, 255, (6, H, W, 3), dtype=np.uint8)
    from effdl_ros.segmentation.domains import TargetDomain

    target = TargetDomain("robot", frames, None, "6 frames (test)")
    work = tmp_path / "work"
    plan = T.PRESETS["tiny"]
    real = T.train_pixel_level

    def killed(*a, **k):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(T, "train_pixel_level", killed)
    with pytest.raises(KeyboardInterrupt):
        T.train_all(["sunny", "dusk"], root, tmp_path, plan, target=target, work_dir=work, baselines=False,
                    madan_out=tmp_path / "m.pt", log=lambda m: None)
    assert len(list(work.glob("*.seg.pt"))) == 2                # both source-only segmenters were kept
    monkeypatch.setattr(T, "train_pixel_level", real)
    logs = []
    T.train_all(["sunny", "dusk"], root, tmp_path, plan, target=target, work_dir=work, baselines=False,
                madan_out=tmp_path / "m.pt", log=logs.append)
    resumed = [m for m in logs if "resumed from" in m]
    assert len(resumed) == 2 and all("source-only" in m for m in resumed)
    assert (tmp_path / "m.pt").is_file()
    # another seed is another run: nothing is reused
    logs.clear()
    T.train_all(["sunny", "dusk"], root, tmp_path, plan, target=target, work_dir=work, baselines=False,
                madan_out=tmp_path / "m2.pt", log=logs.append, seed=1)
    assert not [m for m in logs if "resumed from" in m]

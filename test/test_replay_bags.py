"""Reading and writing bags with rosbags: round trips on real frames, ROS 1 input, bad files."""
from pathlib import Path

import numpy as np
import pytest

from effdl_ros.data import bags
from effdl_ros.errors import DataError
from effdl_ros.resources import shared_data_dir

ROOT = Path(__file__).resolve().parents[1]
SPOT = shared_data_dir() / "rosbags" / "spot_ros1"


def real_frames(n=6):
    import cv2

    files = sorted((ROOT / "samples" / "vtest").glob("*.jpg"))[:n]
    assert len(files) == n, "samples/vtest is part of the package"
    return [np.ascontiguousarray(cv2.imread(str(f))[..., ::-1]) for f in files]


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
@pytest.mark.parametrize("compressed", [None, "jpeg", "png"])
def test_round_trip_real_frames(tmp_path, storage, compressed):
    frames = real_frames()
    out = tmp_path / "bag"
    assert bags.write_image_bag(out, frames, storage=storage, compressed=compressed, fps=5.0) == len(frames)
    topics = bags.list_topics(out)
    assert [(t.topic, t.count) for t in topics] == [("/camera/image", len(frames))]
    got = list(bags.read_frames(out))
    assert len(got) == len(frames)
    assert [f.index for f in got] == list(range(len(frames)))
    assert got[1].stamp_ns - got[0].stamp_ns == 200_000_000  # 5 fps, stamps from the header
    for a, b in zip(got, frames):
        assert a.image.shape == b.shape and a.image.dtype == np.uint8
        err = np.abs(a.image.astype(int) - b.astype(int)).mean()
        assert err == 0 if compressed != "jpeg" else err < 3.0


@pytest.mark.parametrize("suffix", [".db3", ".mcap"])
def test_bare_storage_file(tmp_path, suffix):
    out = tmp_path / "bag"
    bags.write_image_bag(out, real_frames(3), storage="mcap" if suffix == ".mcap" else "sqlite3")
    (storage_file,) = out.glob("*" + suffix)
    assert len(list(bags.read_frames(storage_file))) == 3
    assert len(list(bags.read_frames(storage_file, limit=2))) == 2


def test_ros1_bags_raw_and_qoi_compressed():
    if not SPOT.is_dir():
        pytest.skip(f"shared ROS 1 bags absent ({SPOT})")
    pytest.importorskip("qoi", reason="the 'qoi' package (QOI decoding) is not installed")
    raw = list(bags.read_frames(SPOT / "raw.bag"))
    qoi = list(bags.read_frames(SPOT / "compressed.bag"))
    assert len(raw) == len(qoi) == 1
    assert raw[0].topic == "/spot/camera/hand_color/image"
    assert raw[0].image.shape == (480, 640, 3)
    # the QOI bag holds the same frame losslessly compressed
    assert np.array_equal(raw[0].image, qoi[0].image)
    assert raw[0].image.std() > 10  # a real picture, not a blank


def _truncate(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


@pytest.mark.parametrize("suffix", [".db3", ".mcap", ".bag"])
def test_truncated_bag_is_one_clear_error(tmp_path, suffix):
    if suffix == ".bag":
        if not SPOT.is_dir():
            pytest.skip(f"shared ROS 1 bags absent ({SPOT})")
        src = SPOT / "raw.bag"
    else:
        out = tmp_path / "ok"
        bags.write_image_bag(out, real_frames(4), storage="mcap" if suffix == ".mcap" else "sqlite3",
                             compressed="jpeg")
        (src,) = out.glob("*" + suffix)
    bad = _truncate(src, tmp_path / ("cut" + suffix))
    with pytest.raises(DataError) as err:
        list(bags.read_frames(bad))
    assert str(bad) in str(err.value) and "truncated or corrupt" in str(err.value)


def test_not_a_bag_folder_and_missing(tmp_path):
    with pytest.raises(DataError, match="metadata.yaml"):
        bags.list_topics(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        bags.list_topics(tmp_path / "nope.mcap")


def _bag_with(tmp_path, writes):
    """A rosbag2 bag written with rosbags directly: writes = [(topic, msgtype, [msgs])]."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    out = tmp_path / "custom"
    with Writer(out, version=8, storage_plugin=StoragePlugin.MCAP) as w:
        for topic, msgtype, msgs in writes:
            conn = w.add_connection(topic, msgtype, typestore=store)
            for i, m in enumerate(msgs(store) if callable(msgs) else msgs):
                w.write(conn, 1000 + i, store.serialize_cdr(m, msgtype))
    return out


def test_topic_choice(tmp_path):
    img = real_frames(1)[0]

    def two(store):
        return [bags.image_message(store, img, 1)]

    def chatter(store):
        return [store.types["std_msgs/msg/String"](data="x")]

    out = _bag_with(tmp_path, [("/a/image", bags.IMAGE, two), ("/b/image", bags.IMAGE, two),
                               ("/chatter", "std_msgs/msg/String", chatter)])
    with pytest.raises(DataError) as err:
        list(bags.read_frames(out))
    assert "/a/image" in str(err.value) and "/b/image" in str(err.value) and "--image-topic" in str(err.value)
    assert len(list(bags.read_frames(out, "/b/image"))) == 1
    with pytest.raises(DataError, match="not an image topic"):
        list(bags.read_frames(out, "/chatter"))
    with pytest.raises(DataError, match="no topic /c"):
        list(bags.read_frames(out, "/c"))


def test_zero_messages(tmp_path):
    out = _bag_with(tmp_path, [("/camera/image", bags.IMAGE, [])])
    with pytest.raises(DataError, match="zero messages"):
        list(bags.read_frames(out))


def test_unknown_compression_format(tmp_path):
    def h264(store):
        T = store.types
        header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="c")
        return [store.types[bags.COMPRESSED](header=header, format="h264",
                                             data=np.frombuffer(b"\x00\x00\x00\x01gxyz", np.uint8))]

    out = _bag_with(tmp_path, [("/cam/compressed", bags.COMPRESSED, h264)])
    with pytest.raises(DataError) as err:
        list(bags.read_frames(out))
    assert "unknown compression format 'h264'" in str(err.value) and str(out) in str(err.value)


class _Raw:
    def __init__(self, data, h, w, step, encoding, big=0):
        self.data, self.height, self.width, self.step = data, h, w, step
        self.encoding, self.is_bigendian = encoding, big


def test_raw_decoding_step_padding_and_encodings():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    padded = np.zeros((2, 12), np.uint8)
    padded[:, :9] = rgb.reshape(2, 9)
    assert np.array_equal(bags.decode_raw(_Raw(padded.tobytes(), 2, 3, 12, "rgb8"), "t"), rgb)
    bgr = rgb[..., ::-1].copy()
    assert np.array_equal(bags.decode_raw(_Raw(bgr.tobytes(), 2, 3, 9, "bgr8"), "t"), rgb)
    mono16 = np.array([[0x1234, 0xff00]], dtype=">u2")
    out = bags.decode_raw(_Raw(mono16.tobytes(), 1, 2, 4, "mono16", big=1), "t")
    assert out.shape == (1, 2, 3) and out[0, 0, 0] == 0x12 and out[0, 1, 0] == 0xff
    with pytest.raises(DataError, match="does not fit"):
        bags.decode_raw(_Raw(b"\x00" * 5, 2, 3, 9, "rgb8"), "t")
    with pytest.raises(DataError, match="unsupported image encoding"):
        bags.decode_raw(_Raw(b"\x00" * 6, 2, 3, 3, "bayer_rggb8"), "t")


def test_corrupt_jpeg_payload():
    with pytest.raises(DataError, match="corrupt JPEG"):
        bags.decode_compressed(b"\xff\xd8garbage", "jpeg", "message 0")


def test_bag_writer_runtime_messages(tmp_path):
    """--record writes the runtime's message classes; rosbags reads them back field for field."""
    from rosbags.highlevel import AnyReader

    from effdl_ros.runtime.local.typesupport import typestore
    from effdl_ros.runtime.messages import EnergyReport

    out = tmp_path / "rec.mcap"
    with bags.BagWriter(out, storage=bags.storage_for(out), typestore=typestore()) as w:
        for i in range(3):
            w.write("/energy/reports", "effdl_ros/msg/EnergyReport",
                    EnergyReport(node="/ddi", energy_j=0.5 * i, items_processed=i, source=1), 10 + i)
    assert w.counts == {"/energy/reports": 3}
    with AnyReader([out]) as reader:
        got = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages()]
    assert [m.energy_j for m in got] == [0.0, 0.5, 1.0] and got[2].node == "/ddi"
    with pytest.raises(DataError, match="exists already"):
        bags.BagWriter(out)


def test_qoi_without_the_package_is_a_clear_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "qoi", None)  # import qoi -> ImportError
    with pytest.raises(DataError, match="install the 'qoi' package"):
        bags.decode_compressed(b"qoif" + b"\x00" * 20, "qoi; rgb8", "message 0 of /cam in x.bag")

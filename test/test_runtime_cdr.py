"""CDR of every message type: rosbags' bytes == the bytes of the DDS type under ROS 2's name."""
import random

import numpy as np
import pytest

from effdl_ros.runtime.local.typesupport import deserialize, get_class, serialize, typestore
from effdl_ros.runtime.messages import TYPES

pytest.importorskip("cyclonedds")
from effdl_ros.runtime.backends.dds import serialize_padded, tune_malloc  # noqa: E402
from effdl_ros.runtime.backends.dds_types import dds_type_name, idl_type, to_idl  # noqa: E402

_INT_RANGE = {"int8": (-128, 127), "uint8": (0, 255), "char": (0, 255),
              "byte": (0, 127),  # rosbags packs byte as a signed char: 0..127 is what both agree on
              "int16": (-32768, 32767), "uint16": (0, 65535), "int32": (-2**31, 2**31 - 1),
              "uint32": (0, 2**32 - 1), "int64": (-2**63, 2**63 - 1), "uint64": (0, 2**64 - 1)}
_DTYPE = {"uint8": np.uint8, "byte": np.uint8, "int8": np.int8, "int16": np.int16,
          "uint16": np.uint16, "int32": np.int32, "uint32": np.uint32, "int64": np.int64,
          "uint64": np.uint64, "float32": np.float32, "float64": np.float64, "bool": np.bool_}


def _scalar(rng, name):
    if name == "string":
        return rng.choice(["", "a", "cam_0", "héllo ß", "x" * 13])
    if name == "bool":
        return rng.random() < 0.5
    if name.startswith("float"):
        return rng.randint(-4000, 4000) / 8.0  # exact in float32
    lo, hi = _INT_RANGE[name]
    return rng.choice([lo, hi, rng.randint(lo, hi)])


def fill(typename, rng):
    """A non-trivial instance: every field set, sequences of several elements, odd lengths."""
    from rosbags.typesys.base import Nodetype

    cls = get_class(typename)
    _consts, fields = typestore().fielddefs[typename]
    values = {}
    for name, (kind, detail), *_ in fields:
        if kind == Nodetype.BASE:
            values[name] = _scalar(rng, detail[0])
        elif kind == Nodetype.NAME:
            values[name] = fill(detail, rng)
        else:
            (sub_kind, sub_detail), count = detail
            n = count if kind == Nodetype.ARRAY else rng.randint(1, 5)
            if sub_kind == Nodetype.NAME:
                values[name] = [fill(sub_detail, rng) for _ in range(n)]
            elif sub_detail[0] in _DTYPE:
                values[name] = np.array([_scalar(rng, sub_detail[0]) for _ in range(n)],
                                        dtype=_DTYPE[sub_detail[0]])
            else:
                values[name] = [_scalar(rng, sub_detail[0]) for _ in range(n)]
    return cls(**values)


def same(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if hasattr(a, "__dataclass_fields__"):
        return type(a).__name__ == type(b).__name__ and all(
            same(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    return a == b


@pytest.mark.parametrize("typename", sorted(set(TYPES.values())))
def test_cdr_bytes_equal_rosbags_and_round_trip(typename):
    rng = random.Random(typename)
    for _ in range(3):
        msg = fill(typename, rng)
        ours = serialize(msg)
        assert ours[:4] == b"\x00\x01\x00\x00"  # XCDR1, little endian, as rmw_cyclonedds sends
        assert ours == bytes(typestore().serialize_cdr(msg, typename))
        # the DDS type under ROS 2's name produces the very same bytes...
        idl_bytes = to_idl(msg).serialize(use_version_2=False)
        assert idl_bytes == ours
        # ...and reads them back
        assert same(idl_type(typename).deserialize(ours), to_idl(msg))
        back = deserialize(ours, typename)
        assert same(back, msg)
        # what the dds writer puts on the wire: those bytes zero-padded to a multiple of 4, as
        # rmw_cyclonedds does, and what the dds reader decodes (a memoryview of the taken sample)
        wire = bytes(serialize_padded(msg, typename))
        assert wire == ours + b"\0" * (-len(ours) % 4)
        assert same(deserialize(memoryview(wire), typename), msg)


def test_dds_type_names_follow_ros2():
    assert dds_type_name("sensor_msgs/msg/Image") == "sensor_msgs::msg::dds_::Image_"
    assert idl_type("std_msgs/msg/String").__idl__.idl_transformed_typename == \
        "std_msgs::msg::dds_::String_"


@pytest.mark.parametrize("bad", [b"", b"\x00\x01\x00\x00", b"\x00\x01\x00\x00\xff\xff\xff\x7f",
                                 b"\x00\x01\x00\x00\x03\x00\x00\x00\xff\xfe\x00"])
def test_truncated_or_garbage_payload_is_a_value_error(bad):
    with pytest.raises(ValueError):
        deserialize(bad, "std_msgs/msg/String")


def test_truncated_image_is_a_value_error():
    from effdl_ros.runtime.messages import Image

    data = serialize(Image(height=2, width=2, encoding="mono8", step=2,
                           data=np.arange(4, dtype=np.uint8)))
    with pytest.raises(ValueError):
        deserialize(data[:-6], "sensor_msgs/msg/Image")


@pytest.mark.parametrize("frame_id", ["", "7", "42", "123", "1234"])  # every padding length 0..3
def test_image_on_the_wire_padded_and_decoded_without_copying_the_pixels(frame_id):
    from effdl_ros.runtime.messages import Image

    pixels = np.random.default_rng(1).integers(0, 256, 64 * 48 * 3, dtype=np.uint8)
    msg = Image(height=48, width=64, encoding="rgb8", step=64 * 3, data=pixels)
    msg.header.frame_id = frame_id
    ours = serialize(msg)
    wire = serialize_padded(msg, "sensor_msgs/msg/Image")
    assert len(wire) % 4 == 0 and bytes(wire) == ours + b"\0" * (-len(ours) % 4)
    sample = bytes(wire)  # what ddspy_take hands the reader
    back = deserialize(memoryview(sample), "sensor_msgs/msg/Image")
    assert back.header.frame_id == frame_id and np.array_equal(back.data, pixels)
    assert np.shares_memory(back.data, np.frombuffer(sample, dtype=np.uint8))  # a view, no copy
    assert not back.data.flags.writeable  # read-only, as the pixels of a received image were


@pytest.mark.parametrize("bad", [b"", b"\x00\x01\x00\x00\xff\xff\xff\x7f",
                                 b"\x00\x01\x00\x00\x03\x00\x00\x00\xff\xfe\x00"])
def test_garbage_memoryview_payload_is_a_value_error(bad):
    with pytest.raises(ValueError):
        deserialize(memoryview(bad), "std_msgs/msg/String")


def test_malloc_tuning_applies_once_and_can_be_switched_off(monkeypatch):
    import sys

    import effdl_ros.runtime.backends.dds as dds

    monkeypatch.setattr(dds, "_MALLOC_TUNED", False)
    monkeypatch.setenv("EFFDL_ROS_DDS_MALLOC_TUNING", "0")
    assert tune_malloc() is False and dds._MALLOC_TUNED is False
    monkeypatch.delenv("EFFDL_ROS_DDS_MALLOC_TUNING")
    if not sys.platform.startswith("linux"):
        pytest.skip("mallopt is glibc's")
    assert tune_malloc() is True  # glibc accepts both thresholds (mmap <= 32 MB)

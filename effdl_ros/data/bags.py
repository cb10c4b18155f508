"""Read camera frames from recorded bags and write rosbag2 files, with the `rosbags` package (no ROS).

Inputs: a rosbag2 folder (metadata.yaml), a bare rosbag2 storage file (.db3 sqlite3 or .mcap), or a
ROS 1 .bag. Image topics: sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8, mono8, mono16, 8UC1/3, 16UC1)
and sensor_msgs/CompressedImage (JPEG, PNG, and QOI as written by qoi_image_transport, format
"qoi; <encoding>"). Every problem with a file (missing, truncated, corrupt, no image topic, zero
messages, unknown compression) is one DataError naming the file.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from effdl_ros.errors import ConfigError, DataError

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE, COMPRESSED)
STORAGES = ("sqlite3", "mcap")


@dataclass
class Frame:
    """One decoded camera frame; image is RGB uint8 [H, W, 3]."""

    index: int
    stamp_ns: int
    image: np.ndarray
    topic: str = ""
    frame_id: str = ""


@dataclass(frozen=True)
class TopicInfo:
    topic: str
    msgtype: str
    count: int


def is_bag(path: Path) -> bool:
    """True for the inputs rosbags reads: a rosbag2 folder, a .db3/.mcap file or a ROS 1 .bag."""
    path = Path(path)
    if path.is_dir():
        return (path / "metadata.yaml").is_file()
    return path.suffix in (".bag", ".db3", ".mcap")


def _open_reader(path: Path):
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    path = Path(path)
    if not path.exists():
        raise DataError(f"bag {path} does not exist")
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        raise DataError(f"{path} is a folder without metadata.yaml, so not a rosbag2 bag")
    # ROS 1 bags carry their message definitions; rosbag2 sqlite3 files may not, so give a store.
    store = get_typestore(Stores.ROS1_NOETIC if path.suffix == ".bag" else Stores.ROS2_HUMBLE)
    try:
        reader = AnyReader([path], default_typestore=store)
        reader.open()
    except Exception as err:  # noqa: BLE001 - rosbags, sqlite3, struct, lz4: all mean a bad file
        raise DataError(f"cannot read bag {path}: it is truncated or corrupt ({_why(err)})") from None
    return reader


def _why(err: BaseException) -> str:
    text = " ".join(str(a) for a in err.args if a is not None).strip() or type(err).__name__
    return text.splitlines()[0][:200]


def list_topics(path: Path) -> List[TopicInfo]:
    """All topics of a bag with their message type and count."""
    reader = _open_reader(path)
    try:
        counts: Dict[Tuple[str, str], int] = {}
        for c in reader.connections:
            key = (c.topic, c.msgtype)
            counts[key] = counts.get(key, 0) + int(c.msgcount or 0)
        return [TopicInfo(t, m, n) for (t, m), n in sorted(counts.items())]
    finally:
        reader.close()


def choose_image_topic(path: Path, topics: Sequence[TopicInfo], wanted: Optional[str]) -> TopicInfo:
    """The wanted topic, or the only image topic; otherwise say which exist."""
    images = [t for t in topics if t.msgtype in IMAGE_TYPES]
    if wanted:
        for t in topics:
            if t.topic == wanted:
                if t.msgtype not in IMAGE_TYPES:
                    raise DataError(f"topic {wanted} in bag {path} is {t.msgtype}, not an image topic")
                return t
        raise DataError(f"bag {path} has no topic {wanted}; its image topics are: "
                        + (", ".join(t.topic for t in images) or "none"))
    if not images:
        raise DataError(f"bag {path} has no sensor_msgs Image or CompressedImage topic; its topics are: "
                        + (", ".join(f"{t.topic} ({t.msgtype})" for t in topics) or "none"))
    if len(images) > 1:
        raise DataError(f"bag {path} has {len(images)} image topics, choose one with --image-topic: "
                        + ", ".join(f"{t.topic} ({t.msgtype}, {t.count} messages)" for t in images))
    return images[0]


def _stamp_ns(msg, fallback: int) -> int:
    header = getattr(msg, "header", None)
    stamp = getattr(header, "stamp", None)
    if stamp is None:
        return int(fallback)
    sec = getattr(stamp, "sec", getattr(stamp, "secs", 0))
    nsec = getattr(stamp, "nanosec", getattr(stamp, "nsecs", 0))
    value = int(sec) * 1_000_000_000 + int(nsec)
    return value if value > 0 else int(fallback)


def read_frames(path: Path, image_topic: Optional[str] = None, *, limit: Optional[int] = None
                ) -> Iterator[Frame]:
    """Decoded frames of one image topic, in bag order (stamp from the header, else receive time)."""
    path = Path(path)
    topic = choose_image_topic(path, list_topics(path), image_topic)
    if topic.count == 0:
        raise DataError(f"topic {topic.topic} in bag {path} has zero messages")
    reader = _open_reader(path)
    index = 0
    try:
        conns = [c for c in reader.connections if c.topic == topic.topic]
        try:
            for conn, t_ns, raw in reader.messages(connections=conns):
                msg = reader.deserialize(raw, conn.msgtype)
                where = f"message {index} of topic {topic.topic} in bag {path}"
                image = decode_image(msg, conn.msgtype, where=where)
                yield Frame(index, _stamp_ns(msg, t_ns), image, topic.topic,
                            str(getattr(getattr(msg, "header", None), "frame_id", "")))
                index += 1
                if limit is not None and index >= limit:
                    return
        except DataError:
            raise
        except Exception as err:  # noqa: BLE001 - a truncated chunk surfaces here, mid-iteration
            raise DataError(f"cannot read bag {path} after {index} messages: it is truncated or corrupt "
                            f"({_why(err)})") from None
    finally:
        reader.close()
    if index == 0:
        raise DataError(f"topic {topic.topic} in bag {path} has zero messages")


# ---------------------------------------------------------------------------------------------------
# Decoding


def _sniff(data: bytes) -> str:
    if data[:2] == b"\xff\xd8":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"qoif":
        return "qoi"
    return "unknown"


def _to_rgb(arr: np.ndarray, encoding: str, where: str) -> np.ndarray:
    import cv2

    enc = encoding.lower()
    if enc in ("rgb8",):
        out = arr
    elif enc in ("bgr8", "8uc3"):
        out = arr[..., ::-1]
    elif enc == "rgba8":
        out = arr[..., :3]
    elif enc == "bgra8":
        out = arr[..., 2::-1]
    elif enc in ("mono8", "8uc1"):
        out = cv2.cvtColor(arr.reshape(arr.shape[0], arr.shape[1]), cv2.COLOR_GRAY2RGB)
    elif enc in ("mono16", "16uc1"):
        grey = (arr.reshape(arr.shape[0], arr.shape[1]) >> 8).astype(np.uint8)
        out = cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)
    else:
        raise DataError(f"{where}: unsupported image encoding {encoding!r} (supported: rgb8, bgr8, rgba8, "
                        "bgra8, mono8, mono16, 8UC1, 8UC3, 16UC1)")
    return np.ascontiguousarray(out, dtype=np.uint8)


_CHANNELS = {"rgb8": (3, 1), "bgr8": (3, 1), "8uc3": (3, 1), "rgba8": (4, 1), "bgra8": (4, 1),
             "mono8": (1, 1), "8uc1": (1, 1), "mono16": (1, 2), "16uc1": (1, 2)}


def decode_raw(msg, where: str) -> np.ndarray:
    """sensor_msgs/Image -> RGB uint8, honouring step (row padding) and endianness."""
    enc = str(msg.encoding).lower()
    if enc not in _CHANNELS:
        return _to_rgb(np.zeros((1, 1, 3), np.uint8), msg.encoding, where)  # raises the clear error
    channels, depth = _CHANNELS[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    row = w * channels * depth
    if h <= 0 or w <= 0 or step < row or data.size < step * (h - 1) + row:
        raise DataError(f"{where}: image data of {data.size} bytes does not fit {w}x{h} {msg.encoding} "
                        f"with step {step}")
    if data.size < step * h:  # the last row may lack its padding
        data = np.concatenate([data, np.zeros(step * h - data.size, np.uint8)])
    rows = data[: step * h].reshape(h, step)[:, :row]
    if depth == 2:
        dtype = ">u2" if int(getattr(msg, "is_bigendian", 0)) else "<u2"
        arr = np.ascontiguousarray(rows).view(dtype).astype(np.uint16).reshape(h, w)
    else:
        arr = rows.reshape(h, w, channels) if channels > 1 else rows.reshape(h, w)
    return _to_rgb(arr, enc, where)


def decode_compressed(data: bytes, fmt: str, where: str) -> np.ndarray:
    """sensor_msgs/CompressedImage payload -> RGB uint8; JPEG, PNG and QOI."""
    import cv2

    fmt_l = (fmt or "").lower()
    kind = _sniff(data)
    declared = ("qoi" if "qoi" in fmt_l else "png" if "png" in fmt_l
                else "jpeg" if ("jpeg" in fmt_l or "jpg" in fmt_l) else "")
    if "compresseddepth" in fmt_l:
        raise DataError(f"{where}: compressed depth format {fmt!r} is not supported (colour images only)")
    if not declared and fmt_l.split(";")[0].strip() not in ("", "rgb8", "bgr8", "mono8", "rgba8", "bgra8"):
        raise DataError(f"{where}: unknown compression format {fmt!r} (supported: jpeg, png, qoi)")
    if kind == "unknown":
        raise DataError(f"{where}: payload in format {fmt!r} is not JPEG, PNG or QOI data")
    if kind == "qoi":
        try:
            import qoi
        except ImportError:
            raise DataError(f"{where}: format {fmt!r} is QOI; install the 'qoi' package to decode it") from None
        try:
            arr = np.asarray(qoi.decode(bytes(data)))
        except Exception as err:  # noqa: BLE001
            raise DataError(f"{where}: corrupt QOI data ({_why(err)})") from None
        # qoi_image_transport stores the original pixel bytes: "qoi; bgr8" decodes to BGR order.
        enc = fmt_l.split(";")[1].strip() if ";" in fmt_l else ""
        enc = enc.split()[0] if enc else ""
        if enc not in _CHANNELS or _CHANNELS[enc][1] != 1:
            enc = "rgba8" if arr.ndim == 3 and arr.shape[2] == 4 else "rgb8"
        if _CHANNELS[enc][0] == 1 and arr.ndim == 3:
            arr = arr[..., 0]
        return _to_rgb(arr, enc, where)
    bgr = cv2.imdecode(np.frombuffer(bytes(data), np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DataError(f"{where}: corrupt {kind.upper()} data ({len(data)} bytes)")
    return np.ascontiguousarray(bgr[..., ::-1])


def decode_image(msg, msgtype: str, *, where: str = "image") -> np.ndarray:
    """Image or CompressedImage message (rosbags or runtime class) -> RGB uint8 [H, W, 3]."""
    if msgtype.endswith("CompressedImage"):
        return decode_compressed(bytes(msg.data), str(msg.format), where)
    return decode_raw(msg, where)


# ---------------------------------------------------------------------------------------------------
# Writing


def _storage_plugin(storage: str):
    from rosbags.rosbag2 import StoragePlugin

    if storage not in STORAGES:
        raise ConfigError(f"bag storage {storage!r} is not one of {', '.join(STORAGES)}")
    return StoragePlugin.SQLITE3 if storage == "sqlite3" else StoragePlugin.MCAP


def storage_for(path: Path) -> str:
    """mcap for a path ending in .mcap, else sqlite3 (the rosbag2 default)."""
    return "mcap" if str(path).endswith(".mcap") else "sqlite3"


class BagWriter:
    """Write messages into a new rosbag2 bag (sqlite3 or mcap), readable by `ros2 bag` and rosbags.

    The bag is exactly the path named: a name ending in .mcap or .db3 is one storage file (ros2 bag
    reads a bare file), any other name a rosbag2 folder with metadata.yaml, as `ros2 bag record -o`.
    Messages are rosbags typestore objects, or any object with the same field names (the runtime's
    message classes): `to_store` converts them field by field.
    """

    def __init__(self, path: Path, *, storage: str = "sqlite3", typestore=None) -> None:
        from rosbags.rosbag2 import Writer
        from rosbags.typesys import Stores, get_typestore

        self.path = Path(path)
        if self.path.exists():
            raise DataError(f"bag {self.path} exists already; choose a new name")
        if not self.path.parent.is_dir():
            raise DataError(f"folder {self.path.parent} for bag {self.path.name} does not exist")
        self.single_file = self.path.suffix in (".mcap", ".db3")
        if self.single_file and self.path.suffix != {"mcap": ".mcap", "sqlite3": ".db3"}[storage]:
            raise ConfigError(f"bag {self.path}: a {self.path.suffix} file cannot hold {storage} storage")
        self.storage = storage
        # A caller with its own types (the runtime's store knows effdl_ros/msg/*) passes its store.
        self.typestore = typestore if typestore is not None else get_typestore(Stores.ROS2_HUMBLE)
        # a single file is written as a bag folder beside it, then moved into place on close
        self._folder = self.path.with_name(f".{self.path.name}.partial") if self.single_file else self.path
        if self._folder.exists():
            import shutil

            shutil.rmtree(self._folder)  # left by a killed earlier writer of the same name
        self._writer = Writer(self._folder, version=8, storage_plugin=_storage_plugin(storage))
        self._conns: Dict[str, object] = {}
        self.counts: Dict[str, int] = {}

    def __enter__(self) -> "BagWriter":
        self._writer.open()
        return self

    def __exit__(self, *exc) -> None:
        self._writer.close()
        if self.single_file:
            import shutil

            files = [f for f in self._folder.iterdir() if f.suffix == self.path.suffix]
            files[0].replace(self.path)
            shutil.rmtree(self._folder)

    def write(self, topic: str, msgtype: str, msg, stamp_ns: int, *, latched: bool = False) -> None:
        """Append one message; `latched` records the topic as offered reliable + transient-local, so
        `ros2 bag play` republishes it for late subscribers."""
        if msgtype not in self.typestore.types:
            raise ConfigError(f"message type {msgtype} is unknown to the bag writer's type store")
        conn = self._conns.get(topic)
        if conn is None:
            qos = _latched_qos() if latched else None
            conn = self._writer.add_connection(topic, msgtype, typestore=self.typestore,
                                               **({"offered_qos_profiles": [qos]} if qos else {}))
            self._conns[topic] = conn
        data = self.typestore.serialize_cdr(to_store(msg, msgtype, self.typestore), msgtype)
        self._writer.write(conn, int(stamp_ns), data)
        self.counts[topic] = self.counts.get(topic, 0) + 1


def _latched_qos():
    """rosbag2's offered QoS of a latched topic (reliable, transient local, keep last 1); None with a
    rosbags too old to write QoS profiles."""
    try:
        from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
    except ImportError:
        return None
    never = QosTime(sec=0x7FFFFFFF, nsec=0xFFFFFFFF)
    return Qos(history=QosHistory.KEEP_LAST, depth=1, reliability=QosReliability.RELIABLE,
               durability=QosDurability.TRANSIENT_LOCAL, deadline=never, lifespan=never,
               liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=never,
               avoid_ros_namespace_conventions=False)


def to_store(msg, msgtype: str, typestore):
    """A message with the right field names -> the typestore's class (recursively), for serialising."""
    cls = typestore.types[msgtype]
    if isinstance(msg, cls):
        return msg
    kwargs = {}
    for f in dataclasses.fields(cls):
        ftype = f.type if isinstance(f.type, str) else str(f.type)
        if ftype.startswith("ClassVar"):
            continue
        if isinstance(msg, dict):
            value = msg[f.name]
        else:
            value = getattr(msg, f.name)
        kwargs[f.name] = _convert_field(value, ftype, typestore)
    return cls(**kwargs)


def _convert_field(value, ftype: str, typestore):
    # rosbags annotates nested types as "pkg__msg__Name", sequences as "list[...]", arrays as np.ndarray.
    inner = ftype[5:-1] if ftype.startswith("list[") else ftype
    if "__msg__" in inner:
        sub = inner.replace("__msg__", "/msg/")
        if sub in typestore.types:
            if isinstance(value, (list, tuple)):
                return [to_store(v, sub, typestore) for v in value]
            return to_store(value, sub, typestore)
    if "ndarray" in ftype:
        if isinstance(value, (bytes, bytearray, memoryview)):
            return np.frombuffer(bytes(value), np.uint8)
        match = re.search(r"np\.dtype\[np\.(\w+)\]", ftype)
        return np.asarray(value, dtype=getattr(np, match.group(1)) if match else None)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return np.frombuffer(bytes(value), np.uint8)
    return value


def register_msg_folder(typestore, folder: Path, package: str) -> List[str]:
    """Register every <Name>.msg in folder as package/msg/<Name> (e.g. effdl_ros's own messages)."""
    from rosbags.typesys import get_types_from_msg

    types = {}
    for path in sorted(Path(folder).glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"{package}/msg/{path.stem}"))
    typestore.register(types)
    return sorted(types)


def image_message(typestore, image_rgb: np.ndarray, stamp_ns: int, *, frame_id: str = "camera",
                  compressed: Optional[str] = None):
    """A rosbags Image (rgb8) or CompressedImage ("jpeg"/"png") message of an RGB uint8 array."""
    import cv2

    T = typestore.types
    stamp = T["builtin_interfaces/msg/Time"](sec=int(stamp_ns // 1_000_000_000),
                                             nanosec=int(stamp_ns % 1_000_000_000))
    header = T["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)
    img = np.ascontiguousarray(image_rgb, dtype=np.uint8)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ConfigError(f"image_message needs an RGB [H, W, 3] array, got shape {img.shape}")
    if compressed:
        ext = {"jpeg": ".jpg", "png": ".png"}.get(compressed)
        if ext is None:
            raise ConfigError(f"compression {compressed!r} is not one of jpeg, png")
        ok, buf = cv2.imencode(ext, img[..., ::-1])
        if not ok:
            raise DataError(f"cannot encode a {img.shape} image as {compressed}")
        return T[COMPRESSED](header=header, format=compressed, data=buf.reshape(-1).astype(np.uint8))
    h, w = img.shape[:2]
    return T[IMAGE](header=header, height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3,
                    data=img.reshape(-1))


def write_image_bag(path: Path, images: Iterable[np.ndarray], *, storage: str = "sqlite3",
                    topic: str = "/camera/image", compressed: Optional[str] = None, fps: float = 10.0,
                    start_ns: int = 1_700_000_000_000_000_000) -> int:
    """Record RGB frames as a rosbag2 bag (Image, or CompressedImage jpeg/png); returns the count."""
    period = int(round(1e9 / fps))
    n = 0
    with BagWriter(path, storage=storage) as writer:
        msgtype = COMPRESSED if compressed else IMAGE
        for i, img in enumerate(images):
            stamp = start_ns + i * period
            writer.write(topic, msgtype, image_message(writer.typestore, img, stamp,
                                                       compressed=compressed), stamp)
            n += 1
    return n

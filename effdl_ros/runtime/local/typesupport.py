"""Message classes and CDR for the dds and inproc backends, built from .msg definitions.

rosbags' ROS 2 type store parses the standard interfaces; we add vision_msgs 4.x and our own msg/
definitions, then give every type a class that, like rclpy's generated ones, is built with keyword
arguments and defaults. The same classes are what rosbags deserialises into, so bytes <-> objects
round-trip through one type system, and our CDR is rosbags' `serialize_cdr` byte for byte.
"""
from __future__ import annotations

import dataclasses
import functools
import threading
from pathlib import Path
from typing import Any, Dict

import numpy as np

_NUMPY = {
    "bool": np.bool_, "byte": np.uint8, "char": np.uint8, "int8": np.int8, "uint8": np.uint8,
    "int16": np.int16, "uint16": np.uint16, "int32": np.int32, "uint32": np.uint32,
    "int64": np.int64, "uint64": np.uint64, "float32": np.float32, "float64": np.float64,
}
_lock = threading.Lock()


def _interface_files():
    from effdl_ros.resources import share_path

    own = sorted(share_path("msg").glob("*.msg"))
    vision = sorted((Path(__file__).resolve().parents[1] / "interfaces" / "vision_msgs").glob("*.msg"))
    return [("vision_msgs", p) for p in vision] + [("effdl_ros", p) for p in own]


@functools.lru_cache(maxsize=1)
def typestore():
    """The process-wide type store with keyword-default classes for every type."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    with _lock:
        store = get_typestore(Stores.ROS2_JAZZY)
        extra: Dict[str, Any] = {}
        for package, path in _interface_files():
            extra.update(get_types_from_msg(path.read_text(), f"{package}/msg/{path.stem}"))
        store.register(extra)
        classes: Dict[str, type] = {}
        for name in store.fielddefs:
            _make_class(store, name, classes)
        store.types.update(classes)
        store.cache.clear()
        return store


def _default_for(store, desc, classes):
    from rosbags.typesys.base import Nodetype

    kind, detail = desc
    if kind == Nodetype.BASE:
        typ = detail[0]
        if typ == "string":
            return dataclasses.field(default="")
        if typ == "bool":
            return dataclasses.field(default=False)
        if typ.startswith("float"):
            return dataclasses.field(default=0.0)
        return dataclasses.field(default=0)
    if kind == Nodetype.NAME:
        cls = _make_class(store, detail, classes)
        return dataclasses.field(default_factory=cls)
    (sub_kind, sub_detail), count = detail
    if kind == Nodetype.ARRAY:
        if sub_kind == Nodetype.BASE and sub_detail[0] in _NUMPY:
            dtype = _NUMPY[sub_detail[0]]
            return dataclasses.field(default_factory=lambda: np.zeros(count, dtype=dtype))
        if sub_kind == Nodetype.BASE:
            return dataclasses.field(default_factory=lambda: [""] * count)
        cls = _make_class(store, sub_detail, classes)
        return dataclasses.field(default_factory=lambda: [cls() for _ in range(count)])
    # sequence
    if sub_kind == Nodetype.BASE and sub_detail[0] in _NUMPY:
        dtype = _NUMPY[sub_detail[0]]
        return dataclasses.field(default_factory=lambda: np.zeros(0, dtype=dtype))
    if sub_kind == Nodetype.NAME:
        _make_class(store, sub_detail, classes)
    return dataclasses.field(default_factory=list)


def _make_class(store, name: str, classes: Dict[str, type]) -> type:
    if name in classes:
        return classes[name]
    consts, fields = store.fielddefs[name]
    spec = [(fname, Any, _default_for(store, desc, classes)) for fname, desc, *_ in fields]
    namespace: Dict[str, Any] = {"__msgtype__": name}
    for cname, _ctype, cvalue in consts:
        namespace[cname] = cvalue
    cls = dataclasses.make_dataclass(name.rsplit("/", 1)[-1], spec, namespace=namespace, eq=True)
    cls.__module__ = "effdl_ros.runtime.messages"
    cls.__qualname__ = cls.__name__
    cls.__annotations__["__msgtype__"] = "typing.ClassVar[str]"
    classes[name] = cls
    return cls


def get_class(typename: str) -> type:
    try:
        return typestore().types[typename]
    except KeyError:
        raise KeyError(f"unknown message type {typename!r}") from None


def serialize(message: Any) -> bytes:
    """CDR (XCDR1, little-endian, with the 4-byte encapsulation header), as ROS 2 puts on the wire."""
    return bytes(typestore().serialize_cdr(message, message.__msgtype__))


def deserialize(data: bytes, typename: str) -> Any:
    """Raises ValueError for a truncated, garbage or mismatched payload."""
    from rosbags.serde import SerdeError

    try:
        return typestore().deserialize_cdr(data, typename)
    except (SerdeError, IndexError, AssertionError, TypeError, ValueError) as err:
        raise ValueError(f"cannot deserialize {typename}: {err}") from err


def rihs01(typename: str) -> str:
    """REP-2016 type hash ("RIHS01_<sha256>") as rmw puts it in a DDS endpoint's USER_DATA."""
    return typestore().hash_rihs01(typename)

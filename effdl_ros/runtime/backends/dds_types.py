"""Cyclone DDS types under ROS 2's names, generated from the same .msg definitions as our messages.

rmw_cyclonedds registers `sensor_msgs/msg/Image` as the IDL struct `sensor_msgs::msg::dds_::Image_`
(rosidl's IDL mapping: a `dds_` sub-module and a trailing underscore). We build the matching
cyclonedds IdlStruct for every type from rosbags' field definitions, so that Cyclone knows the real
structure (it validates every received sample against it and announces it in discovery), while the
payload itself is written as rosbags' CDR bytes (typesupport.serialize): the test suite checks that
this IdlStruct serialises every message to exactly those bytes.
"""
from __future__ import annotations

import threading
from typing import Any, Dict

_lock = threading.RLock()
_cache: Dict[str, type] = {}


def dds_type_name(typename: str) -> str:
    """'sensor_msgs/msg/Image' -> 'sensor_msgs::msg::dds_::Image_' (ROS 2's DDS type name)."""
    package, kind, name = typename.split("/")
    return f"{package}::{kind}::dds_::{name}_"


def dds_topic_name(topic_fqn: str) -> str:
    """'/camera/image' -> 'rt/camera/image' (ROS 2's prefix for topics)."""
    return "rt" + topic_fqn


def _base(name: str, bound: int):
    from cyclonedds.idl import types as t

    table = {
        "bool": bool, "byte": t.byte, "char": t.uint8,  # rosidl maps ROS 2 char to uint8
        "int8": t.int8, "uint8": t.uint8, "int16": t.int16, "uint16": t.uint16,
        "int32": t.int32, "uint32": t.uint32, "int64": t.int64, "uint64": t.uint64,
        "float32": t.float32, "float64": t.float64,
    }
    if name == "string":
        return t.bounded_str[bound] if bound else str
    if name in table:
        return table[name]
    raise TypeError(f"field type {name!r} has no DDS mapping in effdl_ros (wstring is unsupported)")


def _field_type(desc):
    from cyclonedds.idl import types as t
    from rosbags.typesys.base import Nodetype

    kind, detail = desc
    if kind == Nodetype.BASE:
        return _base(*detail)
    if kind == Nodetype.NAME:
        return idl_type(detail)
    sub, count = detail
    element = _field_type(sub)
    if kind == Nodetype.ARRAY:
        return t.array[element, count]
    return t.sequence[element, count] if count else t.sequence[element]


def idl_type(typename: str) -> type:
    """The cyclonedds IdlStruct class for a ROS type name, built once per process."""
    with _lock:
        if typename in _cache:
            return _cache[typename]
        from cyclonedds.idl import make_idl_struct

        from effdl_ros.runtime.local.typesupport import typestore

        _consts, fields = typestore().fielddefs[typename]
        spec = {name: _field_type(desc) for name, desc, *_ in fields}
        cls = make_idl_struct(typename.rsplit("/", 1)[-1] + "_", dds_type_name(typename), spec)
        _cache[typename] = cls
        return cls


def to_idl(msg: Any) -> Any:
    """Our message object -> an instance of its IdlStruct (for tests and plain-DDS interop)."""
    import numpy as np
    from rosbags.typesys.base import Nodetype

    from effdl_ros.runtime.local.typesupport import typestore

    typename = msg.__msgtype__
    _consts, fields = typestore().fielddefs[typename]
    values = {}
    for name, (kind, detail), *_ in fields:
        value = getattr(msg, name)
        if kind == Nodetype.NAME:
            value = to_idl(value)
        elif kind in (Nodetype.ARRAY, Nodetype.SEQUENCE):
            (sub_kind, sub_detail), _count = detail
            if sub_kind == Nodetype.NAME:
                value = [to_idl(v) for v in value]
            elif sub_detail[0] in ("uint8", "byte", "char") and kind == Nodetype.SEQUENCE:
                value = bytes(np.asarray(value, dtype=np.uint8))
            else:
                value = np.asarray(value).tolist() if isinstance(value, np.ndarray) else list(value)
        values[name] = value
    return idl_type(typename)(**values)

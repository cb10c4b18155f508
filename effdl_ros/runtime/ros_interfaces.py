"""ROS 2 service types for the dds and inproc backends: rcl_interfaces and lifecycle_msgs services.

rosbags' type store knows the messages these services use (rcl_interfaces/msg/Parameter,
lifecycle_msgs/msg/Transition, ...) but no services. We register each service's request and response
as the message types `<pkg>/srv/<Name>_Request` / `_Response` (rosidl's names; rmw_cyclonedds calls
their DDS types `<pkg>::srv::dds_::<Name>_Request_`), written from the published .srv definitions,
and give every service a class with rclpy's shape: `GetParameters.Request`, `GetParameters.Response`.
Under real rclpy, use the generated packages instead (see service_type()).
"""
from __future__ import annotations

import functools
import threading
from typing import Dict, Tuple

# request text, response text; field types are fully qualified so that rosbags resolves them
_SERVICES: Dict[str, Tuple[str, str]] = {
    "rcl_interfaces/srv/ListParameters": (
        "uint64 DEPTH_RECURSIVE=0\nstring[] prefixes\nuint64 depth\n",
        "rcl_interfaces/ListParametersResult result\n"),
    "rcl_interfaces/srv/GetParameters": (
        "string[] names\n",
        "rcl_interfaces/ParameterValue[] values\n"),
    "rcl_interfaces/srv/SetParameters": (
        "rcl_interfaces/Parameter[] parameters\n",
        "rcl_interfaces/SetParametersResult[] results\n"),
    "rcl_interfaces/srv/SetParametersAtomically": (
        "rcl_interfaces/Parameter[] parameters\n",
        "rcl_interfaces/SetParametersResult result\n"),
    "rcl_interfaces/srv/DescribeParameters": (
        "string[] names\n",
        "rcl_interfaces/ParameterDescriptor[] descriptors\n"),
    "rcl_interfaces/srv/GetParameterTypes": (
        "string[] names\n",
        "uint8[] types\n"),
    "lifecycle_msgs/srv/ChangeState": (
        "lifecycle_msgs/Transition transition\n",
        "bool success\n"),
    "lifecycle_msgs/srv/GetState": (
        "",
        "lifecycle_msgs/State current_state\n"),
    "lifecycle_msgs/srv/GetAvailableStates": (
        "",
        "lifecycle_msgs/State[] available_states\n"),
    "lifecycle_msgs/srv/GetAvailableTransitions": (
        "",
        "lifecycle_msgs/TransitionDescription[] available_transitions\n"),
}
_lock = threading.Lock()


class ServiceType:
    """A service type: .Request and .Response message classes, as rclpy's generated srv classes."""

    def __init__(self, srvtype: str, request: type, response: type) -> None:
        self.__srvtype__ = srvtype
        self.__name__ = srvtype.rsplit("/", 1)[-1]
        self.Request = request
        self.Response = response

    def __repr__(self) -> str:
        return f"<service type {self.__srvtype__}>"


def _register() -> None:
    """Add the request/response types to the process-wide type store (once)."""
    from rosbags.typesys import get_types_from_msg

    from effdl_ros.runtime.local import typesupport

    store = typesupport.typestore()
    if "lifecycle_msgs/srv/GetState_Request" in store.fielddefs:
        return
    defs = {}
    for srvtype, texts in _SERVICES.items():
        for part, text in zip(("Request", "Response"), texts):
            name = f"{srvtype}_{part}"
            parsed = get_types_from_msg(text or "\n", name)
            # rosbags files a name with /srv/ under <pkg>/srv/msg/...: keep rosidl's name
            (consts, fields), = parsed.values()
            if not fields:  # rosidl gives an empty struct one uint8 member (as std_msgs/Empty)
                fields = list(store.fielddefs["std_msgs/msg/Empty"][1])
            defs[name] = (consts, fields)
    store.register(defs)
    classes: Dict[str, type] = {}
    for name in defs:
        typesupport._make_class(store, name, classes)
    store.types.update(classes)
    store.cache.clear()


@functools.lru_cache(maxsize=None)
def _service(srvtype: str) -> ServiceType:
    with _lock:
        _register()
    from effdl_ros.runtime.local.typesupport import get_class

    return ServiceType(srvtype, get_class(srvtype + "_Request"), get_class(srvtype + "_Response"))


def service_type(srvtype: str, *, local: bool = False):
    """'rcl_interfaces/srv/GetParameters' -> the service class: rclpy's own under the rclpy backend
    unless local (a node of our runtime: a local context also runs where rclpy is selected)."""
    from effdl_ros.runtime.backend import uses_rclpy

    if srvtype not in _SERVICES:
        raise KeyError(f"unknown service type {srvtype!r}; known: {', '.join(sorted(_SERVICES))}")
    if uses_rclpy() and not local:
        import importlib

        package, _srv, name = srvtype.split("/")
        return getattr(importlib.import_module(f"{package}.srv"), name)
    return _service(srvtype)


def message(typename: str, *, local: bool = False) -> type:
    """A message class used by these services, e.g. 'lifecycle_msgs/msg/State' (local: as above)."""
    from effdl_ros.runtime.backend import uses_rclpy

    if uses_rclpy() and not local:
        import importlib

        package, _msg, name = typename.split("/")
        return getattr(importlib.import_module(f"{package}.msg"), name)
    _service("lifecycle_msgs/srv/GetState")  # registers everything once
    from effdl_ros.runtime.local.typesupport import get_class

    return get_class(typename)


def known_services() -> Tuple[str, ...]:
    return tuple(sorted(_SERVICES))

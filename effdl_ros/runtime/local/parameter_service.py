"""A node's parameter services (`~/get_parameters`, `~/set_parameters`, ...), as rclpy offers them.

These are what `ros2 param get/set/list/describe` call. Values cross as rcl_interfaces/ParameterValue;
a set goes through the node's own checks (declared, type, read-only, on-set callbacks), so a remote
set is refused for the same reason, in the same words, as a local one.
"""
from __future__ import annotations

from typing import Any, List

import numpy as np

from effdl_ros.runtime.local.parameters import Parameter, ParameterNotDeclaredException, ParameterType
from effdl_ros.runtime.ros_interfaces import message as _message, service_type as _service_type


def message(typename: str) -> type:
    return _message(typename, local=True)  # our node: our classes, whichever backend is selected


def service_type(srvtype: str):
    return _service_type(srvtype, local=True)

_SERVICES = (
    ("describe_parameters", "rcl_interfaces/srv/DescribeParameters"),
    ("get_parameters", "rcl_interfaces/srv/GetParameters"),
    ("get_parameter_types", "rcl_interfaces/srv/GetParameterTypes"),
    ("list_parameters", "rcl_interfaces/srv/ListParameters"),
    ("set_parameters", "rcl_interfaces/srv/SetParameters"),
    ("set_parameters_atomically", "rcl_interfaces/srv/SetParametersAtomically"),
)
_FIELDS = {
    ParameterType.BOOL: ("bool_value", None), ParameterType.INTEGER: ("integer_value", None),
    ParameterType.DOUBLE: ("double_value", None), ParameterType.STRING: ("string_value", None),
    ParameterType.BYTE_ARRAY: ("byte_array_value", np.uint8),
    ParameterType.BOOL_ARRAY: ("bool_array_value", np.bool_),
    ParameterType.INTEGER_ARRAY: ("integer_array_value", np.int64),
    ParameterType.DOUBLE_ARRAY: ("double_array_value", np.float64),
    ParameterType.STRING_ARRAY: ("string_array_value", None),
}


def to_value_msg(param: Parameter) -> Any:
    """Parameter -> rcl_interfaces/msg/ParameterValue."""
    value = message("rcl_interfaces/msg/ParameterValue")(type=int(param.type_))
    field = _FIELDS.get(param.type_)
    if field is not None:
        name, dtype = field
        raw = param.value
        if dtype is not None:
            raw = np.asarray(list(raw), dtype=dtype)
        elif param.type_ == ParameterType.STRING_ARRAY:
            raw = list(raw)
        setattr(value, name, raw)
    return value


def from_value_msg(name: str, value: Any) -> Parameter:
    """rcl_interfaces/msg/ParameterValue -> Parameter (a wrong type code is a ValueError)."""
    kind = ParameterType(int(value.type))
    if kind == ParameterType.NOT_SET:
        return Parameter(name, ParameterType.NOT_SET, None)
    field, dtype = _FIELDS[kind]
    raw = getattr(value, field)
    if kind == ParameterType.BYTE_ARRAY:
        raw = bytes(np.asarray(raw, dtype=np.uint8))
    elif dtype is not None or kind == ParameterType.STRING_ARRAY:
        raw = np.asarray(raw).tolist() if dtype is not None else list(raw)
    elif kind == ParameterType.BOOL:
        raw = bool(raw)
    elif kind == ParameterType.INTEGER:
        raw = int(raw)
    elif kind == ParameterType.DOUBLE:
        raw = float(raw)
    return Parameter(name, kind, raw)


class ParameterService:
    """Creates the six services on `node` and answers them from its parameters."""

    def __init__(self, node) -> None:
        self._node = node
        for suffix, srvtype in _SERVICES:
            node.create_service(service_type(srvtype), f"~/{suffix}", getattr(self, "_" + suffix))

    def _describe_parameters(self, request, response):
        Descriptor = message("rcl_interfaces/msg/ParameterDescriptor")
        out = []
        for name in request.names:
            try:
                d = self._node.describe_parameter(name)
            except ParameterNotDeclaredException:
                response.descriptors = []
                return response
            out.append(Descriptor(name=name, type=int(d.type), description=d.description,
                                  additional_constraints=d.additional_constraints,
                                  read_only=bool(d.read_only), dynamic_typing=bool(d.dynamic_typing)))
        response.descriptors = out
        return response

    def _get_parameters(self, request, response):
        try:
            response.values = [to_value_msg(self._node.get_parameter(n)) for n in request.names]
        except ParameterNotDeclaredException:
            response.values = []  # as rclpy: an undeclared name answers no values at all
        return response

    def _get_parameter_types(self, request, response):
        try:
            types = [int(self._node.get_parameter(n).type_) for n in request.names]
        except ParameterNotDeclaredException:
            types = []
        response.types = np.asarray(types, dtype=np.uint8)
        return response

    def _list_parameters(self, request, response):
        names: List[str] = []
        prefixes = set()
        depth = int(request.depth)
        for name in sorted(self._node._parameters):
            matched = [p for p in request.prefixes if name == p or name.startswith(p + ".")]
            if request.prefixes and not matched:
                continue
            base = max((len(p) + 1 for p in matched), default=0)
            rest = name[base:] if base <= len(name) else ""
            if depth and rest.count(".") >= depth:
                continue
            names.append(name)
            if "." in name:
                prefixes.add(name.rsplit(".", 1)[0])
        response.result = message("rcl_interfaces/msg/ListParametersResult")(
            names=names, prefixes=sorted(prefixes))
        return response

    def _results(self, params_msgs, atomically: bool):
        Result = message("rcl_interfaces/msg/SetParametersResult")
        try:
            params = [from_value_msg(p.name, p.value) for p in params_msgs]
        except (ValueError, KeyError) as err:
            return [Result(successful=False, reason=f"bad parameter value: {err}")]
        results = []
        batches = [params] if atomically else [[p] for p in params]
        for batch in batches:
            try:
                result = self._node.set_parameters_atomically(batch)
                results.append(Result(successful=bool(result.successful), reason=result.reason))
            except ParameterNotDeclaredException as err:
                results.append(Result(successful=False, reason=str(err)))
            except Exception as err:  # noqa: BLE001 - an on-set callback's error is the reply, not a crash
                results.append(Result(successful=False, reason=f"{type(err).__name__}: {err}"))
        return results

    def _set_parameters(self, request, response):
        response.results = self._results(request.parameters, atomically=False)
        return response

    def _set_parameters_atomically(self, request, response):
        response.result = self._results(request.parameters, atomically=True)[0]
        return response

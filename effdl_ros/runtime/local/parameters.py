"""Parameters with rclpy's semantics: declared with a type, overrides from the command line or a
params file, changes vetted by on-set callbacks that may refuse with a reason."""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, List, Optional


class ParameterType(enum.IntEnum):
    NOT_SET = 0
    BOOL = 1
    INTEGER = 2
    DOUBLE = 3
    STRING = 4
    BYTE_ARRAY = 5
    BOOL_ARRAY = 6
    INTEGER_ARRAY = 7
    DOUBLE_ARRAY = 8
    STRING_ARRAY = 9

    @classmethod
    def from_parameter_value(cls, value: Any) -> "ParameterType":
        if value is None:
            return cls.NOT_SET
        if isinstance(value, bool):
            return cls.BOOL
        if isinstance(value, int):
            return cls.INTEGER
        if isinstance(value, float):
            return cls.DOUBLE
        if isinstance(value, str):
            return cls.STRING
        if isinstance(value, (bytes, bytearray)):
            return cls.BYTE_ARRAY
        if isinstance(value, (list, tuple)):
            if all(isinstance(v, bool) for v in value) and value:
                return cls.BOOL_ARRAY
            if all(isinstance(v, int) and not isinstance(v, bool) for v in value) and value:
                return cls.INTEGER_ARRAY
            if all(isinstance(v, float) for v in value) and value:
                return cls.DOUBLE_ARRAY
            if all(isinstance(v, str) for v in value):
                return cls.STRING_ARRAY  # an empty list is taken as a string array, as in rclpy
        raise TypeError(f"the value {value!r} cannot be a parameter")


class Parameter:
    """rclpy.parameter.Parameter(name, type_=None, value=None)."""

    Type = ParameterType

    def __init__(self, name: str, type_: Optional[ParameterType] = None, value: Any = None) -> None:
        if type_ is None:
            type_ = ParameterType.from_parameter_value(value)
        self._name = name
        self._type_ = ParameterType(type_)
        self._value = list(value) if isinstance(value, tuple) else value

    @property
    def name(self) -> str:
        return self._name

    @property
    def type_(self) -> ParameterType:
        return self._type_

    @property
    def value(self) -> Any:
        return self._value

    def __repr__(self) -> str:
        return f"Parameter({self._name!r}, {self._type_.name}, {self._value!r})"


@dataclass
class ParameterDescriptor:
    """The subset of rcl_interfaces/ParameterDescriptor that the nodes use."""

    name: str = ""
    type: int = 0
    description: str = ""
    additional_constraints: str = ""
    read_only: bool = False
    dynamic_typing: bool = False


@dataclass
class SetParametersResult:
    successful: bool = True
    reason: str = ""


class ParameterException(Exception):
    pass


class ParameterNotDeclaredException(ParameterException):
    pass


class ParameterAlreadyDeclaredException(ParameterException):
    pass


class InvalidParameterTypeException(ParameterException):
    pass


def parse_value(text: str) -> Any:
    """A value from `-p name:=value` (YAML rules, as ros2 uses)."""
    import yaml

    return yaml.safe_load(text)


def overrides_from_params_file(path: str, node_fqn: str) -> List[Parameter]:
    """Parameters for one node from a ROS 2 params file (node: {ros__parameters: {...}}).

    Keys may be the node's name, its fully qualified name, `/**` or `**` (wildcards); nested
    dictionaries flatten to dotted names, as in rcl.
    """
    import yaml

    from effdl_ros.errors import ConfigError

    try:
        with open(path, "r", encoding="utf-8") as handle:
            document = yaml.safe_load(handle) or {}
    except OSError as err:
        raise ConfigError(f"cannot read params file {path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"params file {path} is not valid YAML: {err}") from err
    if not isinstance(document, dict):
        raise ConfigError(f"params file {path} must map node names to {{ros__parameters: ...}}")
    return overrides_from_dict(document, node_fqn, origin=path)


def overrides_from_dict(document: dict, node_fqn: str, origin: str = "parameters") -> List[Parameter]:
    from effdl_ros.errors import ConfigError

    name = node_fqn.rsplit("/", 1)[-1]
    wanted = {node_fqn, node_fqn.lstrip("/"), name, "/**", "**"}
    found: dict = {}
    for key, section in document.items():
        if key not in wanted:
            continue
        if not isinstance(section, dict) or "ros__parameters" not in section:
            raise ConfigError(f"{origin}: section {key!r} has no ros__parameters")
        found.update(_flatten(section["ros__parameters"] or {}))
    return [Parameter(k, value=v) for k, v in found.items()]


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out

"""A node's parameters as one table: declared with a ParameterDescriptor (so `ros2 param describe`
documents them) and checkable before any node starts (effdl_ros.graph.validate)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence, Tuple

from effdl_ros.errors import ConfigError

_TYPE_NAMES = {bool: "BOOL", int: "INTEGER", float: "DOUBLE", str: "STRING"}


def type_name(value: Any) -> str:
    """The ROS 2 parameter type of a value, as rcl names it (DOUBLE, STRING_ARRAY, ...)."""
    if isinstance(value, (list, tuple)):
        kinds = {type_name(v) for v in value}
        if not value or kinds == {"STRING"}:
            return "STRING_ARRAY"  # an empty list counts as a string array, as in rclpy
        return f"{kinds.pop()}_ARRAY" if len(kinds) == 1 else "MIXED_ARRAY"
    for kind, name in _TYPE_NAMES.items():
        if type(value) is kind:
            return name
    return type(value).__name__


@dataclass(frozen=True)
class Param:
    """One declared parameter. `range` is inclusive; `path="file"` means the value names a file
    (relative paths resolve against the package share folder) that must exist, "" = no check."""

    name: str
    default: Any
    description: str
    range: Optional[Tuple[float, float]] = None
    choices: Optional[Tuple[Any, ...]] = None
    path: str = ""

    @property
    def constraints(self) -> str:
        parts = []
        if self.range is not None:
            parts.append(f"in [{self.range[0]:g}, {self.range[1]:g}]")
        if self.choices is not None:
            parts.append("one of " + ", ".join(str(c) for c in self.choices))
        if self.path == "file":
            parts.append("an existing file")
        return "; ".join(parts)

    def problem(self, value: Any) -> Optional[str]:
        """Why `value` cannot be this parameter's value (one clause), or None when it can."""
        declared, given = type_name(self.default), type_name(value)
        if declared != given and not (declared.endswith("_ARRAY") and given == "STRING_ARRAY" and not value):
            return f"is {declared}, but the value {value!r} is {given}"
        if self.range is not None:
            values = value if isinstance(value, (list, tuple)) else [value]
            low, high = self.range
            bad = [v for v in values if not low <= v <= high]
            if bad:
                return f"must lie in [{low:g}, {high:g}], got {bad[0]!r}"
        if self.choices is not None and value not in self.choices:
            return f"must be one of {', '.join(map(str, self.choices))}, got {value!r}"
        if self.path == "file" and value:
            from effdl_ros.resources import resolve_path

            resolved = resolve_path(value)
            if not resolved.is_file():
                return f"names {value!r}, which is not a file (looked for {resolved})"
        return None


# Parameters every budgeted model node has, declared once here so their meaning stays the same.
ENERGY_PROFILE = Param("energy_profile", "x86_cpu", "energy cost profile of the device (effdl_ros.energy.cost_model)")
ENERGY_ESTIMATE = Param("energy_estimate", "ops", "ops: energy modelled from executed MACs; cpu_time: from this "
                        "process's CPU time", choices=("ops", "cpu_time"))
BUDGET_STALE_AFTER = Param("stale_after_s", 3.0, "a budget older than this is stale", range=(1e-3, 1e6))
HOTSWAP_MODEL_DIR = Param("model_dir", "", "folder that hot-swapped models must lie in (\"\" = the model's folder)")


class _DeviceParam(Param):
    """A torch device name: checked (syntax only, no torch import) before any node starts."""

    def problem(self, value: Any) -> Optional[str]:
        from effdl_ros.device import check_spec

        return super().problem(value) or check_spec(value)


DEVICE = _DeviceParam("device", "cpu", "torch device of the model and the work: cpu, cuda, cuda:N or auto (first GPU, "
               "else cpu); CUDA absent is a startup error")
FP16 = Param("fp16", False, "half precision (CUDA autocast to float16) on a GPU; refused on the CPU")


def default_fraction(value: float = 1.0) -> Param:
    return Param("default_compute_fraction", value, "compute fraction used while no fresh budget", range=(0.0, 1.0))


def find(params: Sequence[Param], name: str) -> Optional[Param]:
    return next((p for p in params if p.name == name), None)


def declare(node, params: Sequence[Param]) -> None:
    """Declare every parameter of the table on `node`, each with its description and constraints;
    a value that breaks a constraint is a ConfigError naming the node and the parameter."""
    from effdl_ros.runtime import ParameterDescriptor

    for spec in params:
        node.declare_parameter(spec.name, spec.default, ParameterDescriptor(
            description=spec.description, additional_constraints=spec.constraints))
        problem = spec.problem(node.get_parameter(spec.name).value)
        if problem is not None:
            raise ConfigError(f"{node.get_fully_qualified_name()}: parameter {spec.name!r} {problem}")

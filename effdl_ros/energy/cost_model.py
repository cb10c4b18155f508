"""The cost model: energy of the work a node actually ran, where no meter can be read.

Three modes, all MODELLED (never call their output measured):

* operations: executed MACs x pJ/MAC + bytes touched x pJ/byte, with per-platform coefficients from
  config/energy_profiles.yaml. The 45 nm operation energies come from Horowitz, "Computing's energy
  problem (and what we can do about it)", ISSCC 2014; the platform figures are derived from datasheets,
  each with its source beside it in the YAML file.
* wall time x power: busy seconds x (idle + (TDP - idle) x utilisation), for CPUs whose TDP is known.
* CPU time x power per core: the CPU seconds the OS charged to the node's process (measured) x the
  profile's core_w (a datasheet-derived figure), for a node that has its process to itself.

Counting uses torch's own dispatcher: only aten ops that really execute are seen, so a layer a gate
skipped costs nothing, unlike counting a static graph.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

from effdl_ros.errors import ConfigError
from effdl_ros.resources import share_path

MEASURED = "measured"
MODELLED = "modelled"
DEFAULT_PROFILE = "x86_cpu"

_FIELDS = ("description", "pj_per_mac", "pj_per_byte", "tdp_w", "idle_w", "efficiency", "core_w")


@dataclass(frozen=True)
class Profile:
    """Energy coefficients of one platform (see config/energy_profiles.yaml for their sources)."""

    name: str
    pj_per_mac: float
    pj_per_byte: float
    tdp_w: Optional[float] = None
    idle_w: Optional[float] = None
    efficiency: float = 1.0          # achieved share of peak MAC throughput, (0, 1]
    description: str = ""
    core_w: Optional[float] = None   # power of one fully busy core (W), for the CPU-time mode

    @property
    def meter_name(self) -> str:
        """The name EnergyReport.meter carries for figures from this profile."""
        return f"model:{self.name}"


@dataclass(frozen=True)
class Work:
    """What one item executed: multiply-accumulates, FLOPs (torch's count) and bytes read + written."""

    macs: int = 0
    flops: int = 0
    bytes: int = 0

    def __add__(self, other: "Work") -> "Work":
        return Work(self.macs + other.macs, self.flops + other.flops, self.bytes + other.bytes)

    def scaled(self, factor: float) -> "Work":
        return Work(int(round(self.macs * factor)), int(round(self.flops * factor)),
                    int(round(self.bytes * factor)))


@dataclass(frozen=True)
class Estimate:
    """An energy figure and where it comes from: source is MEASURED or MODELLED."""

    energy_j: float
    source: str
    method: str      # "ops:<profile>", "walltime:<profile>" or a meter's name


# ---------------------------------------------------------------------------------------------- profiles

def default_profiles_path() -> Path:
    return share_path("config", "energy_profiles.yaml")


def _line_of(node_map: Dict[str, Any], key: str) -> str:
    node = node_map.get(key)
    return f"line {node.start_mark.line + 1}" if node is not None else "?"


def load_profiles(path: Union[str, Path, None] = None) -> Dict[str, Profile]:
    """Read every profile of the YAML file; a bad coefficient is a ConfigError naming file and line."""
    import yaml

    path = Path(path) if path is not None else default_profiles_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the energy profiles ({err.strerror or err}).") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} is not valid YAML ({getattr(err, 'problem', err)}).") from None
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{path}: expected a mapping of profile name -> coefficients.")
    lines = {k.value: k for k, _ in root.value}
    profiles = {}
    for name, fields in data.items():
        where = f"{path} {_line_of(lines, name)}"
        if not isinstance(fields, dict):
            raise ConfigError(f"{where}: profile {name!r} must be a mapping of coefficients.")
        unknown = sorted(set(fields) - set(_FIELDS))
        if unknown:
            raise ConfigError(f"{where}: profile {name!r} has unknown keys {unknown}; known: {list(_FIELDS)}.")
        profiles[str(name)] = _profile_from(str(name), fields, where)
    return profiles


def _number(fields: Mapping[str, Any], key: str, where: str, *, optional: bool = False,
            default: Optional[float] = None) -> Optional[float]:
    value = fields.get(key, default)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{where}: {key} is missing.")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{where}: {key} must be a finite number >= 0, got {value!r}.")
    return float(value)


def _profile_from(name: str, fields: Mapping[str, Any], where: str) -> Profile:
    eff = _number(fields, "efficiency", where, default=1.0)
    if not 0.0 < eff <= 1.0:
        raise ConfigError(f"{where}: efficiency must lie in (0, 1], got {eff!r}.")
    tdp = _number(fields, "tdp_w", where, optional=True)
    idle = _number(fields, "idle_w", where, optional=True)
    if tdp is not None and idle is not None and idle > tdp:
        raise ConfigError(f"{where}: idle_w {idle} exceeds tdp_w {tdp}.")
    return Profile(name=name, pj_per_mac=_number(fields, "pj_per_mac", where),
                   pj_per_byte=_number(fields, "pj_per_byte", where), tdp_w=tdp, idle_w=idle,
                   efficiency=eff, description=str(fields.get("description", "")),
                   core_w=_number(fields, "core_w", where, optional=True))


def get_profile(name: str = DEFAULT_PROFILE, path: Union[str, Path, None] = None) -> Profile:
    profiles = load_profiles(path)
    if name not in profiles:
        raise ConfigError(f"unknown energy profile {name!r}; known: {sorted(profiles)}.")
    return profiles[name]


# ---------------------------------------------------------------------------------------------- energy

def ops_energy_j(work: Work, profile: Profile) -> float:
    """Modelled energy (J) of executed MACs and bytes on a platform."""
    macs = max(0, int(work.macs))
    nbytes = max(0, int(work.bytes))
    return (macs * profile.pj_per_mac / profile.efficiency + nbytes * profile.pj_per_byte) * 1e-12


def walltime_energy_j(busy_s: float, profile: Profile, *, utilisation: float = 1.0) -> float:
    """Modelled energy (J) of busy wall time on a CPU of known TDP: idle + (TDP - idle) x utilisation."""
    if profile.tdp_w is None:
        raise ConfigError(f"energy profile {profile.name!r} has no tdp_w, so the wall-time mode is unavailable.")
    idle = profile.idle_w or 0.0
    u = 0.0 if not math.isfinite(utilisation) else min(1.0, max(0.0, utilisation))
    return max(0.0, busy_s) * (idle + (profile.tdp_w - idle) * u)


def cpu_time_energy_j(cpu_s: float, profile: Profile) -> float:
    """Modelled energy (J) of CPU seconds the OS charged to a process: cpu_s x the profile's core_w.

    The CPU time is measured (by the OS); the watts per busy core are a profile figure, so the result is
    MODELLED, never measured."""
    if profile.core_w is None:
        raise ConfigError(f"energy profile {profile.name!r} has no core_w, so the CPU-time mode is unavailable.")
    return max(0.0, cpu_s) * profile.core_w


def estimate(work: Work, profile: Profile) -> Estimate:
    return Estimate(ops_energy_j(work, profile), MODELLED, f"ops:{profile.name}")


# ---------------------------------------------------------------------------------------------- counting

def _byte_counter():
    """A dispatch mode that sums the bytes of every tensor an executed op reads or writes.

    Views move no data and are not counted. No cache is modelled: every op reads its inputs and writes
    its outputs once, which overstates DRAM traffic for small tensors (an upper bound).
    """
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class ByteCounter(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.bytes = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if not getattr(func, "is_view", False):
                for t in tree_leaves((args, kwargs, out)):
                    if isinstance(t, torch.Tensor):
                        self.bytes += t.numel() * t.element_size()
            return out

    return ByteCounter()


def count_work(model: Any, *inputs: Any, grad: bool = False, **kwargs: Any) -> Work:
    """Run model(*inputs) once and count the MACs, FLOPs and bytes of the ops that executed.

    MACs = torch's FLOP count / 2 (FlopCounterMode counts 2 FLOPs per multiply-accumulate of matmuls and
    convolutions; element-wise ops are not in its count). grad=False runs under no_grad.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    flop_mode = FlopCounterMode(display=False)
    bytes_mode = _byte_counter()
    ctx = torch.enable_grad() if grad else torch.no_grad()
    with ctx, flop_mode, bytes_mode:
        model(*inputs, **kwargs)
    flops = int(flop_mode.get_total_flops())
    return Work(macs=flops // 2, flops=flops, bytes=int(bytes_mode.bytes))


def count_macs(model: Any, *inputs: Any, **kwargs: Any) -> int:
    """Executed multiply-accumulates of one forward pass of model(*inputs)."""
    return count_work(model, *inputs, **kwargs).macs

"""Power meters behind one interface: energy (J) and power (W) since start(), plus the source's name.

Readers, in the order detect_meter() tries them: NVML (GPU), RAPL powercap (CPU package + DRAM),
Jetson INA3221 rails (hwmon), battery (power_supply). Each sysfs reader takes its root folder as a
parameter so tests build the tree in a temporary folder. Figures from a meter are MEASURED.

Counter meters (RAPL, NVML energy) difference a cumulative counter: a counter below its last value has
wrapped (add the range, RAPL's max_energy_range_uj) or was reset (the step is dropped and logged; energy
never goes backwards). Power-only meters (INA3221, battery, NVML without an energy counter) integrate
power over the clock with the trapezoid rule, so their energy is only as good as the read rate.
"""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from effdl_ros.errors import DataError

_log = logging.getLogger("effdl_ros.energy.meters")

RAPL_ROOT = "/sys/class/powercap"
HWMON_ROOT = "/sys/class/hwmon"
POWER_SUPPLY_ROOT = "/sys/class/power_supply"


class MeterError(DataError):
    """A meter file is missing, unreadable or malformed; the message names the file."""


@dataclass(frozen=True)
class Reading:
    energy_j: float   # since start() (J), never decreasing
    power_w: float    # average since the previous read, or the instantaneous power (W)
    t: float          # clock time of the reading (s)


def _read_number(path: Path) -> float:
    try:
        text = path.read_text().strip()
    except PermissionError:
        raise MeterError(f"{path}: permission denied (RAPL energy files are root-only since CVE-2020-8694; "
                         f"grant read access, e.g. `sudo chmod a+r {path}`, or run as root).") from None
    except OSError as err:
        raise MeterError(f"{path}: cannot read ({err.strerror or err}).") from None
    try:
        value = float(text)
    except ValueError:
        raise MeterError(f"{path}: expected a number, got {text[:40]!r}.") from None
    if not math.isfinite(value):
        raise MeterError(f"{path}: expected a finite number, got {text[:40]!r}.")
    return value


class _OpenFile:
    """A sysfs attribute kept open and re-read with pread at offset 0 (no open/close per read)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: Optional[int] = None

    def number(self) -> float:
        if self.fd is None:
            try:
                self.fd = os.open(self.path, os.O_RDONLY)
            except PermissionError:
                return _read_number(self.path)  # raises the CVE-2020-8694 message
            except OSError:
                return _read_number(self.path)
        try:
            text = os.pread(self.fd, 64, 0).decode(errors="replace").strip()
            value = float(text)
        except (OSError, ValueError):
            self.close()
            return _read_number(self.path)  # re-read by path: a clear error if it is really broken
        if not math.isfinite(value):
            raise MeterError(f"{self.path}: expected a finite number, got {text[:40]!r}.")
        return value

    def close(self) -> None:
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None


def _read_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError as err:
        raise MeterError(f"{path}: cannot read ({err.strerror or err}).") from None


class Meter:
    """Base class: subclasses give `name` and either _counter_j() (cumulative) or _power_now_w()."""

    name = "meter"
    is_counter = True

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._started = False

    # subclasses ------------------------------------------------------------------------------------
    def _counter_j(self) -> List[Tuple[float, Optional[float]]]:
        """[(counter J, wrap range J or None)] per channel."""
        raise NotImplementedError

    def _power_now_w(self) -> float:
        raise NotImplementedError

    # interface ------------------------------------------------------------------------------------
    def start(self) -> None:
        """Zero the energy here; raises MeterError when the meter cannot be read."""
        self._t_last = self._clock()
        self._energy = 0.0
        if self.is_counter:
            self._last_counts = [c for c, _ in self._counter_j()]
            self._power = 0.0
        else:
            self._power = max(0.0, self._power_now_w())
        self._started = True

    def read(self) -> Reading:
        if not self._started:
            self.start()
        now = self._clock()
        dt = now - self._t_last
        if self.is_counter:
            counts = self._counter_j()
            delta = 0.0
            for i, (count, wrap) in enumerate(counts):
                step = count - self._last_counts[i]
                if step < 0:
                    if wrap:
                        step += wrap
                    else:
                        _log.warning("%s: counter %d went backwards (%.3f -> %.3f J); step dropped",
                                     self.name, i, self._last_counts[i], count)
                        step = 0.0
                delta += step
            self._last_counts = [c for c, _ in counts]
            self._energy += delta
            if dt > 0:
                self._power = delta / dt
        else:
            power = max(0.0, self._power_now_w())
            if dt > 0:
                self._energy += 0.5 * (power + self._power) * dt
            self._power = power
        self._t_last = now
        return Reading(self._energy, self._power, now)

    def close(self) -> None:
        pass


# ------------------------------------------------------------------------------------------------ RAPL

class RaplMeter(Meter):
    """Intel/AMD RAPL via powercap sysfs: package zones + DRAM zones (not core/uncore, inside package).

    energy_uj wraps at max_energy_range_uj. Since CVE-2020-8694 (Platypus) energy_uj is root-only.
    """

    def __init__(self, root: str | Path = RAPL_ROOT, *, include: Tuple[str, ...] = ("package", "dram"),
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock=clock)
        self.root = Path(root)
        zones = sorted(p for p in self.root.glob("intel-rapl:*") if (p / "name").exists()) if self.root.is_dir() else []
        zones += sorted(p for p in self.root.glob("intel-rapl:*/intel-rapl:*") if (p / "name").exists())
        self.zones: List[Tuple[str, _OpenFile, Optional[float]]] = []
        seen = set()
        for z in zones:
            if z.resolve() in seen:
                continue
            seen.add(z.resolve())
            zname = _read_text(z / "name")
            if not any(zname.startswith(k) for k in include):
                continue
            wrap_file = z / "max_energy_range_uj"
            wrap = _read_number(wrap_file) * 1e-6 if wrap_file.exists() else None
            self.zones.append((zname, _OpenFile(z / "energy_uj"), wrap))
        if not self.zones:
            raise MeterError(f"{self.root}: no RAPL package or DRAM zone (intel-rapl:*) found.")
        self.name = "rapl:" + "+".join(z for z, _, _ in self.zones)

    def _counter_j(self):
        return [(f.number() * 1e-6, wrap) for _, f, wrap in self.zones]

    def close(self) -> None:
        for _, f, _ in self.zones:
            f.close()


# ------------------------------------------------------------------------------------------------ INA3221

class Ina3221Meter(Meter):
    """Jetson INA3221 power monitor via hwmon: power = bus voltage (mV) x current (mA) per rail.

    rail: a label such as VDD_IN (the module's input, the default where present), or None for the sum of
    all rails.
    """

    is_counter = False

    def __init__(self, root: str | Path = HWMON_ROOT, *, rail: Optional[str] = "VDD_IN",
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock=clock)
        self.root = Path(root)
        self.channels: List[Tuple[str, Path, Path]] = []
        for hw in sorted(self.root.glob("hwmon*")) if self.root.is_dir() else []:
            if not (hw / "name").exists() or _read_text(hw / "name") != "ina3221":
                continue
            for label in sorted(hw.glob("in*_label")):
                idx = label.name[2:-6]
                volt, curr = hw / f"in{idx}_input", hw / f"curr{idx}_input"
                if volt.exists() and curr.exists():
                    self.channels.append((_read_text(label), volt, curr))
        if not self.channels:
            raise MeterError(f"{self.root}: no INA3221 hwmon device (name 'ina3221') with labelled rails found.")
        labels = [c[0] for c in self.channels]
        if rail is not None and rail in labels:
            self.channels = [c for c in self.channels if c[0] == rail]
        elif rail is not None and rail != "VDD_IN":
            raise MeterError(f"{self.root}: INA3221 rail {rail!r} not found; rails: {labels}.")
        self.name = "ina3221:" + "+".join(c[0] for c in self.channels)

    def _power_now_w(self) -> float:
        return sum(_read_number(v) * _read_number(c) * 1e-6 for _, v, c in self.channels)


# ------------------------------------------------------------------------------------------------ battery

@dataclass(frozen=True)
class BatteryState:
    state_of_charge: float            # 0..1
    energy_remaining_j: Optional[float]
    discharge_power_w: float          # >= 0; 0 while charging or full
    status: str                       # Discharging | Charging | Full | Not charging | Unknown


class BatteryMeter(Meter):
    """A battery via /sys/class/power_supply/<name>: discharge power and state of charge.

    Power from power_now (uW), else current_now (uA) x voltage_now (uV). Energy left from energy_now
    (uWh), else charge_now (uAh) x voltage_now. Only discharge counts as consumption.
    """

    is_counter = False

    def __init__(self, root: str | Path = POWER_SUPPLY_ROOT, *, name: Optional[str] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock=clock)
        self.root = Path(root)
        candidates = [self.root / name] if name else sorted(self.root.glob("*")) if self.root.is_dir() else []
        self.dir = None
        for c in candidates:
            if (c / "type").exists() and _read_text(c / "type") == "Battery":
                self.dir = c
                break
        if self.dir is None:
            raise MeterError(f"{self.root}: no power supply of type Battery found.")
        self.name = f"battery:{self.dir.name}"

    def _opt(self, file: str) -> Optional[float]:
        p = self.dir / file
        return _read_number(p) if p.exists() else None

    def state(self) -> BatteryState:
        status = _read_text(self.dir / "status") if (self.dir / "status").exists() else "Unknown"
        cap = self._opt("capacity")
        voltage = self._opt("voltage_now")
        energy_now, energy_full = self._opt("energy_now"), self._opt("energy_full")
        charge_now, charge_full = self._opt("charge_now"), self._opt("charge_full")
        if energy_now is not None:
            remaining = energy_now * 3.6e-3          # uWh -> J
        elif charge_now is not None and voltage is not None:
            remaining = charge_now * voltage * 3.6e-9  # uAh x uV -> J
        else:
            remaining = None
        if cap is not None:
            soc = cap / 100.0
        elif energy_now is not None and energy_full:
            soc = energy_now / energy_full
        elif charge_now is not None and charge_full:
            soc = charge_now / charge_full
        else:
            raise MeterError(f"{self.dir}: no capacity, energy_now/energy_full or charge_now/charge_full file.")
        return BatteryState(min(1.0, max(0.0, soc)), remaining, self._discharge_w(status), status)

    def _discharge_w(self, status: str) -> float:
        power = self._opt("power_now")
        if power is None:
            current, voltage = self._opt("current_now"), self._opt("voltage_now")
            if current is None or voltage is None:
                raise MeterError(f"{self.dir}: neither power_now nor current_now + voltage_now is readable.")
            power = current * voltage * 1e-6  # uA x uV = pW -> uW
        power = abs(power) * 1e-6
        return power if status == "Discharging" else 0.0

    def _power_now_w(self) -> float:
        status = _read_text(self.dir / "status") if (self.dir / "status").exists() else "Unknown"
        return self._discharge_w(status)


# ------------------------------------------------------------------------------------------------ NVML


def open_nvml_device(nvml=None, index: int = 0, uuid: str = ""):
    """(the pynvml module, a device handle) for GPU `index` (or `uuid`); MeterError in one sentence when
    nvidia-ml-py is missing or the GPU cannot be opened. `nvml` is injected by tests."""
    if nvml is None:
        try:
            import pynvml as nvml  # nvidia-ml-py
        except ImportError:
            raise MeterError("NVML: the nvidia-ml-py package is not installed (pip install effdl_ros[nvml]).") from None
    try:
        nvml.nvmlInit()
        handle = nvml.nvmlDeviceGetHandleByUUID(uuid) if uuid else nvml.nvmlDeviceGetHandleByIndex(index)
    except Exception as err:  # noqa: BLE001 - NVMLError and friends
        raise MeterError(f"NVML: cannot open GPU {uuid or index} ({err}).") from None
    return nvml, handle


class NvmlMeter(Meter):
    """An NVIDIA GPU via NVML (nvidia-ml-py): the total energy counter (mJ, Volta and newer), else power.

    :param nvml: the pynvml module (injected in tests); imported when None.
    """

    def __init__(self, index: int = 0, *, nvml=None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock=clock)
        self._nvml, self._handle = open_nvml_device(nvml, index)
        nvml = self._nvml
        try:
            nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
            self.is_counter = True
        except Exception:  # noqa: BLE001 - not supported before Volta
            self.is_counter = False
        kind = "energy" if self.is_counter else "power"
        self.name = f"nvml:{index}:{kind}"

    def _counter_j(self):
        try:
            return [(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) * 1e-3, None)]
        except Exception as err:  # noqa: BLE001
            raise MeterError(f"NVML: total energy unreadable ({err}).") from None

    def _power_now_w(self) -> float:
        try:
            return self._nvml.nvmlDeviceGetPowerUsage(self._handle) * 1e-3
        except Exception as err:  # noqa: BLE001
            raise MeterError(f"NVML: power unreadable ({err}).") from None

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


# ------------------------------------------------------------------------------------------------ detect

def detect_meter(*, rapl_root: str | Path = RAPL_ROOT, hwmon_root: str | Path = HWMON_ROOT,
                 power_supply_root: str | Path = POWER_SUPPLY_ROOT, nvml=None, use_nvml: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> Tuple[Optional[Meter], Dict[str, str]]:
    """The first readable meter (NVML, RAPL, INA3221, battery), or None: use the cost model.

    Returns (meter or None, {meter kind: why it was not used}); a meter counts as readable only when
    start() and one read() succeed.
    """
    tried: Dict[str, str] = {}
    makers = [
        ("nvml", lambda: NvmlMeter(nvml=nvml, clock=clock) if use_nvml else (_ for _ in ()).throw(
            MeterError("NVML: disabled."))),
        ("rapl", lambda: RaplMeter(rapl_root, clock=clock)),
        ("ina3221", lambda: Ina3221Meter(hwmon_root, clock=clock)),
        ("battery", lambda: BatteryMeter(power_supply_root, clock=clock)),
    ]
    for kind, make in makers:
        try:
            meter = make()
            meter.start()
            meter.read()
            return meter, tried
        except MeterError as err:
            tried[kind] = str(err)
        except Exception as err:  # noqa: BLE001 - a broken driver never crashes detection
            tried[kind] = f"{kind}: {err}"
    return None, tried

"""Per-node energy accounting: every node wraps each item of work in `with acct.item() as item:`.

The accountant times the item and sums energy, latency and compute fraction. Energy comes from the
meter where one is readable (the device's energy during the item: MEASURED), else from the cost model
(MODELLED): executed MACs and bytes x the profile's coefficients when the body sets them, else busy wall
time x the profile's power (TDP mode). `report()` closes a period and returns the EnergyReport fields.
No ROS here: effdl_ros.nodekit.budget.BudgetClient turns reports into messages.

With estimate="cpu_time" (no meter readable, one node per process: the dds backend or rclpy) a period's
energy is instead the process's CPU seconds from the OS (all its threads, torch's workers included) x the
profile's power per busy core: meter "cputime:<profile>", source MODELLED (the CPU time is measured, the
watts per core are not). The MAC-based figure is still summed beside it (EnergySnapshot.ops_power_w).

A device meter measures the whole device: where several nodes run at once, each one's measured energy
includes the others' (an over-attribution, said in the README); the monitor's total reads the meter itself.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

from effdl_ros.energy.cost_model import MEASURED, MODELLED, Profile, cpu_time_energy_j, get_profile, walltime_energy_j
from effdl_ros.errors import ConfigError

_log = logging.getLogger("effdl_ros.energy.accountant")


@dataclass(frozen=True)
class EnergySnapshot:
    """The fields of an effdl_ros/EnergyReport (source is "measured" or "modelled")."""

    node: str
    energy_j: float          # since the accountant started (J)
    power_w: float           # average over the period (W)
    items_processed: int     # since start
    compute_fraction: float  # mean over the period's items, capped at 1 (1.0 when the period had none)
    latency_ms: float        # mean per-item latency over the period (ms; 0 when none)
    source: str
    meter: str
    period_s: float          # length of the period these averages cover (s)
    period_items: int        # items in that period
    ops_power_w: float = math.nan  # the MAC-based model's power over the period, beside a CPU-time figure (W)


#: An item may run more than its node's nominal full compute (a tracker frame with a model update costs
#: about three frames' worth); it is booked as such, so that the period's mean is what the node executed,
#: and only the mean is capped at 1.
MAX_ITEM_FRACTION = 8.0


class Item:
    """One item of work; the `with` body sets macs / bytes / compute_fraction (or energy_j directly)."""

    __slots__ = ("_acct", "_t0", "_e0", "macs", "bytes", "compute_fraction", "energy_j")

    def __init__(self, acct: "Accountant") -> None:
        self._acct = acct
        self.macs: Optional[int] = None   # None = not counted: the item is charged busy time x TDP
        self.bytes: Optional[int] = None  # (a body that sets 0 did no work and costs 0 J)
        self.compute_fraction = 1.0
        self.energy_j: Optional[float] = None  # a modelled figure the body computed itself

    def __enter__(self) -> "Item":
        self._e0 = self._acct._meter_energy()
        self._t0 = self._acct._clock()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        t1 = self._acct._clock()
        self._acct._close_item(self, t1 - self._t0, self._e0)
        return False


class Accountant:
    """Sums one node's energy, items, latency and compute fraction; see the module docstring.

    :param node_name: the fully qualified node name put in reports.
    :param meter: an effdl_ros.energy.meters.Meter, or None for the cost model only.
    :param profile: a cost-model Profile or profile name (default: the x86_cpu profile).
    :param clock: seconds, monotonic; a simulated clock in tests.
    :param estimate: "ops" (MACs and bytes, else busy time x TDP) or "cpu_time" (the process's CPU
        seconds x the profile's core_w); used only where no meter is given.
    :param cpu_clock: CPU seconds of this process (default time.process_time: all threads); injectable.
    """

    ESTIMATES = ("ops", "cpu_time")

    def __init__(self, node_name: str, *, meter=None, profile: "Profile | str | None" = None,
                 clock: Callable[[], float] = time.monotonic, estimate: str = "ops",
                 cpu_clock: Callable[[], float] = time.process_time) -> None:
        self.node_name = node_name
        self._meter = meter
        self._profile = get_profile(profile) if isinstance(profile, str) else (profile or get_profile())
        self._clock = clock
        if estimate not in self.ESTIMATES:
            raise ConfigError(f"energy estimate {estimate!r} is not one of {list(self.ESTIMATES)}.")
        if estimate == "cpu_time" and self._profile.core_w is None:
            raise ConfigError(f"energy estimate cpu_time needs core_w in energy profile {self._profile.name!r}.")
        self._cpu_time = estimate == "cpu_time" and meter is None
        self._cpu_clock = cpu_clock
        self._cpu_energy_j = 0.0
        self._cpu_mark = cpu_clock() if self._cpu_time else 0.0
        self._j_per_mac = self._profile.pj_per_mac / self._profile.efficiency * 1e-12
        self._j_per_byte = self._profile.pj_per_byte * 1e-12
        self._lock = threading.Lock()
        self._energy_j = 0.0
        self._items = 0
        self._source = MEASURED if meter is not None else MODELLED
        self._meter_failed = False
        self._period_start = clock()
        self._reset_period()
        if meter is not None:
            try:
                meter.start()
            except Exception as err:  # noqa: BLE001 - any meter failure falls back to the model
                self._meter_fail(err)

    @property
    def profile(self) -> Profile:
        return self._profile

    @property
    def meter_name(self) -> str:
        if self._meter is not None and not self._meter_failed:
            return self._meter.name
        if self._cpu_time:
            return f"cputime:{self._profile.name}"
        return self._profile.meter_name

    @property
    def estimate(self) -> str:
        """Where the reported energy comes from: "meter", "cpu_time" or "ops"."""
        if self._meter is not None and not self._meter_failed:
            return "meter"
        return "cpu_time" if self._cpu_time else "ops"

    def item(self) -> Item:
        """`with acct.item() as item:` around one item of work."""
        return Item(self)

    def add_energy(self, energy_j: float, *, items: int = 0, busy_s: float = 0.0,
                   compute_fraction: float = 1.0) -> None:
        """Book energy computed elsewhere (e.g. a simulated plant) as modelled work."""
        with self._lock:
            self._book(max(0.0, _finite(energy_j)), items, busy_s, compute_fraction, MODELLED)

    # ------------------------------------------------------------------------------------------ internals

    def _reset_period(self) -> None:
        self._p_energy = 0.0
        self._p_items = 0
        self._p_busy = 0.0
        self._p_frac = 0.0

    def _meter_fail(self, err: BaseException) -> None:
        if not self._meter_failed:
            _log.warning("%s: meter %s unreadable (%s); using the cost model %s from now on",
                         self.node_name, getattr(self._meter, "name", "?"), err, self._profile.meter_name)
        self._meter_failed = True

    def _meter_energy(self) -> Optional[float]:
        if self._meter is None or self._meter_failed:
            return None
        try:
            return self._meter.read().energy_j
        except Exception as err:  # noqa: BLE001
            self._meter_fail(err)
            return None

    def _close_item(self, item: Item, busy_s: float, e0: Optional[float]) -> None:
        e1 = self._meter_energy() if e0 is not None else None
        if e0 is not None and e1 is not None:
            energy, source = max(0.0, e1 - e0), MEASURED
        elif item.energy_j is not None:
            energy, source = max(0.0, _finite(item.energy_j)), MODELLED
        elif item.macs is not None or item.bytes is not None:  # = ops_energy_j(...), inlined: hot path
            energy = max(0, item.macs or 0) * self._j_per_mac + max(0, item.bytes or 0) * self._j_per_byte
            source = MODELLED
        elif self._profile.tdp_w is not None:
            energy, source = walltime_energy_j(busy_s, self._profile), MODELLED
        else:
            energy, source = 0.0, MODELLED
        with self._lock:
            self._book(energy, 1, busy_s, item.compute_fraction, source)

    def _book(self, energy: float, items: int, busy_s: float, frac: float, source: str) -> None:
        if frac.__class__ is not float or not 0.0 <= frac <= MAX_ITEM_FRACTION:  # NaN fails the range test too
            frac = min(MAX_ITEM_FRACTION, max(0.0, _finite(frac, 1.0)))
        self._energy_j += energy
        self._items += items
        self._p_energy += energy
        self._p_items += items
        self._p_busy += max(0.0, busy_s)
        self._p_frac += frac * items
        self._source = source

    def _snapshot(self, now: float, cpu_j: float = 0.0) -> EnergySnapshot:
        period = now - self._period_start
        n = self._p_items
        ops_w = self._p_energy / period if period > 0 else 0.0
        if self._cpu_time:
            energy, power, source = self._cpu_energy_j + cpu_j, (cpu_j / period if period > 0 else 0.0), MODELLED
        else:
            energy, power, source = self._energy_j, ops_w, self._source
        return EnergySnapshot(
            node=self.node_name, energy_j=energy, power_w=power,
            items_processed=self._items,
            compute_fraction=min(1.0, self._p_frac / n) if n else 1.0,
            latency_ms=1000.0 * self._p_busy / n if n else 0.0,
            source=source, meter=self.meter_name, period_s=max(0.0, period), period_items=n,
            ops_power_w=ops_w)

    def _cpu_j(self) -> float:
        """Modelled energy of the CPU time charged to this process since the last period closed."""
        if not self._cpu_time:
            return 0.0
        return cpu_time_energy_j(self._cpu_clock() - self._cpu_mark, self._profile)

    def snapshot(self) -> EnergySnapshot:
        """The current figures, without closing the period."""
        with self._lock:
            return self._snapshot(self._clock(), self._cpu_j())

    def report(self) -> EnergySnapshot:
        """The figures of the period that ends now; the next period starts now."""
        with self._lock:
            now = self._clock()
            cpu_now = self._cpu_clock() if self._cpu_time else 0.0
            cpu_j = cpu_time_energy_j(cpu_now - self._cpu_mark, self._profile) if self._cpu_time else 0.0
            snap = self._snapshot(now, cpu_j)
            self._cpu_energy_j += cpu_j
            self._cpu_mark = cpu_now
            self._period_start = now
            self._reset_period()
            return snap


def _finite(value: float, default: float = 0.0) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return default
    return value if math.isfinite(value) else default

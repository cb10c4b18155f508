"""How a node's Budget becomes DDI's per-item MAC ceiling (the one knob early halting obeys).

Each limit of the budget gives a ceiling and the tightest one wins:
- compute_fraction x the model's largest per-item cost (deepest exit, every gate on);
- energy_per_item_j / joules-per-MAC, joules-per-MAC from the platform cost profile (MODELLED:
  pJ/MAC / efficiency + bytes-per-MAC x pJ/byte, config/energy_profiles.yaml);
- power_w / item rate (Hz) -> energy per item, when the item rate is known;
- latency_deadline_ms x a MACs-per-ms rate MEASURED on this machine at start-up (the lower of the
  full network's and the first exit's rate, so per-layer overhead is not under-counted).
The MAC ceiling itself is then never exceeded (engine.py); the energy and latency limits are met as
well as the profile and the measured rate describe the machine.

The contract every capability follows: `calibrate(...)` once per model (here: the CeilingModel, with
its measured MACs per ms), then `settings_for_budget(budget, calibration)` per item. A stale budget
needs no case here: effdl_ros.nodekit.budget.BudgetClient hands over the node's configured default.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Optional, Tuple

from effdl_ros.ddi.engine import DDISettings
from effdl_ros.energy.budget import Budget


@dataclass(frozen=True)
class CeilingModel:
    full_macs: int                          # MACs of compute_fraction 1.0: the model's deepest worst case
    joules_per_mac: Optional[float] = None  # modelled; None: energy limits are ignored
    macs_per_ms: Optional[float] = None     # measured; None: latency limits are ignored
    item_rate_hz: Optional[float] = None    # expected items per second; None: power limits are ignored
    min_macs: float = 0.0                   # the cheapest exit: what an item costs at the least


def joules_per_mac(profile, bytes_per_mac: float = 0.0) -> float:
    """Modelled energy of one executed MAC (and its share of memory traffic) on a cost profile."""
    return (profile.pj_per_mac / profile.efficiency + bytes_per_mac * profile.pj_per_byte) * 1e-12


def mac_ceiling(budget: Budget, model: CeilingModel) -> float:
    """The tightest per-item MAC ceiling the budget allows (may be below the cheapest exit)."""
    b = budget.sanitized()
    ceilings = [b.compute_fraction * model.full_macs]
    if model.joules_per_mac and model.joules_per_mac > 0:
        energy = b.energy_per_item_j
        if model.item_rate_hz and model.item_rate_hz > 0 and math.isfinite(b.power_w):
            energy = min(energy, b.power_w / model.item_rate_hz)
        if math.isfinite(energy):
            ceilings.append(energy / model.joules_per_mac)
    if model.macs_per_ms and model.macs_per_ms > 0 and math.isfinite(b.latency_deadline_ms):
        ceilings.append(b.latency_deadline_ms * model.macs_per_ms)
    return max(0.0, min(ceilings))


def ceiling_to_run(ceiling: float, cheapest_macs: float) -> Tuple[float, bool]:
    """(ceiling the engine runs with, over budget?): a budget below the cheapest exit still gets the
    cheapest exit, and the overrun is reported, so the node never silently stops classifying; the
    energy monitor may instead deactivate the node when it cannot pay for its cheapest level."""
    if ceiling < cheapest_macs:
        return float(cheapest_macs), True
    return float(ceiling), False


def calibrate(engine, probe, profile, *, item_rate_hz: Optional[float] = None, repeats: int = 5,
              fp16: bool = False) -> CeilingModel:
    """The CeilingModel of a loaded engine on this machine: its MAC range, the cost profile's joules
    per MAC (modelled) and MACs per ms timed on `probe` (measured, `repeats` runs per setting)."""
    return CeilingModel(full_macs=engine.max_macs, joules_per_mac=joules_per_mac(profile),
                        macs_per_ms=measure_macs_per_ms(engine, probe, repeats=repeats, fp16=fp16),
                        item_rate_hz=item_rate_hz if item_rate_hz and item_rate_hz > 0 else None,
                        min_macs=float(engine.min_macs))


def settings_for_budget(budget: Budget, calibration: CeilingModel, *,
                        confidence: Optional[float] = None) -> Tuple[DDISettings, bool]:
    """(the engine's settings for one item, over budget?): the tightest ceiling, raised to the
    cheapest exit when the budget is below it (ceiling_to_run)."""
    ceiling, over = ceiling_to_run(mac_ceiling(budget, calibration), calibration.min_macs)
    return DDISettings(mac_ceiling=ceiling, confidence=confidence if confidence and confidence > 0 else None), over


def measure_macs_per_ms(engine, x, repeats: int = 20, *, fp16: bool = False) -> float:
    """Measured MACs per millisecond: the lower of the full network's and the first exit's rate (on x's
    device, synchronised after each item, so a GPU's figure is the kernels' time, not the launch's)."""
    from effdl_ros.device import autocast, synchronize

    rates = []
    table = engine.cost_table(True)
    for settings in (DDISettings(use_gates=False), DDISettings(mac_ceiling=table.cumulative_worst[0])):
        with autocast(x.device, fp16):
            engine.run(x, settings)
        synchronize(x.device)
        times, macs = [], 0
        for _ in range(repeats):
            t0 = time.perf_counter()
            with autocast(x.device, fp16):
                r = engine.run(x, settings)
            synchronize(x.device)
            times.append((time.perf_counter() - t0) * 1e3)
            macs = r.macs
        rates.append(macs / max(statistics.median(times), 1e-6))
    return min(rates)

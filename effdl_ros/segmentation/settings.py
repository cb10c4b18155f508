"""The segmentation node's budget knob: input scale, as one settings dataclass.

The segmenter is fully convolutional, so its MACs (and, on a CPU, its time and energy) scale with
the input area: scale s costs about s^2 of the full model. A budget is met by the largest scale on
the ladder whose predicted cost fits every limit that is set. `calibrate` counts each scale's MACs
and times the full scale once per model (the latency limit needs it); `settings_for_budget(budget,
calibration)` maps each frame's budget. With no fresh budget the node's configured default fraction
arrives as the budget (effdl_ros.nodekit.budget.BudgetClient), so there is no stale case here.
With a LevelDither the scale is mixed frame by frame
between the two ladder steps around the budget (error diffusion), so the mean cost over a budget period
follows the budget instead of sitting up to one step (25-35 % of the cost) below it.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence

import numpy as np

from effdl_ros.energy.budget import Budget
from effdl_ros.errors import ConfigError
from effdl_ros.segmentation.inference import input_size, predict
from effdl_ros.segmentation.network import count_macs

SCALES = (1.0, 0.875, 0.75, 0.625, 0.5)


@dataclass(frozen=True)
class SegmentationSettings:
    input_scale: float = 1.0   # multiplies the model's training input size (120x160 by default)
    reason: str = "default"

    def __post_init__(self) -> None:
        if not 0.1 <= self.input_scale <= 2.0 or math.isnan(self.input_scale):
            raise ConfigError(f"input_scale {self.input_scale} is outside 0.1..2.0")


@dataclass(frozen=True)
class ScaleCalibration:
    """What the mapping needs to know about one model on this machine."""

    full_ms: float                                       # measured time per frame at scale 1 (ms)
    macs: Dict[float, int] = field(default_factory=dict)  # counted MACs per ladder scale


def calibrate(model, config, scales: Sequence[float] = SCALES, repeats: int = 3, *, device="cpu",
              fp16: bool = False) -> ScaleCalibration:
    """Count each scale's MACs and time the full scale (one warm-up, then the mean of `repeats`) on the
    model's device (predict returns host labels, so a GPU is synchronised before the clock stops)."""
    macs = {s: count_macs(model, input_size(config, s)) for s in scales}
    model.to(device)
    run = dict(device=device, fp16=fp16)
    probe = np.zeros(tuple(input_size(config, 1.0)) + (3,), np.uint8)
    predict(model, config, probe, **run)  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        predict(model, config, probe, **run)
    return ScaleCalibration(full_ms=(time.perf_counter() - t0) / repeats * 1000.0, macs=macs)


def settings_for_budget(budget: Optional[Budget], calibration: Optional[ScaleCalibration] = None, *,
                        full_ms: Optional[float] = None, full_energy_j: Optional[float] = None,
                        scales: Sequence[float] = SCALES, dither=None) -> SegmentationSettings:
    """Largest scale whose cost fraction s^2 fits the budget (or, with dither, a mix of the two around it).

    :param calibration: the model's ScaleCalibration (its full_ms, unless full_ms is given).
    :param full_ms: measured time per frame at scale 1 (ms), for the latency deadline.
    :param full_energy_j: energy per frame at scale 1 (J, measured or modelled), for energy_per_item_j.
    :param dither: an effdl_ros.energy.dither.LevelDither over the ladder's costs s^2, kept by the caller
        across frames; None picks the largest scale that fits.
    """
    if budget is None:
        return SegmentationSettings(1.0, "no budget: full scale")
    if full_ms is None and calibration is not None:
        full_ms = calibration.full_ms
    b = budget.sanitized()
    limit = b.compute_fraction
    why = f"compute_fraction {b.compute_fraction:.2f}"
    if full_ms and full_ms > 0 and math.isfinite(b.latency_deadline_ms):
        f = b.latency_deadline_ms / full_ms
        if f < limit:
            limit, why = f, f"deadline {b.latency_deadline_ms:.1f} ms vs {full_ms:.1f} ms at full scale"
    if full_energy_j and full_energy_j > 0 and math.isfinite(b.energy_per_item_j):
        f = b.energy_per_item_j / full_energy_j
        if f < limit:
            limit, why = f, f"energy {b.energy_per_item_j:.3g} J/frame vs {full_energy_j:.3g} J at full scale"
    ladder = sorted(scales, reverse=True)
    if dither is not None:
        cost = dither.pick(limit)
        s = min(ladder, key=lambda x: abs(x * x - cost))
        return SegmentationSettings(s, why + " (dithered)")
    for s in ladder:
        if s * s <= limit + 1e-9:
            return SegmentationSettings(s, why)
    return SegmentationSettings(ladder[-1], why + " (below the smallest scale: smallest used)")

"""A synthetic load whose per-item cost is a knob: the plant that tests and shows the budget loop.

Each item runs a share f (the compute fraction) of a fixed amount of work. The node picks f from its
budget with its ASSUMED cost per item, while the energy booked is the TRUE cost (f x cost + a static
part, with per-item noise): the mismatch between the two is the model error the monitor's PI loop must
correct. Where macs_per_item > 0 the item really executes f x macs_per_item multiply-accumulates (a
matmul), so a smaller budget really does less work. The energy figure itself is MODELLED.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Optional, Tuple

from effdl_ros.energy.budget import Budget
from effdl_ros.errors import ConfigError


@dataclass(frozen=True)
class SyntheticLoadSettings:
    item_rate_hz: float = 20.0                 # items per second
    cost_per_item_j: float = 0.05              # true energy of one item at full compute (J)
    assumed_cost_per_item_j: Optional[float] = None  # the node's belief (None: exact)
    static_j_per_item: float = 0.0             # energy per item that no knob reduces (J)
    noise: float = 0.02                        # relative std of the per-item cost
    min_fraction: float = 0.02                 # the least compute an item can take
    macs_per_item: int = 0                     # real work at full compute (0: none executed)

    def validated(self) -> "SyntheticLoadSettings":
        def bad(name, value, why):
            raise ConfigError(f"parameter {name}={value!r} is invalid: {why}.")

        for name in ("item_rate_hz", "cost_per_item_j"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                bad(name, v, "must be a finite number > 0")
        a = self.assumed_cost_per_item_j
        if a is not None and not (math.isfinite(a) and a > 0):
            bad("assumed_cost_per_item_j", a, "must be > 0 (or unset)")
        for name in ("static_j_per_item", "noise"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                bad(name, v, "must be finite and >= 0")
        if not 0 < self.min_fraction <= 1:
            bad("min_fraction", self.min_fraction, "must lie in (0, 1]")
        if self.macs_per_item < 0:
            bad("macs_per_item", self.macs_per_item, "must be >= 0")
        return self


class SyntheticLoad:
    """Maps a Budget onto a compute fraction, and runs / books one item at that fraction."""

    WIDTH = 64  # matmul side: one row of work = WIDTH x WIDTH MACs

    def __init__(self, settings: SyntheticLoadSettings, *, seed: int = 0) -> None:
        self.settings = settings.validated()
        self._rng = random.Random(seed)
        self._weight = None

    @property
    def assumed_cost(self) -> float:
        s = self.settings
        return s.assumed_cost_per_item_j if s.assumed_cost_per_item_j is not None else s.cost_per_item_j

    def fraction_for(self, budget: Budget) -> float:
        """The compute fraction the node believes meets its budget (power, else energy/item, else share)."""
        b = budget.sanitized()
        s = self.settings
        if math.isfinite(b.power_w):
            f = (b.power_w / s.item_rate_hz - s.static_j_per_item) / self.assumed_cost
        elif math.isfinite(b.energy_per_item_j):
            f = (b.energy_per_item_j - s.static_j_per_item) / self.assumed_cost
        else:
            f = b.compute_fraction
        return min(1.0, max(s.min_fraction, f))

    def run_item(self, fraction: float) -> Tuple[float, int]:
        """Execute one item at this fraction: (modelled energy J, executed MACs)."""
        s = self.settings
        macs = 0
        if s.macs_per_item > 0:
            rows = int(round(fraction * s.macs_per_item / (self.WIDTH * self.WIDTH)))
            if rows > 0:
                import torch

                if self._weight is None:
                    self._weight = torch.randn(self.WIDTH, self.WIDTH)
                x = torch.ones(rows, self.WIDTH)
                (x @ self._weight).sum().item()
                macs = rows * self.WIDTH * self.WIDTH
        jitter = 1.0 + self._rng.gauss(0.0, s.noise) if s.noise > 0 else 1.0
        energy = max(0.0, fraction * s.cost_per_item_j * jitter + s.static_j_per_item)
        return energy, macs

"""The budget a node may spend, as the algorithm layer sees it (no ROS types here).

The runtime turns effdl_ros/ResourceBudget messages into this; each capability maps it onto its own
knobs. An unset limit is +inf (no limit); compute_fraction is 0..1 of the node's full model.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Budget:
    power_w: float = math.inf            # average power the node may draw (W)
    energy_per_item_j: float = math.inf  # energy per processed item (J)
    latency_deadline_ms: float = math.inf  # per-item deadline (ms)
    compute_fraction: float = 1.0        # share of the full model's compute, 0..1
    stale: bool = False                  # True when no fresh budget arrived (default in use)
    source: str = "default"              # "default" | "monitor"

    def sanitized(self) -> "Budget":
        """Clamp to the valid domain: NaN or negative limits become 0 / defaults, never negative."""
        def limit(v: float) -> float:
            if v is None or math.isnan(v):
                return math.inf
            return max(0.0, float(v))

        frac = self.compute_fraction
        frac = 1.0 if frac is None or math.isnan(frac) else min(1.0, max(0.0, float(frac)))
        return replace(self, power_w=limit(self.power_w), energy_per_item_j=limit(self.energy_per_item_j),
                       latency_deadline_ms=limit(self.latency_deadline_ms), compute_fraction=frac)

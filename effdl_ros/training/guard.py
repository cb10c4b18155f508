"""The update guard: a fine-tuned model replaces the deployed one only if validation does not drop.

Both models are scored on the SAME held-out samples at decision time (the buffer changes over time, so
comparing against an old score would be comparing different data). Ties are accepted (the metric
"does not drop"); ``min_samples`` refuses decisions on too little evidence.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class GuardDecision:
    accept: bool
    candidate: float
    deployed: float
    reason: str


class UpdateGuard:
    def __init__(self, *, tolerance: float = 0.0, min_samples: int = 20) -> None:
        """:param tolerance: how far (metric units) the candidate may fall below the deployed model and
        still count as "not dropped"; 0 = never lower. :param min_samples: held-out samples needed."""
        if tolerance < 0:
            raise ValueError("tolerance must be >= 0")
        self.tolerance = tolerance
        self.min_samples = min_samples
        self.version = 0
        self.accepted = 0
        self.refused = 0
        self.last: Optional[GuardDecision] = None

    def decide(self, candidate: float, deployed: float, n_samples: int) -> GuardDecision:
        if n_samples < self.min_samples:
            d = GuardDecision(False, candidate, deployed,
                              f"only {n_samples} held-out samples (< {self.min_samples})")
        elif candidate != candidate:  # NaN
            d = GuardDecision(False, candidate, deployed, "candidate metric is NaN")
        elif candidate + self.tolerance >= deployed:
            d = GuardDecision(True, candidate, deployed, "validation metric did not drop")
        else:
            d = GuardDecision(False, candidate, deployed,
                              f"validation metric dropped ({candidate:.4f} < {deployed:.4f})")
        if d.accept:
            self.accepted += 1
            self.version += 1
        else:
            self.refused += 1
        self.last = d
        return d

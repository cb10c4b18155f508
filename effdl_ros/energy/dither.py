"""Error diffusion over a discrete knob: per item, one level whose running mean cost follows a target.

A node's knob has a few levels (segmentation: 5 input scales, 25 % to 100 % of the full cost). Picking
the largest level under the budget leaves up to one level's gap unspent, and a loop that then raises
the budget pushes the node across to the next level and back (a limit cycle). Mixing the two levels
around the target instead, item by item, as a sigma-delta modulator does, makes the mean cost over a
budget period track a continuous target within about one gap / items-per-period.
"""
from __future__ import annotations

import bisect
import math
from typing import Sequence


class LevelDither:
    """Picks per item one of `costs` (relative costs, any order) so the running mean follows the target.

    :param costs: the cost of each level (e.g. its share of the full model's MACs), > 0.
    """

    def __init__(self, costs: Sequence[float]) -> None:
        levels = sorted(float(c) for c in costs)
        if not levels or levels[0] <= 0 or not all(math.isfinite(c) for c in levels):
            from effdl_ros.errors import ConfigError

            raise ConfigError(f"dither levels must be finite costs > 0, got {list(costs)!r}")
        self.costs = levels
        self.error = 0.0   # cost owed (+) or spent ahead (-) so far, in the same units as the costs

    def pick(self, target: float) -> float:
        """The level cost for the next item, given the target mean cost (clamped to the ladder)."""
        c = self.costs
        if not math.isfinite(target) or target >= c[-1]:
            self.error = 0.0
            return c[-1]
        if target <= c[0]:
            self.error = 0.0
            return c[0]
        i = bisect.bisect_right(c, target) - 1
        lo, hi = c[i], c[i + 1]
        want = target + self.error
        choice = hi if want >= 0.5 * (lo + hi) else lo
        gap = hi - lo
        self.error = min(gap, max(-gap, want - choice))
        return choice

"""The tracker's level hysteresis: no flipping between two levels on a jittering budget (issue 18)."""
import numpy as np

from effdl_ros.energy.budget import Budget
from effdl_ros.tracking.tracker import (
    LEVELS,
    TrackerSettings,
    level_index,
    level_macs,
    settings_for_budget,
    settings_with_hysteresis,
)


def _at(i):
    return settings_for_budget(Budget(compute_fraction=level_macs(LEVELS[i]) / level_macs(LEVELS[1])))


def test_margin_zero_is_the_plain_mapping():
    for f in np.linspace(0.0, 1.5, 61):
        b = Budget(compute_fraction=float(f))
        for cur in (0, 5, len(LEVELS) - 1):
            assert settings_with_hysteresis(b, _at(cur), margin=0.0) == settings_for_budget(b)


def test_a_jittering_budget_around_a_boundary_keeps_the_level():
    full = level_macs(LEVELS[1])
    rich, poor = len(LEVELS) - 2, len(LEVELS) - 1          # updates on / off: the coarsest step
    boundary = level_macs(LEVELS[rich]) / full
    rng = np.random.default_rng(0)
    fractions = boundary * (1 + 0.03 * rng.standard_normal(200))   # 3 % jitter (sd) around the boundary
    plain = [level_index(settings_for_budget(Budget(compute_fraction=float(f)))) for f in fractions]
    assert len(set(plain)) > 1                               # without hysteresis it flips
    for start in (rich, poor):
        cur = _at(start)
        seen = []
        for f in fractions:
            cur = settings_with_hysteresis(Budget(compute_fraction=float(f)), cur, margin=0.1)
            seen.append(level_index(cur))
        assert set(seen) == {start}


def test_a_clear_change_still_moves_the_level():
    cur = _at(len(LEVELS) - 1)
    up = settings_with_hysteresis(Budget(compute_fraction=1.0), cur, margin=0.1)
    assert level_index(up) == level_index(settings_for_budget(Budget(compute_fraction=0.9)))  # 10 % to spare
    down = settings_with_hysteresis(Budget(compute_fraction=0.01), _at(1), margin=0.1)
    assert level_index(down) == len(LEVELS) - 1
    assert settings_with_hysteresis(Budget(compute_fraction=0.5), TrackerSettings(update_interval=3),
                                    margin=0.1) == settings_for_budget(Budget(compute_fraction=0.5))  # not a level

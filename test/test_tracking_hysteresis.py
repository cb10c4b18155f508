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


def test_mac_credit_pays_back_a_debt_and_spends_a_surplus_within_bounds():
    from effdl_ros.tracking.tracker import MacCredit

    full = 1000.0
    credit = MacCredit(horizon=5, limit=10)
    assert credit.fraction(0.5, full) == 0.5                  # nothing booked yet: the budget as it is
    credit.spend(0.5, full, 2000.0)                           # an update frame: 4x its share
    assert credit.credit == -1500.0
    assert abs(credit.fraction(0.5, full) - 0.2) < 1e-9       # the next frames aim lower
    for _ in range(40):                                       # cheap frames at 0.3 pay the debt back
        credit.spend(0.5, full, 300.0)
    assert credit.credit == 5000.0                            # ... and a surplus stops at limit frames' worth
    assert abs(credit.fraction(0.5, full) - 1.5) < 1e-9
    credit.spend(0.5, full, 1e9)                              # a huge frame: the debt is capped too
    assert credit.credit == -5000.0 and credit.fraction(0.5, full) == 0.0
    credit.reset()
    assert credit.credit == 0.0
    off = MacCredit(horizon=0)
    off.spend(0.5, full, 1e6)
    assert off.fraction(0.5, full) == 0.5 and off.credit == 0.0


def test_mac_credit_holds_the_mean_cost_of_a_lumpy_load_on_the_budget():
    """A plant whose every 5th frame costs 3x (model updates) and whose level can be lowered: with the
    credit the executed MACs per frame average to the budget; without it they sit wherever the level
    lands."""
    from effdl_ros.tracking.tracker import MacCredit

    full = 1000.0
    shares = [1.0, 0.77, 0.7, 0.63, 0.48, 0.43, 0.39, 0.3, 0.26]   # a level ladder, richest first

    def run(horizon):
        credit, spent = MacCredit(horizon=horizon), []
        for frame in range(200):
            f = credit.fraction(0.55, full)
            share = next((s for s in shares if s <= f), shares[-1])
            macs = share * full * (3.0 if frame % 5 == 0 else 0.5)   # updates every 5th frame, mean 1.0x
            credit.spend(0.55, full, macs)
            spent.append(macs)
        return np.mean(spent[50:]) / (0.55 * full)

    assert abs(run(5) - 1.0) < 0.03
    assert abs(run(0) - 1.0) > 0.05

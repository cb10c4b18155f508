"""Budget -> per-item MAC ceiling: every limit maps, the tightest wins, bad values are safe."""
import math

import pytest

from effdl_ros.ddi.budget_map import CeilingModel, joules_per_mac, mac_ceiling
from effdl_ros.energy.budget import Budget
from effdl_ros.energy.cost_model import Profile

MODEL = CeilingModel(full_macs=1_000_000, joules_per_mac=1e-9, macs_per_ms=50_000, item_rate_hz=10.0)


def test_no_limits_allows_the_whole_model():
    assert mac_ceiling(Budget(), MODEL) == 1_000_000


def test_each_limit_maps_onto_macs_and_the_tightest_wins():
    assert mac_ceiling(Budget(compute_fraction=0.25), MODEL) == pytest.approx(250_000)
    assert mac_ceiling(Budget(energy_per_item_j=2e-4), MODEL) == pytest.approx(200_000)   # 2e-4 J / 1e-9 J
    assert mac_ceiling(Budget(latency_deadline_ms=3.0), MODEL) == pytest.approx(150_000)  # 3 ms x 50k/ms
    assert mac_ceiling(Budget(power_w=1e-3), MODEL) == pytest.approx(100_000)            # 1 mW / 10 Hz
    both = Budget(compute_fraction=0.5, energy_per_item_j=2e-4, latency_deadline_ms=3.0)
    assert mac_ceiling(both, MODEL) == pytest.approx(150_000)


def test_unknown_rates_ignore_their_limits():
    bare = CeilingModel(full_macs=1000)
    assert mac_ceiling(Budget(energy_per_item_j=1e-12, latency_deadline_ms=1e-6, power_w=1e-9), bare) == 1000


def test_invalid_budgets_are_sanitised_not_negative():
    assert mac_ceiling(Budget(compute_fraction=float("nan")), MODEL) == 1_000_000
    assert mac_ceiling(Budget(compute_fraction=-3.0), MODEL) == 0.0
    assert mac_ceiling(Budget(energy_per_item_j=-1.0), MODEL) == 0.0
    assert mac_ceiling(Budget(latency_deadline_ms=float("nan")), MODEL) == 1_000_000


def test_joules_per_mac_from_a_profile():
    p = Profile("p", pj_per_mac=100.0, pj_per_byte=10.0, efficiency=0.5)
    assert joules_per_mac(p) == pytest.approx(200e-12)
    assert joules_per_mac(p, bytes_per_mac=2.0) == pytest.approx(220e-12)
    assert math.isfinite(joules_per_mac(p))


def test_budget_below_the_cheapest_exit_runs_the_cheapest_exit_and_says_over():
    from effdl_ros.ddi.budget_map import ceiling_to_run

    assert ceiling_to_run(0.0, 1000) == (1000.0, True)
    assert ceiling_to_run(999.0, 1000) == (1000.0, True)
    assert ceiling_to_run(1000.0, 1000) == (1000.0, False)
    assert ceiling_to_run(5e6, 1000) == (5e6, False)


def test_settings_for_budget_maps_the_budget_and_raises_to_the_cheapest_exit():
    from effdl_ros.ddi.budget_map import settings_for_budget

    calibration = CeilingModel(full_macs=1_000_000, min_macs=300_000)
    s, over = settings_for_budget(Budget(compute_fraction=0.5), calibration, confidence=0.9)
    assert (s.mac_ceiling, over, s.confidence) == (500_000, False, 0.9)
    s, over = settings_for_budget(Budget(compute_fraction=0.1), calibration, confidence=0.0)
    assert (s.mac_ceiling, over, s.confidence) == (300_000, True, None)


def test_calibrate_measures_the_engine_on_this_machine():
    """The CeilingModel the ddi node builds at load: MAC range from the engine, rate measured."""
    import torch

    from effdl_ros.ddi.budget_map import calibrate
    from effdl_ros.ddi.engine import DDIEngine
    from effdl_ros.ddi.model import DDIConfig, DDINet

    torch.manual_seed(0)
    engine = DDIEngine(DDINet(DDIConfig(widths=(8, 16, 16), blocks=(1, 1, 1), image_size=16, in_channels=1)).eval())
    profile = Profile("p", pj_per_mac=100.0, pj_per_byte=0.0, efficiency=1.0)
    c = calibrate(engine, torch.zeros(1, 1, 16, 16), profile, item_rate_hz=0.0, repeats=2)
    assert (c.full_macs, c.min_macs) == (engine.max_macs, engine.min_macs) and c.min_macs < c.full_macs
    assert c.macs_per_ms > 0 and c.joules_per_mac == pytest.approx(100e-12) and c.item_rate_hz is None

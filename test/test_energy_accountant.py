"""Accountant: per-item energy from a meter (measured) or the cost model (modelled), period averages."""
import math

import pytest

from effdl_ros.energy.accountant import Accountant
from effdl_ros.energy.cost_model import Work, get_profile, ops_energy_j


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


class FakeMeter:
    """Energy counter that rises by `rate` J per clock second; can be told to fail."""

    name = "fake:meter"

    def __init__(self, clock, rate=5.0):
        self.clock, self.rate, self.fail = clock, rate, False

    def start(self):
        self.t0 = self.clock()

    def read(self):
        if self.fail:
            raise OSError("gone")
        from effdl_ros.energy.meters import Reading
        return Reading((self.clock() - self.t0) * self.rate, self.rate, self.clock())


def test_modelled_items_and_period_report():
    clock = FakeClock()
    acct = Accountant("/ddi", clock=clock)
    p = get_profile("x86_cpu")
    for frac in (1.0, 0.5):
        with acct.item() as item:
            clock.t += 0.02
            item.macs = int(1e8 * frac)
            item.bytes = 1000
            item.compute_fraction = frac
    clock.t += 0.96
    rep = acct.report()
    expected = ops_energy_j(Work(macs=10**8, bytes=1000), p) + ops_energy_j(Work(macs=5 * 10**7, bytes=1000), p)
    assert rep.energy_j == pytest.approx(expected)
    assert rep.power_w == pytest.approx(expected / 1.0)
    assert rep.items_processed == 2 and rep.period_items == 2
    assert rep.compute_fraction == pytest.approx(0.75)
    assert rep.latency_ms == pytest.approx(20.0)
    assert rep.source == "modelled" and rep.meter == "model:x86_cpu"
    # the next period starts empty; totals carry on
    clock.t += 1.0
    rep2 = acct.report()
    assert rep2.power_w == 0.0 and rep2.period_items == 0 and rep2.energy_j == pytest.approx(expected)
    assert rep2.compute_fraction == 1.0 and rep2.latency_ms == 0.0


def test_walltime_mode_when_the_body_counts_nothing():
    clock = FakeClock()
    acct = Accountant("/n", profile="jetson_orin", clock=clock)
    with acct.item():
        clock.t += 0.5
    assert acct.snapshot().energy_j == pytest.approx(0.5 * get_profile("jetson_orin").tdp_w)


def test_an_item_that_counted_zero_work_costs_nothing():
    """A DDI item skipped for budget sets macs = 0: charging it busy time x TDP made the node look
    expensive, its budget fell to 0 and it never classified again (seen in the 30-minute soak)."""
    clock = FakeClock()
    acct = Accountant("/n", profile="jetson_orin", clock=clock)
    with acct.item() as item:
        clock.t += 0.5
        item.macs = 0
    assert acct.snapshot().energy_j == 0.0


def test_meter_gives_measured_energy_and_falls_back_to_the_model():
    clock = FakeClock()
    meter = FakeMeter(clock, rate=5.0)
    acct = Accountant("/seg", meter=meter, clock=clock)
    with acct.item() as item:
        clock.t += 0.1
        item.macs = 10**9  # ignored: the meter is readable
    snap = acct.snapshot()
    assert snap.energy_j == pytest.approx(0.5) and snap.source == "measured" and snap.meter == "fake:meter"
    meter.fail = True
    with acct.item() as item:
        clock.t += 0.1
        item.macs = 10**6
    snap = acct.snapshot()
    assert snap.source == "modelled" and snap.meter == "model:x86_cpu"
    assert snap.energy_j == pytest.approx(0.5 + ops_energy_j(Work(macs=10**6), get_profile()))


def test_bad_figures_from_the_body_are_made_safe():
    clock = FakeClock()
    acct = Accountant("/n", clock=clock)
    with acct.item() as item:
        item.energy_j = math.nan
        item.compute_fraction = 7.0
    with acct.item() as item:
        item.energy_j = -3.0
        item.compute_fraction = math.nan
    clock.t += 1.0
    rep = acct.report()
    assert rep.energy_j == 0.0 and rep.power_w == 0.0 and rep.compute_fraction == 1.0


def test_an_item_over_full_compute_counts_in_the_period_mean():
    """A tracker frame with a model update runs ~3x the full level: booked as such, so the period's mean
    is what was executed (here 0.8); only the mean is capped at 1."""
    clock = FakeClock()
    acct = Accountant("/n", clock=clock)
    for frac in (3.0, 0.25, 0.25, 0.25, 0.25):
        with acct.item() as item:
            item.macs = 0
            item.compute_fraction = frac
    clock.t += 1.0
    assert acct.report().compute_fraction == pytest.approx(0.8)
    for _ in range(3):
        with acct.item() as item:
            item.macs = 0
            item.compute_fraction = 2.0
    clock.t += 1.0
    assert acct.report().compute_fraction == 1.0


def test_exception_in_the_body_still_books_the_item_and_propagates():
    acct = Accountant("/n", clock=FakeClock())
    with pytest.raises(ValueError):
        with acct.item() as item:
            item.energy_j = 1.0
            raise ValueError("boom")
    assert acct.snapshot().items_processed == 1


def test_cpu_time_estimate_on_a_busy_loop():
    """Issue 18: no meter, one node per process: the process's CPU seconds (from the OS) x the
    profile's power per busy core; meter and source say so, and the MAC figure stays beside it."""
    import time as _time

    from effdl_ros.energy.cost_model import get_profile

    profile = get_profile("x86_cpu")
    acct = Accountant("/busy", profile=profile, estimate="cpu_time")
    acct.report()
    t0, c0 = _time.monotonic(), _time.process_time()
    with acct.item() as item:
        x = 0
        while _time.process_time() - c0 < 0.2:   # a busy loop until it has used 0.2 CPU seconds
            x += 1
        item.macs = 10**6
    cpu = _time.process_time() - c0
    snap = acct.report()
    assert snap.meter == "cputime:x86_cpu" and snap.source == "modelled" and acct.estimate == "cpu_time"
    assert snap.power_w == pytest.approx(cpu * profile.core_w / snap.period_s, rel=0.15)
    assert snap.energy_j == pytest.approx(cpu * profile.core_w, rel=0.15)   # ~0.2 s x 6.9 W, however shared
    assert _time.monotonic() - t0 >= 0.2 * 0.99
    assert snap.energy_j == pytest.approx(snap.power_w * snap.period_s, rel=0.01)  # + the first, tiny period
    assert snap.ops_power_w > 0 and snap.ops_power_w != snap.power_w   # the MAC model, beside


def test_cpu_time_estimate_with_an_injected_clock_and_its_errors():
    from effdl_ros.errors import ConfigError

    clock, cpu = [0.0], [5.0]
    acct = Accountant("/n", estimate="cpu_time", clock=lambda: clock[0], cpu_clock=lambda: cpu[0])
    clock[0], cpu[0] = 2.0, 6.0       # 1 CPU second in 2 s
    snap = acct.report()
    assert snap.power_w == pytest.approx(acct.profile.core_w / 2)
    clock[0] = 3.0                    # idle period: 0 W
    assert acct.report().power_w == 0.0
    with pytest.raises(ConfigError, match="estimate"):
        Accountant("/n", estimate="guess")
    with pytest.raises(ConfigError, match="core_w"):
        Accountant("/n", profile="desktop_gpu", estimate="cpu_time")

"""Budget policy: allocation, stale redistribution, bad input, and the closed loop's step response."""
import math

import pytest

from effdl_ros.energy.budget_policy import BudgetPolicy, PolicyConfig, Report
from effdl_ros.energy.closed_loop import demo_scenario, simulate
from effdl_ros.energy.synthetic_load import SyntheticLoadSettings
from effdl_ros.errors import ConfigError


def cfg(**kw):
    base = dict(total_power_w=10.0, priorities={"/a": 1.0, "/b": 3.0}, min_shares={"/a": 0.2})
    base.update(kw)
    return PolicyConfig(**base)


def live(policy, now, *names):
    for n in names:
        policy.observe(Report(n, now, 1.0))


def test_priorities_and_minimum_shares_split_the_total():
    p = BudgetPolicy(cfg())
    live(p, 0.5, "/a", "/b")
    alloc = p.step(1.0)
    a, b = alloc.for_node("/a"), alloc.for_node("/b")
    assert a.allocation_w == pytest.approx(2.0 + 8.0 * 0.25)
    assert b.allocation_w == pytest.approx(8.0 * 0.75)
    assert sum(x.allocation_w for x in alloc.budgets) == pytest.approx(10.0)
    assert a.power_w == pytest.approx(a.allocation_w)  # no correction yet


def test_stale_node_keeps_its_minimum_and_its_share_is_redistributed():
    p = BudgetPolicy(cfg(stale_after_s=3.0))
    live(p, 0.5, "/a", "/b")
    live(p, 2.5, "/b")
    alloc = p.step(4.0)  # /a last reported at 0.5 -> stale
    a, b = alloc.for_node("/a"), alloc.for_node("/b")
    assert a.stale and not b.stale
    assert b.allocation_w == pytest.approx(8.0)                   # the live node gets the whole rest
    assert a.allocation_w == pytest.approx(2.0 + 8.0 * 0.25)      # offered what it gets on return
    live(p, 4.5, "/a")
    assert not p.step(5.0).for_node("/a").stale


def test_bad_reports_are_dropped_and_budgets_never_negative(caplog):
    p = BudgetPolicy(cfg())
    assert not p.observe(Report("/a", 1.0, math.nan))
    assert not p.observe(Report("/a", 1.0, -2.0))
    assert not p.observe(Report("", 1.0, 1.0))
    assert p.observe(Report("/a", 1.0, 1.0))
    assert not p.observe(Report("/a", 0.5, 1.0))  # older than the last one
    assert p.rejected == 4
    assert p.observe(Report("/unknown", 1.0, 1.0, compute_fraction=math.nan))  # default priority
    alloc = p.step(1.5)
    assert alloc.for_node("/unknown") is not None
    assert all(b.power_w >= 0 and b.allocation_w >= 0 for b in alloc.budgets)
    assert p.step(100.0).for_node("/unknown") is None   # unconfigured and long silent: forgotten
    assert p.step(100.0).for_node("/a") is not None     # configured: kept (stale)


def test_total_zero_gives_zero_budgets():
    p = BudgetPolicy(cfg(total_power_w=0.0))
    live(p, 0.1, "/a", "/b")
    alloc = p.step(1.0)
    assert alloc.total_power_w == 0.0
    assert all(b.power_w == 0.0 and b.allocation_w == 0.0 for b in alloc.budgets)
    live(p, 1.1, "/a", "/b")  # reports during a zero budget carry no information: no correction
    assert all(b.kappa == 1.0 for b in p.step(2.0).budgets)


@pytest.mark.parametrize("kw, name", [
    (dict(total_power_w=-1.0), "total_power_w"), (dict(total_power_w=math.nan), "total_power_w"),
    (dict(mode="solar"), "mode"), (dict(priorities={"/a": 0.0}), r"priorities\[/a\]"),
    (dict(min_shares={"/a": 0.7, "/b": 0.6}), "min_shares"), (dict(stale_after_s=0), "stale_after_s"),
    (dict(ki=0.0), "ki"), (dict(kappa_max=0.5), "kappa_max"),
])
def test_invalid_configuration_is_rejected_with_the_parameter_named(kw, name):
    with pytest.raises(ConfigError, match=name):
        BudgetPolicy(cfg(**kw))


def test_battery_mode_spreads_the_usable_energy_over_the_time_left():
    p = BudgetPolicy(cfg(mode="battery", total_power_w=50.0, target_runtime_s=1000.0, battery_reserve=0.1))
    assert p.total_power_w(0.0) == 50.0          # no reading yet: the cap
    p.set_battery(10_000.0, 0.0)
    assert p.total_power_w(0.0) == pytest.approx(9.0)
    assert p.total_power_w(500.0) == pytest.approx(18.0)
    p.set_battery(math.nan, 600.0)               # ignored, logged
    assert p.total_power_w(500.0) == pytest.approx(18.0)
    p.set_battery(1e9, 600.0)
    assert p.total_power_w(600.0) == 50.0        # capped


def test_closed_loop_meets_the_step_response_figures():
    """Issue 3: halve then double the total; every node within 5% in 3 periods, overshoot <= 10%."""
    sc = demo_scenario()
    for phase in (0.05, 0.37, 0.93):
        trace = simulate(sc["config"], sc["loads"], sc["schedule"], duration_s=sc["duration_s"],
                         report_phase_s=phase)
        for t_step, until in ((20.0, 40.0), (40.0, 60.0)):
            for node, fig in trace.step_figures(t_step, until=until).items():
                assert fig["settle_periods"] <= 3.0, (phase, t_step, node, fig)
                assert fig["overshoot"] <= 0.10, (phase, t_step, node, fig)


def test_without_the_loop_the_model_error_stays():
    """The same plants open loop (kappa pinned to 1) miss their budgets by their model error."""
    sc = demo_scenario()
    open_cfg = PolicyConfig(**{**sc["config"].__dict__, "kappa_min": 1.0, "kappa_max": 1.0})
    trace = simulate(open_cfg, sc["loads"], sc["schedule"], duration_s=19.0)
    ddi = trace.consumption["/ddi"][-1] / trace.allocation["/ddi"][-1]
    assert ddi > 1.2  # assumed 0.2 J/item, true 0.25 J/item
    closed = simulate(sc["config"], sc["loads"], sc["schedule"], duration_s=19.0)
    assert closed.consumption["/ddi"][-1] / closed.allocation["/ddi"][-1] == pytest.approx(1.0, abs=0.05)


def test_anti_windup_keeps_a_saturated_node_from_winding_up():
    loads = {"/small": SyntheticLoadSettings(item_rate_hz=10, cost_per_item_j=0.1, noise=0.0)}  # at most 1 W
    config = PolicyConfig(total_power_w=5.0, priorities={"/small": 1.0})
    trace = simulate(config, loads, [], duration_s=30.0)
    assert trace.consumption["/small"][-1] == pytest.approx(1.0, rel=0.02)
    assert max(trace.command["/small"]) <= 5.0 * 1.01   # no wind-up above the allocation


def test_a_node_that_cannot_use_its_share_gives_the_surplus_to_the_others():
    loads = {"/small": SyntheticLoadSettings(item_rate_hz=10, cost_per_item_j=0.1, noise=0.0),   # at most 1 W
             "/big": SyntheticLoadSettings(item_rate_hz=10, cost_per_item_j=1.0, noise=0.0)}     # up to 10 W
    config = PolicyConfig(total_power_w=6.0, priorities={"/small": 1.0, "/big": 1.0})
    trace = simulate(config, loads, [], duration_s=20.0)
    assert trace.allocation["/small"][-1] == pytest.approx(1.1, rel=0.02)   # demand + 10 % headroom
    assert trace.allocation["/big"][-1] == pytest.approx(4.9, rel=0.02)
    assert trace.consumption["/big"][-1] == pytest.approx(4.9, rel=0.05)
    # when the small node can use more again (its items got 5x dearer at 20 s), the cap lifts
    dear = SyntheticLoadSettings(item_rate_hz=10, cost_per_item_j=0.5, noise=0.0)
    trace = simulate(config, loads, [], duration_s=30.0, load_changes=[(20.0, "/small", dear)])
    assert trace.allocation["/small"][19] == pytest.approx(1.1, rel=0.02)
    assert trace.allocation["/small"][-1] == pytest.approx(3.0, rel=0.02)
    assert trace.consumption["/small"][-1] == pytest.approx(3.0, rel=0.05)
    assert trace.consumption["/big"][-1] == pytest.approx(3.0, rel=0.05)


def test_a_node_whose_budget_does_not_bind_is_never_commanded_above_its_allocation():
    """A dynamic network at its deepest exit reports a compute fraction below 1 while spending far
    less than allowed; its correction must not wind up (the demo showed 40 W commands on a 10 W total)."""
    p = BudgetPolicy(cfg())
    for k in range(1, 30):
        p.observe(Report("/a", k - 0.5, 0.01, compute_fraction=0.6, items_processed=10 * k))
        p.observe(Report("/b", k - 0.5, 6.0, compute_fraction=0.9, items_processed=10 * k))
        alloc = p.step(float(k))
        a = alloc.for_node("/a")
        assert a.power_w <= a.allocation_w + 1e-9
        assert all(b.power_w <= 10.0 + 1e-9 for b in alloc.budgets)  # no node told more than the total
    assert a.power_w <= 2.0 + 1e-9  # its minimum share (20 % of 10 W); the rest went to /b


def test_a_period_without_items_does_not_cut_a_node_to_zero():
    """A node's first report (started, nothing processed yet) says 0 W at full compute; that is no
    demand figure, so its budget must stay at its share (the demo saw 0 W budgets for a second)."""
    p = BudgetPolicy(cfg())
    for k in range(1, 6):
        p.observe(Report("/a", k - 0.5, 0.0, compute_fraction=1.0, items_processed=0))
        p.observe(Report("/b", k - 0.5, 0.0, compute_fraction=1.0, items_processed=0))
        alloc = p.step(float(k))
        assert alloc.for_node("/a").power_w == pytest.approx(4.0)
        assert alloc.for_node("/b").power_w == pytest.approx(6.0)


def test_invented_nodes_cannot_dilute_the_configured_ones():
    """Anyone on the DDS domain can publish a report: 1,000 invented names must not take shares."""
    p = BudgetPolicy(cfg(only_configured=True))
    for k in range(1000):
        assert not p.observe(Report(f"/ghost_{k}", 0.5, 1.0, items_processed=1))
    live(p, 0.5, "/a", "/b")
    alloc = p.step(1.0)
    assert {b.node for b in alloc.budgets} == {"/a", "/b"}
    assert sum(b.allocation_w for b in alloc.budgets) == pytest.approx(10.0)
    assert p.rejected == 1000
    capped = BudgetPolicy(cfg(max_unconfigured=5))
    for k in range(100):
        capped.observe(Report(f"/ghost_{k}", 0.5, 1.0, items_processed=1))
    assert len(capped.step(1.0).budgets) == 2 + 5


# ------------------------------------------------------------------ real-node-like plants (issue 18)

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from effdl_ros.energy.dither import LevelDither  # noqa: E402


class _DiscretePlant:
    """A node with a ladder of knob levels (relative costs), picking from compute_fraction as the real
    nodes do: the largest level under it, or (dither=True) a per-item mix of the two around it (the
    segmentation node). Items arrive at `rate` per period; each costs level x full_j x (1 + noise)."""

    def __init__(self, name, levels, full_w, rate, noise, dither, rng):
        self.name, self.levels, self.full_w, self.rate = name, sorted(levels), full_w, rate
        self.noise, self.rng = noise, rng
        self.dither = LevelDither(levels) if dither else None
        self.items = 0

    def run_period(self, cf):
        energy, frac = 0.0, 0.0
        for _ in range(self.rate):
            if self.dither is not None:
                c = self.dither.pick(cf)
            else:
                fit = [lv for lv in self.levels if lv <= cf + 1e-9]
                c = fit[-1] if fit else self.levels[0]
            energy += c * self.full_w / self.rate * (1 + self.rng.gauss(0, self.noise))
            frac += c
        self.items += self.rate
        return max(0.0, energy), min(1.0, frac / self.rate)


def _run_plants(plants, total, periods, tuning):
    """Budget step at 0 s; reports 0.4 s after each budget; returns per-period (total used, allocations)."""
    cfg = PolicyConfig(total_power_w=total, priorities={p.name: 1.0 for p in plants}, **tuning)
    policy = BudgetPolicy(cfg)
    cmd = {p.name: 1.0 for p in plants}
    out = []
    for k in range(periods):
        alloc = policy.step(float(k))
        cmd = {b.node: b.compute_fraction for b in alloc.budgets}
        used = 0.0
        for p in plants:
            power, frac = p.run_period(cmd.get(p.name, 1.0))
            used += power
            policy.observe(Report(p.name, k + 0.4, power, frac, p.items))
        out.append((used, {b.node: b.allocation_w for b in alloc.budgets}))
    return out


def _shipped_tuning():
    """The shipped graph's monitor tuning, read from config/pipeline.yaml (so the tests follow it)."""
    from pathlib import Path

    import yaml

    doc = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "pipeline.yaml").read_text())
    mon = doc["parameters"]["/energy_monitor"]["ros__parameters"]
    return {k: float(mon[k]) for k in ("kp", "ki", "deadband", "slew", "hold_below")}


SHIPPED_TUNING = _shipped_tuning()
#: for a graph whose nodes have coarse knobs and no per-item mixing (a level held for whole periods): hold
#: a node on the level just under its share and pass the rest on (hold_below), a wider deadband
COARSE_TUNING = dict(kp=0.0, ki=0.2, deadband=0.05, slew=0.1, hold_below=0.35)
SEG = [s * s for s in (1.0, 0.875, 0.75, 0.625, 0.5)]
TRACKER = [1.0, 0.767, 0.696, 0.629, 0.48, 0.431, 0.385, 0.296, 0.262, 0.189, 0.116]


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), share=st.floats(0.4, 0.75), noise=st.floats(0.0, 0.05),
       seg_w=st.floats(1.0, 2.0), trk_w=st.floats(0.5, 1.5), tuning=st.sampled_from(["coarse", "shipped"]))
def test_policy_is_steady_with_noisy_discrete_knob_plants(seed, share, noise, seg_w, trk_w, tuning):
    """Issue 18's goal on plants like the real nodes: a dithered 5-level knob (segmentation), a ~10-25 %
    ladder without dithering (tracker), a tiny node (ddi). After start-up: the total within +-10 % of the
    budget in >= 90 % of periods, no allocation moving more than 15 % per period, none starved.
    The limit of the design: the dithered node must have room to take up the coarse node's gap; where
    it sits at full compute and the coarse node holds most of the budget, the total can be a level's
    gap x that node's share off (seen: -11 % with segmentation 0.31 W and tracker 1 W at 69 %, -11 % with
    0.5 W and 1.25 W at 56 %), so the dithered node here draws at least 1 W at full compute."""
    import random

    rng = random.Random(seed)
    # coarse: the tracker holding one level for a whole period (credit_frames 0), with the coarse tuning;
    # shipped: the tracker mixing levels frame by frame (its MAC credit), with config/pipeline.yaml's tuning
    plants = [_DiscretePlant("/seg", SEG, seg_w, 5, noise, True, rng),
              _DiscretePlant("/trk", TRACKER, trk_w, 5, noise, tuning == "shipped", rng),
              _DiscretePlant("/ddi", [0.3, 0.6, 1.0], 0.02, 5, noise, False, rng)]
    tuning = SHIPPED_TUNING if tuning == "shipped" else COARSE_TUNING
    full = seg_w + trk_w + 0.02
    total = share * full
    trace = _run_plants(plants, total, 40, tuning)
    steady = trace[10:]   # after the start-up (no model of the knobs yet) has settled
    within = [abs(used / total - 1) <= 0.10 for used, _ in steady]
    assert sum(within) >= 0.9 * len(within), [round(u / total, 3) for u, _ in steady]
    for (_, a0), (_, a1) in zip(steady, steady[1:]):
        for n in a0:
            assert abs(a1[n] / a0[n] - 1) <= 0.15 + 1e-9, (n, a0[n], a1[n])
    assert all(a > 0 for _, alloc in steady for a in alloc.values())


def test_a_step_of_the_total_moves_the_discrete_plants_within_three_periods():
    import random

    rng = random.Random(1)
    plants = [_DiscretePlant("/seg", SEG, 1.0, 5, 0.02, True, rng),
              _DiscretePlant("/trk", TRACKER, 2.0, 5, 0.02, False, rng)]
    cfg = PolicyConfig(total_power_w=1.8, priorities={"/seg": 1.0, "/trk": 1.0}, **COARSE_TUNING)
    policy = BudgetPolicy(cfg)
    used = []
    for k in range(60):
        if k == 30:
            policy.configure(PolicyConfig(**{**cfg.__dict__, "total_power_w": 0.9}))
        alloc = policy.step(float(k))
        cmd = {b.node: b.compute_fraction for b in alloc.budgets}
        total = 0.0
        for p in plants:
            power, frac = p.run_period(cmd[p.name])
            total += power
            policy.observe(Report(p.name, k + 0.4, power, frac, p.items))
        used.append(total)
    before = used[12:30]
    after = used[33:]
    assert sum(abs(u / 1.8 - 1) <= 0.1 for u in before) >= 0.9 * len(before)
    assert sum(abs(u / 0.9 - 1) <= 0.1 for u in after) >= 0.9 * len(after), [round(u, 3) for u in after]


def test_level_dither_follows_a_continuous_target():
    d = LevelDither(SEG)
    for target in (0.3, 0.5, 0.7, 0.9):
        picks = [d.pick(target) for _ in range(50)]
        assert all(p in SEG for p in picks)
        assert sum(picks[-20:]) / 20 == pytest.approx(target, abs=0.02)
    assert d.pick(2.0) == 1.0 and d.pick(0.01) == 0.25 and d.pick(math.nan) == 1.0
    with pytest.raises(ConfigError):
        LevelDither([0.0, 1.0])


def test_a_node_whose_share_cannot_pay_its_cheapest_level_is_deactivated_by_priority_and_returns():
    """Issue 18: below the graph's cheapest configuration the lowest-priority node that cannot pay its
    cheapest level is deactivated on purpose (zero budget, active=False), not starved; it comes back
    when the total pays its cheapest level again (+ margin)."""
    import random

    rng = random.Random(3)
    plants = {"/seg": _DiscretePlant("/seg", SEG, 1.0, 5, 0.0, True, rng),        # cheapest 0.25 W
              "/trk": _DiscretePlant("/trk", TRACKER, 2.0, 5, 0.0, False, rng)}   # cheapest 0.23 W
    cfg = PolicyConfig(total_power_w=2.0, priorities={"/seg": 2.0, "/trk": 1.0}, deactivate=True, **COARSE_TUNING)
    policy = BudgetPolicy(cfg)
    history = []
    for k in range(75):
        total = 2.0 if k < 25 else (0.35 if k < 50 else 2.0)
        if k in (25, 50):
            policy.configure(PolicyConfig(**{**cfg.__dict__, "total_power_w": total}))
        alloc = policy.step(float(k))
        history.append({b.node: b for b in alloc.budgets})
        for name, p in plants.items():
            b = alloc.for_node(name)
            if not b.active:
                continue   # a deactivated node does no work (a lifecycle node would be inactive)
            power, frac = p.run_period(b.compute_fraction)
            policy.observe(Report(name, k + 0.4, power, frac, p.items))
    assert all(h["/seg"].active and h["/trk"].active for h in history[:25])
    low = history[40:50]
    assert all(not h["/trk"].active and h["/trk"].power_w == 0.0 for h in low)   # lower priority: off
    assert all(h["/seg"].active and h["/seg"].allocation_w == pytest.approx(0.35) for h in low)
    assert all(h["/seg"].active and h["/trk"].active for h in history[60:])   # back with the budget


class _CarryPlant:
    """A node that carries work over from one period to the next, as the tracker's MAC credit does:
    it executes what its compute fraction asks (a smooth knob), half in this period and half in the
    next, and reports the fraction it really executed."""

    def __init__(self, name, full_w, rng, noise=0.02):
        self.name, self.full_w, self.rng, self.noise = name, full_w, rng, noise
        self.carry = 0.0
        self.items = 0

    def run_period(self, cf):
        now, self.carry = 0.5 * cf + self.carry, 0.5 * cf
        self.items += 5
        frac = now * (1 + self.rng.gauss(0, self.noise))
        return frac * self.full_w, frac


def test_a_node_carrying_work_across_periods_is_held_without_an_even_odd_swing():
    """Rebasing the integrator only onto the correction in force during the report splits the loop into
    even and odd periods; a node that carries work over averages the two, so nothing corrects their
    difference (seen on the real graph: commands alternating 0.78 / 0.95 W). Started from exactly such a
    swing, the shipped tuning must damp it and hold the total."""
    import random

    rng = random.Random(3)
    plants = [_CarryPlant("/trk", 2.0, rng), _DiscretePlant("/seg", SEG, 0.5, 5, 0.0, True, rng)]
    cfg = PolicyConfig(total_power_w=1.4, priorities={"/trk": 1.0, "/seg": 1.0}, **SHIPPED_TUNING)
    policy = BudgetPolicy(cfg)
    used, cmds = [], []
    for k in range(60):
        if k == 10:  # kick the even/odd mode: one period's correction off by 20 %
            policy.nodes["/trk"].log_kappa += 0.2
        alloc = policy.step(float(k))
        b = {x.node: x for x in alloc.budgets}
        cmds.append(b["/trk"].power_w)
        total = 0.0
        for p in plants:
            power, frac = p.run_period(b[p.name].compute_fraction)
            total += power
            policy.observe(Report(p.name, k + 0.4, power, frac, p.items))
        used.append(total)
    tail = cmds[30:]
    swing = max(abs(a / b_ - 1) for a, b_ in zip(tail, tail[1:]))
    assert swing < 0.05, [round(c, 3) for c in cmds]
    assert sum(abs(u / 1.4 - 1) <= 0.1 for u in used[20:]) >= 0.9 * len(used[20:]), [round(u, 3) for u in used]

"""energy_monitor + synthetic_load on the inproc backend with a simulated clock."""
import math

import pytest

from effdl_ros.energy.budget_policy import settling
from effdl_ros.errors import ConfigError
from effdl_ros.nodes.energy_monitor import EnergyMonitorNode
from effdl_ros.nodes.synthetic_load import SyntheticLoadNode
from effdl_ros.runtime import Node, Parameter
from effdl_ros.runtime.messages import DiagnosticArray, EnergyReport, ResourceBudgetArray
from effdl_ros.runtime.qos import latched
from effdl_ros.runtime.testing import InprocGraph

NODES = ["/ddi", "/segmentation", "/tracker"]


def P(name, value):
    return Parameter(name, value=value)


def monitor_params(total=12.0, **extra):
    params = [P("total_power_w", total), P("meter", "none"), P("nodes", NODES),
              P("priorities", [1.0, 2.0, 1.0]), P("min_shares", [0.0, 0.0, 0.2])]
    return params + [P(k, v) for k, v in extra.items()]


def add_loads(g):
    g.add(SyntheticLoadNode, node_name="ddi", parameter_overrides=[
        P("item_rate_hz", 20.0), P("cost_per_item_j", 0.25), P("assumed_cost_per_item_j", 0.2),
        P("static_j_per_item", 0.005)])
    g.add(SyntheticLoadNode, node_name="segmentation", parameter_overrides=[
        P("item_rate_hz", 10.0), P("cost_per_item_j", 0.8), P("assumed_cost_per_item_j", 1.0), P("seed", 1)])
    g.add(SyntheticLoadNode, node_name="tracker", parameter_overrides=[
        P("item_rate_hz", 30.0), P("cost_per_item_j", 0.25), P("noise", 0.05), P("seed", 2)])


class Recorder(Node):
    def __init__(self, **kw):
        super().__init__("recorder", **kw)
        clock = self.get_clock()
        self.reports, self.diagnostics, self.budgets = [], [], []
        self.create_subscription(EnergyReport, "energy/reports",
                                 lambda m: self.reports.append((clock.now().nanoseconds * 1e-9, m)), 10)
        self.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)
        self.create_subscription(ResourceBudgetArray, "energy/budget", self.budgets.append, latched(1))


def test_closed_loop_step_response_on_the_inproc_backend():
    """Issue 3's figure through real nodes: halve then double the total; 5% in 3 periods, overshoot <= 10%."""
    with InprocGraph(simulated=True) as g:
        start = g.time.now_ns() * 1e-9
        mon = g.add(EnergyMonitorNode, parameter_overrides=monitor_params())
        g.step(0.37)  # the nodes' report timers run out of phase with the monitor's budget timer
        add_loads(g)
        rec = g.add(Recorder)
        allocations = {}
        steps = [(20.5, 6.0), (40.5, 12.0)]
        g.step(20.5 - 0.37)
        for i, (t_step, total) in enumerate(steps):
            before = {b.node: b.allocation_w for b in mon.last.budgets}
            assert mon.set_parameters([P("total_power_w", total)])[0].successful
            g.step(1.0)
            after = {b.node: b.allocation_w for b in mon.last.budgets}
            allocations[t_step] = (before, after)
            g.step(19.0)
        for (t_step, _), until in zip(steps, (40.5, 60.5)):
            before, after = allocations[t_step]
            for node in NODES:
                pts = [(t - start, m.power_w) for t, m in rec.reports if m.node == node and t - start < until]
                fig = settling([t for t, _ in pts], [v for _, v in pts], t_step=t_step,
                               target=after[node], before=before[node], period_s=1.0)
                assert fig["settle_periods"] <= 3.0, (node, t_step, fig)
                assert fig["overshoot"] <= 0.10, (node, t_step, fig)
        assert after == pytest.approx({"/ddi": 2.4, "/segmentation": 4.8, "/tracker": 4.8})


def test_late_joiner_gets_its_budget_and_falls_back_when_the_monitor_goes():
    with InprocGraph(simulated=True) as g:
        mon = g.add(EnergyMonitorNode, parameter_overrides=monitor_params(stale_after_s=2.0))
        g.step(2.0)
        load = g.add(SyntheticLoadNode, node_name="ddi",
                     parameter_overrides=[P("default_power_w", 3.0), P("stale_after_s", 2.0)])
        g.spin_until_idle()
        b = load.budget.current()
        assert b.source == "monitor" and not b.stale and b.power_w > 0
        g.step(3.0)
        mon.destroy_node()
        g.step(3.0)
        b = load.budget.current()
        assert b.stale and b.source == "default" and b.power_w == 3.0


def test_invalid_parameters_are_refused_with_a_reason():
    with InprocGraph(simulated=True) as g:
        mon = g.add(EnergyMonitorNode, parameter_overrides=monitor_params())
        for name, value, words in [("total_power_w", -1.0, "total_power_w"), ("mode", "solar", "mode"),
                                   ("rate_hz", 0.0, "rate_hz"), ("priorities", [1.0, 0.0, 1.0], "priorities"),
                                   ("priorities", [1.0], "one per entry"), ("min_shares", [0.6, 0.6, 0.0], "min_shares"),
                                   ("nodes", ["/b", "/b", "/c"], "more than once")]:
            result = mon.set_parameters([P(name, value)])[0]
            assert not result.successful and words in result.reason, (name, result.reason)
        assert mon.get_parameter("total_power_w").value == 12.0
        assert mon.set_parameters([P("rate_hz", 2.0)])[0].successful
        with pytest.raises(ConfigError, match="energy_monitor.*total_power_w"):
            g.add(EnergyMonitorNode, parameter_overrides=monitor_params(total=math.nan))


def test_bad_reports_total_zero_and_diagnostics():
    with InprocGraph(simulated=True) as g:
        mon = g.add(EnergyMonitorNode, parameter_overrides=monitor_params(total=0.0))
        add_loads(g)
        rec = g.add(Recorder)
        bad = rec.create_publisher(EnergyReport, "energy/reports", 10)
        bad.publish(EnergyReport(node="/ddi", power_w=math.nan))
        bad.publish(EnergyReport(node="/ddi", power_w=-5.0))
        g.step(3.0)
        assert mon.policy.rejected >= 2
        latest = rec.budgets[-1]
        assert latest.total_power_w == 0.0
        assert {b.target_node for b in latest.budgets} == set(NODES)
        assert all(b.power_w == 0.0 for b in latest.budgets)
        diag = rec.diagnostics[-1]
        names = [s.name for s in diag.status]
        assert any(n.endswith("/ddi") for n in names) and any(n.endswith("total") for n in names)
        total = [s for s in diag.status if s.name.endswith("total")][0]
        assert {kv.key for kv in total.values} >= {"total_power_w", "meter", "reports_rejected"}
        # the loads follow a zero budget at their least compute, never negative, never crash
        reports = [m for _, m in rec.reports if m.node == "/ddi"]
        assert reports[-1].power_w >= 0 and reports[-1].compute_fraction == pytest.approx(0.02)


def test_budget_client_ignores_other_nodes_and_sanitises_bad_values():
    from effdl_ros.runtime.messages import ResourceBudget

    with InprocGraph(simulated=True) as g:
        load = g.add(SyntheticLoadNode, node_name="ddi", parameter_overrides=[P("default_power_w", 2.0)])
        pub = g.add(Recorder).create_publisher(ResourceBudgetArray, "energy/budget", latched(1))
        assert load.budget.current().stale and load.budget.current().power_w == 2.0
        pub.publish(ResourceBudgetArray(budgets=[ResourceBudget(target_node="/other", power_w=9.0)]))
        g.spin_until_idle()
        assert load.budget.current().source == "default"
        pub.publish(ResourceBudgetArray(budgets=[
            ResourceBudget(target_node="/ddi", power_w=math.nan, energy_per_item_j=-1.0, compute_fraction=3.0)]))
        g.spin_until_idle()
        b = load.budget.current()
        assert b.source == "monitor" and b.power_w == math.inf and b.energy_per_item_j == 0.0
        assert b.compute_fraction == 1.0
        g.step(0.5)  # the load keeps running on it
        assert load.acct.snapshot().items_processed > 0


def test_battery_mode_takes_the_total_from_the_battery(tmp_path):
    bat = tmp_path / "BAT0"
    bat.mkdir()
    for name, value in (("type", "Battery"), ("status", "Discharging"), ("capacity", "40"),
                        ("energy_now", "10000000"), ("power_now", "8000000")):   # 10 Wh, 8 W
        (bat / name).write_text(value + "\n")
    with InprocGraph(simulated=True) as g:
        mon = g.add(EnergyMonitorNode, parameter_overrides=monitor_params(
            total=50.0, mode="battery", target_runtime_s=1000.0, battery_reserve=0.1,
            power_supply_root=str(tmp_path)))
        g.step(1.5)
        assert mon.last.total_power_w == pytest.approx(36000 * 0.9 / (1000 - 1.0), rel=1e-3)
        (bat / "energy_now").write_text("nonsense\n")   # a broken battery file: logged, last total kept
        g.step(1.0)
        assert mon.last.total_power_w == pytest.approx(36000 * 0.9 / (1000 - 1.0), rel=1e-2)


def test_calibrated_total_and_budget_schedule():
    """Issue 18: the monitor measures the unconstrained graph, then sets total = fraction x that figure,
    steps it on schedule, and takes a new fraction at run time; the diagnostics carry both."""
    with InprocGraph(simulated=True) as g:
        mon = g.add(EnergyMonitorNode, parameter_overrides=monitor_params(
            total=100.0, calibrate_s=8.0, budget_fraction=0.5, schedule_after_s=[10.0], schedule_fractions=[0.25]))
        g.step(0.37)
        add_loads(g)
        rec = g.add(Recorder)
        g.step(5.0)
        assert mon.calibrated_w is None and mon.policy.config.total_power_w == 100.0
        g.step(6.0)
        cal = mon.calibrated_w
        assert cal == pytest.approx(5.0 + 8.0 + 7.5, rel=0.1)       # the loads at full compute (modelled)
        assert mon.policy.config.total_power_w == pytest.approx(0.5 * cal)
        g.step(10.0)
        assert mon.policy.config.total_power_w == pytest.approx(0.25 * cal)
        used = sum(m.power_w for t, m in rec.reports[-3:])
        assert used == pytest.approx(0.25 * cal, rel=0.15)
        assert mon.set_parameters([P("budget_fraction", 0.4)])[0].successful
        assert mon.policy.config.total_power_w == pytest.approx(0.4 * cal)
        assert not mon.set_parameters([P("budget_fraction", -1.0)])[0].successful
        total = [s for d in rec.diagnostics for s in d.status if s.name.endswith(": total")][-1]
        values = {kv.key: kv.value for kv in total.values}
        assert float(values["calibrated_w"]) == pytest.approx(cal, rel=1e-3)


def test_budget_client_publishes_the_knobs_with_each_report():
    from effdl_ros.energy.accountant import Accountant
    from effdl_ros.nodekit.budget import BudgetClient, node_clock_seconds

    with InprocGraph(simulated=True) as g:
        node = g.add(lambda **kw: Node("knobbed", **kw))
        client = BudgetClient(node, Accountant("/knobbed", clock=node_clock_seconds(node)), report_period_sec=0)
        rec = g.add(Recorder)
        for scale in (1.0, 0.75, 0.75, 0.5):
            client.set_knob("scale", scale)
        client.publish_report()
        g.step(0.1)
        status = [s for d in rec.diagnostics for s in d.status if s.name == "/knobbed: knobs"]
        values = {kv.key: kv.value for kv in status[-1].values}
        assert float(values["scale_mean"]) == pytest.approx(0.75) and float(values["scale"]) == 0.5
        assert values["estimate"] == "ops"
        assert math.isnan(client.knobs()["scale"][0])   # a new period

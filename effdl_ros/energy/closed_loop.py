"""Closed-loop simulation of the monitor's policy and synthetic load nodes on a simulated clock.

An event loop over simulated time with the same pieces the nodes use (SyntheticLoad, Accountant,
BudgetPolicy), the same rates and a phase offset between report and budget timers, so the loop's
figures (settling, overshoot) and the README plot come from code, not from a hand-made trace. The
runtime test repeats the scenario through real nodes on the inproc backend.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Sequence, Tuple

from effdl_ros.energy.accountant import Accountant
from effdl_ros.energy.budget import Budget
from effdl_ros.energy.budget_policy import BudgetPolicy, PolicyConfig, Report, settling
from effdl_ros.energy.synthetic_load import SyntheticLoad, SyntheticLoadSettings


@dataclass
class Trace:
    """Per node: report times, reported consumption (W), allocation in force at report time (W)."""

    period_s: float
    totals: List[Tuple[float, float]] = field(default_factory=list)    # (t, total W) at each budget step
    times: Dict[str, List[float]] = field(default_factory=dict)
    consumption: Dict[str, List[float]] = field(default_factory=dict)
    allocation: Dict[str, List[float]] = field(default_factory=dict)   # (t, W) at each budget step
    alloc_times: Dict[str, List[float]] = field(default_factory=dict)
    command: Dict[str, List[float]] = field(default_factory=dict)

    def allocation_at(self, node: str, t: float) -> float:
        value = math.nan
        for ta, a in zip(self.alloc_times[node], self.allocation[node]):
            if ta <= t:
                value = a
        return value

    def step_figures(self, t_step: float, *, until: float = math.inf, band: float = 0.05) -> Dict[str, Dict[str, float]]:
        """settling() per node for the step of the total at t_step (reports up to `until`)."""
        out = {}
        for node in self.times:
            before = self.allocation_at(node, t_step - 1e-9)
            target = self.allocation_at(node, t_step + self.period_s * 0.999)
            pairs = [(t, v) for t, v in zip(self.times[node], self.consumption[node]) if t < until]
            out[node] = settling([t for t, _ in pairs], [v for _, v in pairs], t_step=t_step,
                                 target=target, before=before, period_s=self.period_s, band=band)
        return out


def simulate(config: PolicyConfig, loads: Mapping[str, SyntheticLoadSettings],
             schedule: Sequence[Tuple[float, float]], *, duration_s: float, budget_period_s: float = 1.0,
             report_period_s: float = 1.0, report_phase_s: float = 0.37, seed: int = 0,
             load_changes: Sequence[Tuple[float, str, SyntheticLoadSettings]] = ()) -> Trace:
    """Run the loop; schedule = [(time s, total W)] steps of the total budget (fixed mode);
    load_changes = [(time s, node, new settings)] changes of a plant."""
    clock = [0.0]
    policy = BudgetPolicy(config)
    nodes = {}
    for i, (name, settings) in enumerate(sorted(loads.items())):
        acct = Accountant(name, profile="x86_cpu", clock=lambda: clock[0])
        nodes[name] = {"load": SyntheticLoad(settings, seed=seed + i), "acct": acct,
                       "budget": Budget(), "period": 1.0 / settings.item_rate_hz}
    trace = Trace(period_s=budget_period_s)
    for name in nodes:
        for d in (trace.times, trace.consumption, trace.allocation, trace.alloc_times, trace.command):
            d[name] = []
    events: list = []
    seq = 0

    def push(t: float, kind: str, name: str = "") -> None:
        nonlocal seq
        heapq.heappush(events, (t, seq, kind, name))
        seq += 1

    for t, _ in schedule:
        push(t, "total")
    for i, (t, name, _) in enumerate(load_changes):
        push(t, f"plant:{i}", name)
    push(0.0, "budget")
    for i, name in enumerate(nodes):
        push(0.001 * (i + 1), "item", name)
        push(report_phase_s + 0.05 * i, "report", name)
    while events:
        t, _, kind, name = heapq.heappop(events)
        if t > duration_s:
            break
        clock[0] = t
        if kind == "total":
            total = dict(schedule)[t]
            policy.configure(PolicyConfig(**{**config.__dict__, "total_power_w": total}))
        elif kind.startswith("plant:"):
            settings = load_changes[int(kind[6:])][2]
            nodes[name]["load"] = SyntheticLoad(settings, seed=seed)
            nodes[name]["period"] = 1.0 / settings.item_rate_hz
        elif kind == "budget":
            alloc = policy.step(t)
            trace.totals.append((t, alloc.total_power_w))
            for b in alloc.budgets:
                if b.node in nodes:
                    nodes[b.node]["budget"] = Budget(power_w=b.power_w, source="monitor")
                    trace.allocation[b.node].append(b.allocation_w)
                    trace.alloc_times[b.node].append(t)
                    trace.command[b.node].append(b.power_w)
            push(t + budget_period_s, "budget")
        elif kind == "item":
            n = nodes[name]
            f = n["load"].fraction_for(n["budget"])
            with n["acct"].item() as item:
                item.energy_j, item.macs = n["load"].run_item(f)
                item.compute_fraction = f
            push(t + n["period"], "item", name)
        elif kind == "report":
            snap = nodes[name]["acct"].report()
            policy.observe(Report(name, t, snap.power_w, snap.compute_fraction, snap.items_processed))
            trace.times[name].append(t)
            trace.consumption[name].append(snap.power_w)
            push(t + report_period_s, "report", name)
    return trace


def demo_scenario() -> dict:
    """The README's scenario: three nodes, model errors of +25%, -20% and 0%, total 12 W -> 6 W -> 12 W."""
    loads = {
        "/ddi": SyntheticLoadSettings(item_rate_hz=20, cost_per_item_j=0.25, assumed_cost_per_item_j=0.2,
                                      static_j_per_item=0.005),
        "/segmentation": SyntheticLoadSettings(item_rate_hz=10, cost_per_item_j=0.8, assumed_cost_per_item_j=1.0),
        "/tracker": SyntheticLoadSettings(item_rate_hz=30, cost_per_item_j=0.25, noise=0.05),
    }
    config = PolicyConfig(total_power_w=12.0, priorities={"/ddi": 1.0, "/segmentation": 2.0, "/tracker": 1.0},
                          min_shares={"/tracker": 0.2})
    return {"config": config, "loads": loads, "schedule": [(20.0, 6.0), (40.0, 12.0)], "duration_s": 60.0}

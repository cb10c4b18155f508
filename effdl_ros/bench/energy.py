"""The measurements behind `effdl-ros energy loop` (the closed budget loop through real nodes on
simulated time) and `effdl-ros bench accountant` (per-item overhead of the energy accountant);
effdl_ros.cli.energy prints and plots them."""
from __future__ import annotations

import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Dict

from effdl_ros.energy.accountant import Accountant
from effdl_ros.energy.budget_policy import settling
from effdl_ros.energy.meters import RaplMeter, detect_meter
from effdl_ros.nodes.energy_monitor import EnergyMonitorNode
from effdl_ros.nodes.synthetic_load import SyntheticLoadNode
from effdl_ros.runtime import Node, Parameter
from effdl_ros.runtime.messages import EnergyReport
from effdl_ros.runtime.testing import InprocGraph


def closed_loop_scenario(seed: int = 0) -> Dict[str, Any]:
    """The README scenario through real nodes on the inproc backend, simulated clock: total 12 -> 6 -> 12 W."""
    P = lambda k, v: Parameter(k, value=v)  # noqa: E731
    loads = {
        "ddi": [P("item_rate_hz", 20.0), P("cost_per_item_j", 0.25), P("assumed_cost_per_item_j", 0.2),
                P("static_j_per_item", 0.005)],
        "segmentation": [P("item_rate_hz", 10.0), P("cost_per_item_j", 0.8), P("assumed_cost_per_item_j", 1.0)],
        "tracker": [P("item_rate_hz", 30.0), P("cost_per_item_j", 0.25), P("noise", 0.05)],
    }
    steps = [(20.5, 6.0), (40.5, 12.0)]
    trace: Dict[str, Any] = {"reports": {f"/{n}": [] for n in loads}, "allocation": {f"/{n}": [] for n in loads},
                             "command": {f"/{n}": [] for n in loads}, "total": []}
    with InprocGraph(simulated=True) as g:
        t0 = g.time.now_ns() * 1e-9
        mon = g.add(EnergyMonitorNode, parameter_overrides=[
            P("total_power_w", 12.0), P("meter", "none"), P("nodes", [f"/{n}" for n in loads]),
            P("priorities", [1.0, 2.0, 1.0]), P("min_shares", [0.0, 0.0, 0.2])])
        g.step(0.37)  # report timers out of phase with the budget timer
        for i, (name, params) in enumerate(loads.items()):
            g.add(SyntheticLoadNode, node_name=name, parameter_overrides=params + [P("seed", seed + i)])
        rec = g.add(lambda **kw: Node("recorder", **kw))
        clock = rec.get_clock()
        rec.create_subscription(EnergyReport, "energy/reports", lambda m: trace["reports"].setdefault(m.node, []).append(
            (clock.now().nanoseconds * 1e-9 - t0, float(m.power_w))), 10)
        schedule = dict(steps)
        g.step(0.13)
        t = 0.5
        while t < 60.5 - 1e-9:
            if round(t, 2) in schedule:
                mon.set_parameters([P("total_power_w", schedule[round(t, 2)])])
            g.step(0.5)
            t = round(t + 0.5, 2)
            if mon.last is not None:
                trace["total"].append((mon.last.stamp - t0, mon.last.total_power_w))
                for b in mon.last.budgets:
                    trace["allocation"][b.node].append((mon.last.stamp - t0, b.allocation_w))
                    trace["command"][b.node].append((mon.last.stamp - t0, b.power_w))
    figures = {}
    for t_step, total in steps:
        until = next((s for s, _ in steps if s > t_step), math.inf)
        for node, pts in trace["reports"].items():
            alloc = trace["allocation"][node]
            before = [a for ta, a in alloc if ta < t_step][-1]
            after = [a for ta, a in alloc if ta > t_step][0]
            fig = settling([p[0] for p in pts if p[0] < until], [p[1] for p in pts if p[0] < until],
                           t_step=t_step, target=after, before=before, period_s=1.0)
            figures[f"{node}@{t_step:g}s"] = {"from_w": before, "to_w": after, **fig}
    return {"trace": trace, "figures": figures, "steps": steps}


def accountant_overhead(n: int, repeats: int) -> Dict[str, float]:
    """Median seconds for n items per variant: a bare loop, the accountant in its modes, a RAPL reader
    on a fake file tree, and this machine's meter when one is readable (measured)."""

    def baseline():
        for _ in range(n):
            pass

    def loop(acct, macs):
        def run():
            for _ in range(n):
                with acct.item() as item:
                    item.macs = macs
                    item.compute_fraction = 0.5
        return run

    variants = {"no accounting (baseline loop)": baseline,
                "accountant, cost model (MACs set)": loop(Accountant("/bench"), 10**6),
                "accountant, wall-time x TDP mode": loop(Accountant("/bench"), 0)}
    tmp = tempfile.TemporaryDirectory()
    root = Path(tmp.name)
    (root / "intel-rapl:0").mkdir()
    for f, v in (("name", "package-0"), ("energy_uj", "123456789"), ("max_energy_range_uj", "262143328850")):
        (root / "intel-rapl:0" / f).write_text(v + "\n")
    variants["accountant, RAPL reader on a tmpfs file tree (2 reads/item)"] = loop(
        Accountant("/bench", meter=RaplMeter(root)), 0)
    meter, _ = detect_meter()
    if meter is not None:
        variants[f"accountant, this machine's meter {meter.name} (measured)"] = loop(Accountant("/bench", meter=meter), 0)
    times = {}
    for name, fn in variants.items():
        runs = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - t)
        times[name] = statistics.median(runs)
    tmp.cleanup()
    return times

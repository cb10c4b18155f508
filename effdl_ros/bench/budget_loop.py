"""The budget loop on the real graph: calibrate, then hold 60 % and 30 % of the unconstrained power.

Runs the shipped pipeline on the dds backend (one supervised process per node) on the bundled clip,
looped at its camera rate. The energy monitor first lets the graph run unconstrained for a calibration
phase and measures the graph's power (the sum of the model nodes' reports), then sets the total budget
to 60 % of it and, halfway through the rest, to 30 % (its calibrate_s / budget_fraction / schedule
parameters). A recorder node in this process listens to energy/budget, energy/reports and /diagnostics
(the monitor's allocations, every node's knobs) and reads each node process's CPU time from the OS.

Per budget period it keeps: the total budget, per node the allocation, the command, the power (the
node's reported energy, interpolated onto the period's bounds) and the knobs. figures() then gives, for
each budget phase, from the 3rd period after its step: the share of periods whose graph total is within
+-10 % of the total budget, the largest period-to-period change of any node's allocation, and whether any
node fell under its minimum share. The node power is what the nodes report: MODELLED (executed MACs x
the energy profile, or CPU time x power per core with --estimate cpu_time); only the CPU seconds are
measured.
"""
from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import yaml

from effdl_ros.atomic_io import atomic_save_figure

MODEL_NODES = ("/ddi", "/segmentation", "/tracker")
#: a pedestrian in the first frame of samples/vtest (x, y, w, h), as the demo uses
INIT_BOX = (144.0, 82.0, 16.0, 33.0)


@dataclass
class Period:
    t: float                                   # when the monitor's budget arrived (s since start)
    total_w: float                             # total budget in force
    allocation: Dict[str, float] = field(default_factory=dict)
    command: Dict[str, float] = field(default_factory=dict)
    compute_fraction: Dict[str, float] = field(default_factory=dict)
    power: Dict[str, float] = field(default_factory=dict)       # reported (modelled) power over the period
    cpu_w: Dict[str, float] = field(default_factory=dict)       # CPU seconds (measured) x core_w over it
    knobs: Dict[str, Dict[str, float]] = field(default_factory=dict)
    calibrated_w: Optional[float] = None
    fraction: Optional[float] = None

    @property
    def graph_w(self) -> float:
        vals = [self.power.get(n, math.nan) for n in MODEL_NODES]
        return sum(vals) if all(math.isfinite(v) for v in vals) else math.nan


def write_pipeline(path: Path, *, source_config: str, fps: float, calibrate_s: float, step_after_s: float,
                   fractions=(0.6, 0.3), estimate: str = "ops", deadband: Optional[float] = None) -> Path:
    doc = yaml.safe_load(Path(source_config).read_text())
    params = doc.setdefault("parameters", {})
    params.setdefault("/source", {"ros__parameters": {}})["ros__parameters"].update(
        {"rate_hz": float(fps), "loop": True})
    mon = params.setdefault("/energy_monitor", {"ros__parameters": {}})["ros__parameters"]
    mon.update({"total_power_w": 1000.0, "calibrate_s": float(calibrate_s), "budget_fraction": float(fractions[0]),
                "schedule_after_s": [float(step_after_s)], "schedule_fractions": [float(fractions[1])]})
    if deadband is not None:  # else the pipeline's own
        mon["deadband"] = float(deadband)
    for node in ("/ddi", "/segmentation", "/tracker"):
        params.setdefault(node, {"ros__parameters": {}})["ros__parameters"]["energy_estimate"] = estimate
    path.write_text(yaml.safe_dump(doc))
    return path


def _proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) the OS charged to a process so far; NaN if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return math.nan


class _Cumulative:
    """(time, cumulative value) samples of one node; value at any time by linear interpolation."""

    def __init__(self) -> None:
        self.points: List[tuple] = []

    def add(self, t: float, v: float) -> None:
        if math.isfinite(v) and (not self.points or t > self.points[-1][0]):
            self.points.append((t, v))

    def at(self, t: float) -> float:
        p = self.points
        if len(p) < 2 or t < p[0][0] or t > p[-1][0]:
            return math.nan
        lo, hi = 0, len(p) - 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if p[mid][0] <= t:
                lo = mid
            else:
                hi = mid
        (t0, v0), (t1, v1) = p[lo], p[hi]
        return v0 + (v1 - v0) * (t - t0) / (t1 - t0) if t1 > t0 else v0


def run(*, duration_s: float = 90.0, calibrate_s: float = 20.0, fps: float = 5.0, estimate: str = "ops",
        config: Optional[str] = None, log: Callable[[str], None] = print, deadband: Optional[float] = None,
        domain_id: Optional[int] = None, threads: int = 1) -> Dict[str, Any]:
    """Run the graph and record; returns {"periods": [...], "meta": {...}} (see the module docstring)."""
    from effdl_ros.runtime import backend

    backend.select("dds")
    from effdl_ros.energy.cost_model import get_profile

    core_w = get_profile("x86_cpu").core_w
    run_s = duration_s - calibrate_s
    # A DDS domain of its own: another graph on the same domain (a colleague's, a test's) would mix its
    # budgets and reports with ours (seen: a second monitor's 10 W total interleaved with this one's).
    if domain_id is None:
        domain_id = int(os.environ.get("EFFDL_BENCH_DOMAIN_ID", 100 + os.getpid() % 100))
    # One torch thread per node process: three processes with a thread per core each oversubscribe a
    # small machine (the inproc demo keeps up at 5 frames/s where the dds graph, so configured, did not).
    env = {"ROS_DOMAIN_ID": str(domain_id), "OMP_NUM_THREADS": str(threads)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    log(f"DDS domain {domain_id} (ROS_DOMAIN_ID), so no other graph on this machine mixes in; "
        f"OMP_NUM_THREADS={threads} per node process")
    try:
        return _run(duration_s, calibrate_s, run_s, fps, estimate, config, log, deadband, core_w, domain_id)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run(duration_s, calibrate_s, run_s, fps, estimate, config, log, deadband, core_w, domain_id):
    from effdl_ros.graph.launch import Supervisor, default_pipeline, load_pipeline
    from effdl_ros.runtime import Node
    from effdl_ros.runtime.messages import (
        BoundingBox2D,
        Detection2D,
        DiagnosticArray,
        EnergyReport,
        Pose2D,
        ResourceBudgetArray,
    )
    from effdl_ros.runtime.qos import latched
    from effdl_ros.runtime.testing import InprocGraph

    with tempfile.TemporaryDirectory(prefix="effdl_budget_loop_") as tmp:
        path = write_pipeline(Path(tmp) / "pipeline.yaml", source_config=config or default_pipeline(), fps=fps,
                              calibrate_s=calibrate_s, step_after_s=run_s / 2, estimate=estimate,
                              deadband=deadband)
        monitor_params = yaml.safe_load(path.read_text())["parameters"]["/energy_monitor"]["ros__parameters"]
        pipeline = load_pipeline(path)
        sup = Supervisor(pipeline, backend="dds", log=log)
        energy = {n: _Cumulative() for n in MODEL_NODES}
        cpu = {n: _Cumulative() for n in MODEL_NODES}
        budgets: List[tuple] = []          # (t, msg)
        monitor_diag: List[tuple] = []     # (t, {node: {key: value}}, total values)
        knobs: Dict[str, List[tuple]] = {n: [] for n in MODEL_NODES}
        reports_seen: Dict[str, int] = {}
        t0 = time.monotonic()
        now = lambda: time.monotonic() - t0  # noqa: E731

        def on_report(m: Any) -> None:
            if m.node in energy:
                energy[m.node].add(now(), float(m.energy_j))
                reports_seen[m.node] = int(m.items_processed)

        def on_diag(m: Any) -> None:
            t = now()
            per_node, total = {}, {}
            for st in m.status:
                values = {kv.key: kv.value for kv in st.values}
                if st.name.endswith(": knobs"):
                    node = st.name[: -len(": knobs")]
                    if node in knobs:
                        knobs[node].append((t, {k: _num(v) for k, v in values.items() if k != "estimate"}))
                elif st.name.startswith("/energy_monitor: "):
                    key = st.name[len("/energy_monitor: "):]
                    if key == "total":
                        total = values
                    else:
                        per_node[key] = values
            if per_node or total:
                monitor_diag.append((t, per_node, total))

        with InprocGraph(backend="dds") as g:
            rec = g.add(lambda **kw: Node("budget_loop_recorder", **kw))
            rec.create_subscription(EnergyReport, "energy/reports", on_report, 50)
            rec.create_subscription(ResourceBudgetArray, "energy/budget", lambda m: budgets.append((now(), m)),
                                    latched(1))
            rec.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 50)
            init_pub = rec.create_publisher(Detection2D, "tracker/init", 10)
            sup.start_all()
            pids = {f"/{name}": p.pid for name, p in sup.processes.items()}
            init_sent = False
            next_cpu = 0.0
            end: Optional[float] = None
            try:
                while sup.alive():
                    sup.poll()
                    g.executor.spin_once(timeout_sec=0.05)
                    t = now()
                    if not init_sent and reports_seen.get("/tracker", -1) >= 0:
                        x, y, w, h = INIT_BOX
                        det = Detection2D(bbox=BoundingBox2D(size_x=w, size_y=h))
                        det.bbox.center = Pose2D()
                        det.bbox.center.position.x, det.bbox.center.position.y = x + w / 2, y + h / 2
                        init_pub.publish(det)
                        init_sent = True
                    if t >= next_cpu:
                        for n in MODEL_NODES:
                            cpu[n].add(t, _proc_cpu_s(pids.get(n, -1)))
                        next_cpu = t + 0.25
                    if end is None and monitor_diag and _calibrated(monitor_diag[-1][2]) is not None:
                        end = t + run_s
                        log(f"calibrated: {_calibrated(monitor_diag[-1][2]):.3g} W unconstrained (modelled); "
                            f"running {run_s:.0f} s more")
                    if end is not None and t >= end:
                        break
                    if end is None and t > duration_s + 120:
                        log("no calibration after the run's length + 120 s: stopping")
                        break
            finally:
                sup.stop()
    periods = _periods(budgets, monitor_diag, energy, cpu, knobs, core_w)
    return {"periods": [{**p.__dict__, "graph_w": p.graph_w} for p in periods],
            "meta": {"fps": fps, "duration_s": duration_s, "domain_id": domain_id,
                     "torch_threads": int(os.environ.get("OMP_NUM_THREADS", "0")), "calibrate_s": calibrate_s,
                     "estimate": estimate,
                     "deadband": monitor_params.get("deadband"), "monitor": monitor_params, "core_w": core_w,
                     "nodes": list(MODEL_NODES), "cpus": os.cpu_count(),
                     "power_source": "modelled: " + ("executed MACs x x86_cpu profile" if estimate == "ops"
                                                     else "process CPU time (measured) x core_w")}}


def _num(v: str) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _calibrated(total_values: Dict[str, str]) -> Optional[float]:
    v = _num(total_values.get("calibrated_w", "nan")) if total_values else math.nan
    return v if math.isfinite(v) else None


def _periods(budgets, monitor_diag, energy, cpu, knobs, core_w) -> List[Period]:
    out: List[Period] = []
    for (ta, a), (tb, b) in zip(budgets, budgets[1:]):
        p = Period(t=tb, total_w=float(a.total_power_w))
        for bud in a.budgets:
            p.command[bud.target_node] = float(bud.power_w)
            p.compute_fraction[bud.target_node] = float(bud.compute_fraction)
        diag = [d for d in monitor_diag if d[0] <= tb + 0.05 and d[0] >= ta - 0.2]
        if diag:
            _, per_node, total = diag[0]
            for node, values in per_node.items():
                p.allocation[node] = _num(values.get("allocation_w", "nan"))
            p.calibrated_w = _calibrated(total)
            p.fraction = _num(total.get("budget_fraction", "nan")) if p.calibrated_w else None
        span = tb - ta
        for n in MODEL_NODES:
            p.power[n] = (energy[n].at(tb) - energy[n].at(ta)) / span if span > 0 else math.nan
            p.cpu_w[n] = (cpu[n].at(tb) - cpu[n].at(ta)) / span * core_w if span > 0 else math.nan
            within = [v for t, v in knobs[n] if ta < t <= tb]
            if within:
                p.knobs[n] = within[-1]
        out.append(p)
    return out


def figures(periods: List[Dict[str, Any]], *, min_shares: Optional[Dict[str, float]] = None,
            band: float = 0.10, skip: int = 2, steady_change: float = 0.15) -> Dict[str, Any]:
    """Per budget phase (after calibration): within-band share from the 3rd period after its step,
    the largest allocation change between consecutive periods, starved nodes."""
    min_shares = min_shares or {}
    phases: List[List[Dict[str, Any]]] = []
    last = None
    for p in periods:
        if p.get("calibrated_w") is None or not p.get("fraction"):
            continue
        key = round(p["total_w"], 6)
        if key != last:
            phases.append([])
            last = key
        phases[-1].append(p)
    out = []
    for ph in phases:
        steady = ph[skip:]
        if not steady:
            continue
        ok = [abs(q["graph_w"] / q["total_w"] - 1) <= band for q in steady
              if math.isfinite(q.get("graph_w", math.nan)) and q["total_w"] > 0]
        changes: Dict[str, float] = {}
        for n in MODEL_NODES:
            worst = 0.0
            for q0, q1 in zip(steady, steady[1:]):
                a0, a1 = q0["allocation"].get(n, math.nan), q1["allocation"].get(n, math.nan)
                if a0 > 0 and math.isfinite(a1):
                    worst = max(worst, abs(a1 / a0 - 1))
            changes[n] = worst
        starved = sorted({n for q in steady for n in MODEL_NODES
                          if q["allocation"].get(n, 0.0) < min_shares.get(n, 0.0) * q["total_w"] * 0.999})
        ratio = [q["graph_w"] / q["total_w"] for q in steady if math.isfinite(q.get("graph_w", math.nan))]
        out.append({"fraction": ph[0]["fraction"], "total_w": ph[0]["total_w"], "periods": len(ph),
                    "scored_periods": len(ok), "within_band": (sum(ok) / len(ok)) if ok else math.nan,
                    "mean_ratio": sum(ratio) / len(ratio) if ratio else math.nan,
                    "max_alloc_change": changes, "starved": starved,
                    "goal_met": bool(ok) and sum(ok) / len(ok) >= 0.9
                    and max(changes.values()) <= steady_change and not starved})
    return {"phases": out, "band": band, "from_period": skip + 1}


# ---------------------------------------------------------------------------------------------- demo

def looped(inp, loops: int):
    """The replay input played `loops` times in a row, stamps continuing (the demo's longer run)."""
    from effdl_ros.bench.replay import ReplayFrame

    if loops <= 1:
        return inp
    period = int(round(1e9 / inp.fps))
    base = inp._iter

    def frames():
        i, last = 0, None
        for _ in range(loops):
            for f in base():
                stamp = f.stamp_ns if last is None or f.stamp_ns > last else last + period
                last = stamp
                yield ReplayFrame(i, stamp, f.image, f.gt_box)
                i += 1

    return replace(inp, count=inp.count * loops if inp.count else None, _iter=frames)


def node_knobs(session) -> Dict[str, Dict[str, float]]:
    """{node: {knob: mean over the node's current report period}} of the graph's model nodes."""
    out = {}
    for name in ("ddi", "segmentation", "tracker"):
        node = session.node(name)
        client = getattr(node, "budget", None)
        if client is not None and hasattr(client, "knobs"):
            out[name] = {k: (mean if math.isfinite(mean) else last) for k, (mean, last) in client.knobs().items()}
    return out


def knob_text(knobs: Dict[str, float], node: str) -> str:
    """One short label per node: ddi exit / MAC ceiling, segmentation scale, tracker level."""
    def f(v, d=2):
        return "-" if v is None or not math.isfinite(v) else f"{v:.{d}f}"

    if node.endswith("segmentation"):
        return f"scale {f(knobs.get('scale'))}"
    if node.endswith("tracker"):
        return f"level {f(knobs.get('level'), 1)} (0 = richest)"
    if node.endswith("ddi"):
        c = knobs.get("mac_ceiling", math.nan)
        return f"exit {f(knobs.get('exit'), 1)}, ceiling {f(c / 1e6, 1)} M MACs"
    return ""


def plot_demo_knobs(records: List[Dict[str, Any]], path: Path, events=()) -> bool:
    """knobs.png of the demo: each node's knob per frame, with the budget events marked."""
    rows = [(i, r["knob"]) for i, r in enumerate(records) if r.get("knob")]
    if not rows:
        return False

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(8, 6), sharex=True)
    series = (("segmentation", "scale", "segmentation input scale"), ("tracker", "level", "tracker level (0 richest)"),
              ("ddi", "exit", "ddi exit (mean)"))
    for ax, (node, key, label) in zip(axes, series):
        ax.plot([i for i, _ in rows], [k.get(node, {}).get(key, math.nan) for _, k in rows], color="tab:blue")
        ax.set_ylabel(label, fontsize=8)
        if node == "tracker":
            ax.invert_yaxis()
    t_of = [r.get("t_s", math.nan) for r in records]
    for ev in events:
        idx = next((i for i, t in enumerate(t_of) if isinstance(t, (int, float)) and t >= ev["t_s"]), None)
        for ax in axes:
            if idx is not None:
                ax.axvline(idx, color="red", lw=0.8, ls=":")
        if idx is not None:
            axes[0].text(idx, axes[0].get_ylim()[1], ev["text"], fontsize=7, color="red", va="top")
    axes[-1].set_xlabel("frame")
    fig.suptitle("knobs the budget set (energy modelled from executed MACs)", fontsize=9)
    atomic_save_figure(fig, path, dpi=90, fmt="png")
    return True

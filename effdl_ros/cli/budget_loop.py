"""`effdl-ros bench budget-loop`: the energy budget governing the real graph (dds, a process per node)."""
from __future__ import annotations

import argparse
import math
import sys
from typing import Any, Dict

from effdl_ros.atomic_io import atomic_save_figure
from effdl_ros.cli.options import add_json_option, write_json
from effdl_ros.errors import ConfigError


def register(cli) -> None:
    cli.add("bench", "budget-loop", help="the shipped graph on dds under a calibrated budget, 60 % then 30 %: "
                                         "total vs budget, allocation steadiness, knobs (table, plot, JSON)",
            configure=_configure, run=_run)


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--duration", type=float, default=90.0, help="seconds in all, calibration included (default 90)")
    p.add_argument("--calibrate", type=float, default=20.0, help="unconstrained calibration phase (s, default 20)")
    p.add_argument("--fps", type=float, default=5.0, help="camera rate of the looped clip (default 5, its own)")
    p.add_argument("--estimate", choices=("ops", "cpu_time"), default="ops",
                   help="what the nodes report: executed MACs x profile (ops) or their process's CPU time x "
                        "power per core (cpu_time); both modelled")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads per node process (OMP_NUM_THREADS; default 1: three processes on a "
                        "small machine oversubscribe it otherwise)")
    p.add_argument("--deadband", type=float, default=None,
                   help="the monitor's PI deadband (default: the pipeline's own)")
    p.add_argument("--config", default=None, help="pipeline YAML (default: the shipped config/pipeline.yaml)")
    p.add_argument("--plot", default="budget_loop.png", help="PNG to write ('' for none)")
    add_json_option(p, "write the periods and figures to this JSON file")


def _f(v: float, digits: int = 3) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}g}"


def _min_shares(config) -> Dict[str, float]:
    import yaml

    from effdl_ros.cli.graph import default_config

    doc = yaml.safe_load(open(config or default_config()))
    mon = doc.get("parameters", {}).get("/energy_monitor", {}).get("ros__parameters", {})
    return {n: float(s) for n, s in zip(mon.get("nodes", []), mon.get("min_shares", []))}


def _run(args: argparse.Namespace) -> int:
    from effdl_ros.bench.budget_loop import MODEL_NODES, figures, run

    if args.duration <= args.calibrate + 10 or args.calibrate < 5 or args.fps <= 0:
        raise ConfigError("need --calibrate >= 5 s, --duration > --calibrate + 10 s and --fps > 0.")
    result = run(duration_s=args.duration, calibrate_s=args.calibrate, fps=args.fps, estimate=args.estimate,
                 config=args.config, deadband=args.deadband, threads=args.threads, log=lambda m: print(m, file=sys.stderr, flush=True))
    figs = figures(result["periods"], min_shares=_min_shares(args.config))
    result["figures"] = figs
    from rich.console import Console
    from rich.table import Table

    meta = result["meta"]
    cal = next((p["calibrated_w"] for p in result["periods"] if p.get("calibrated_w")), math.nan)
    t = Table(title=f"budget loop on the real graph (dds, a process per node, {meta['cpus']} CPUs shared; clip at "
                    f"{meta['fps']:g} frames/s). Unconstrained graph power {_f(cal)} W; power "
                    f"{meta['power_source']}. Scored from period {figs['from_period']} after each step.")
    for col in ("budget", "total W", "periods", "within +-10 %", "mean power/budget",
                *[f"max alloc change {n}" for n in MODEL_NODES], "starved", "goal met"):
        t.add_column(col, justify="right")
    ok = bool(figs["phases"])
    for ph in figs["phases"]:
        ok &= ph["goal_met"]
        t.add_row(f"{100 * ph['fraction']:.0f} %", _f(ph["total_w"]), str(ph["scored_periods"]),
                  f"{100 * ph['within_band']:.0f} %", _f(ph["mean_ratio"]),
                  *[f"{100 * ph['max_alloc_change'][n]:.1f} %" for n in MODEL_NODES],
                  ", ".join(ph["starved"]) or "none", "yes" if ph["goal_met"] else "NO")
    Console().print(t)
    _print_knobs(result)
    if args.json:
        write_json(args.json, result, say="json:")
    if args.plot:
        plot(result, args.plot)
        print(f"plot: {args.plot}")
    return 0 if ok else 1


def _knob_text(knobs: Dict[str, float], node: str) -> str:
    if node == "/segmentation":
        return f"scale {_f(knobs.get('scale_mean'))}"
    if node == "/tracker":
        return f"level {_f(knobs.get('level_mean'))}"
    if node == "/ddi":
        return f"exit {_f(knobs.get('exit_mean'))}, ceiling {_f(knobs.get('mac_ceiling_mean', math.nan) / 1e6)} M"
    return ""


def _print_knobs(result: Dict[str, Any]) -> None:
    """The knobs each phase settled on (means over the scored periods)."""
    from effdl_ros.bench.budget_loop import MODEL_NODES

    rows: Dict[Any, Dict[str, list]] = {}
    for p in result["periods"]:
        key = "calibration" if not p.get("fraction") else f"{100 * p['fraction']:.0f} %"
        for n in MODEL_NODES:
            k = p["knobs"].get(n)
            if k:
                rows.setdefault(key, {}).setdefault(n, []).append(k)
    for key, per_node in rows.items():
        parts = []
        for n in MODEL_NODES:
            ks = per_node.get(n, [])
            mean = {name: sum(k.get(name, math.nan) for k in ks) / len(ks) for name in (ks[0] if ks else {})}
            parts.append(f"{n} {_knob_text(mean, n)}")
        print(f"knobs, {key}: " + "; ".join(parts))


def plot(result: Dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from effdl_ros.bench.budget_loop import MODEL_NODES

    ps = result["periods"]
    t = [p["t"] for p in ps]
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    ax = axes[0]
    total = [p["total_w"] if p.get("calibrated_w") else math.nan for p in ps]
    ax.step(t, total, where="pre", color="black", label="total budget")
    ax.fill_between(t, [v * 0.9 for v in total], [v * 1.1 for v in total], step="pre", color="grey", alpha=0.2,
                    label="±10 %")
    ax.plot(t, [p["graph_w"] for p in ps], "o-", ms=2.5, color="tab:blue", label="graph power (nodes' reports)")
    ax.plot(t, [sum(p["cpu_w"].get(n, math.nan) for n in MODEL_NODES) for p in ps], "-", lw=0.8,
            color="tab:grey", label="CPU time x W/core (beside)")
    ax.set_ylabel("W (modelled)")
    ax.legend(fontsize=7, loc="upper right")
    colors = {"/ddi": "tab:green", "/segmentation": "tab:orange", "/tracker": "tab:purple"}
    ax = axes[1]
    for n in MODEL_NODES:
        ax.plot(t, [p["power"].get(n, math.nan) for p in ps], "-", lw=1, color=colors[n], label=f"{n} power")
        ax.step(t, [p["allocation"].get(n, math.nan) if p.get("calibrated_w") else math.nan for p in ps],
                where="pre", ls="--", lw=1, color=colors[n], label=f"{n} allocation")
    ax.set_ylabel("W (modelled)")
    ax.legend(fontsize=6, loc="upper right", ncol=3)
    ax = axes[2]
    ax.plot(t, [p["knobs"].get("/segmentation", {}).get("scale_mean", math.nan) for p in ps], color=colors["/segmentation"],
            label="segmentation input scale")
    ax.set_ylabel("scale")
    ax2 = ax.twinx()
    ax2.plot(t, [p["knobs"].get("/tracker", {}).get("level_mean", math.nan) for p in ps], color=colors["/tracker"],
             label="tracker level (0 richest)")
    ax2.plot(t, [p["knobs"].get("/ddi", {}).get("exit_mean", math.nan) for p in ps], color=colors["/ddi"],
             label="ddi exit")
    ax2.set_ylabel("level / exit")
    ax2.invert_yaxis()
    lines = ax.get_lines() + ax2.get_lines()
    ax.legend(lines, [ln.get_label() for ln in lines], fontsize=7, loc="lower left")
    axes[-1].set_xlabel("s since start (calibration: budget unconstrained)")
    meta = result["meta"]
    fig.suptitle(f"budget loop, real graph on dds ({meta['cpus']} shared CPUs, {meta['fps']:g} frames/s); "
                 f"power {meta['power_source']}", fontsize=8)
    atomic_save_figure(fig, path, dpi=100, fmt="png")

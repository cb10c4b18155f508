"""`effdl-ros energy status|profile|loop` and `effdl-ros bench accountant`."""
from __future__ import annotations

import argparse
import importlib
import math
import platform
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from effdl_ros.atomic_io import atomic_save_figure
from effdl_ros.cli.options import add_json_option, write_json
from effdl_ros.errors import ConfigError


def register(cli) -> None:
    cli.add("energy", "status", help="live table of meters, nodes, budgets and consumption (subscribes to the graph)",
            configure=_configure_status, run=_run_status)
    cli.add("energy", "profile", help="MACs, bytes and modelled energy per item of a model on each platform profile",
            configure=_configure_profile, run=_run_profile)
    cli.add("energy", "loop", help="closed-loop budget demo on simulated time: step response figures and a plot",
            configure=_configure_loop, run=_run_loop)
    cli.add("bench", "accountant", help="per-item overhead of the energy accountant (microseconds)",
            configure=_configure_bench, run=_run_bench)



def _fmt(v: float, unit: str = "") -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.3g}{unit}"


# ---------------------------------------------------------------------------------------------- status

def _configure_status(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=("rclpy", "dds", "inproc"), default=None,
                   help="middleware (default: rclpy where it imports, else dds)")
    p.add_argument("--once", action="store_true", help="print one table after --wait seconds and exit")
    p.add_argument("--wait", type=float, default=3.0, help="seconds to listen before the first table (default 3)")
    p.add_argument("--duration", type=float, default=0.0, help="stop the live view after this many seconds (0: Ctrl-C)")


class StatusView:
    """Collects the monitor's budgets and the nodes' reports on a node; renders one rich table."""

    def __init__(self, node: Any) -> None:
        from effdl_ros.runtime.messages import EnergyReport, ResourceBudgetArray
        from effdl_ros.runtime.qos import latched

        self.node = node
        self.budgets: Optional[Any] = None
        self.reports: Dict[str, Any] = {}
        self.received: Dict[str, float] = {}
        node.create_subscription(ResourceBudgetArray, "energy/budget", self._on_budgets, latched(1))
        node.create_subscription(EnergyReport, "energy/reports", self._on_report, 10)

    def _on_budgets(self, msg: Any) -> None:
        self.budgets = msg

    def _on_report(self, msg: Any) -> None:
        self.reports[msg.node] = msg
        self.received[msg.node] = time.monotonic()

    def rows(self) -> List[Dict[str, Any]]:
        from effdl_ros.runtime.messages import EnergyReport

        budgets = {b.target_node: b for b in self.budgets.budgets} if self.budgets is not None else {}
        rows = []
        for name in sorted(set(budgets) | set(self.reports)):
            b, r = budgets.get(name), self.reports.get(name)
            rows.append({
                "node": name,
                "budget_w": float(b.power_w) if b is not None else math.nan,
                "power_w": float(r.power_w) if r is not None else math.nan,
                "energy_j": float(r.energy_j) if r is not None else math.nan,
                "items": int(r.items_processed) if r is not None else 0,
                "compute_fraction": float(r.compute_fraction) if r is not None else math.nan,
                "latency_ms": float(r.latency_ms) if r is not None else math.nan,
                "source": ("measured" if r.source == EnergyReport.SOURCE_MEASURED else "modelled") if r else "-",
                "meter": r.meter if r is not None else "-",
                "age_s": time.monotonic() - self.received[name] if name in self.received else math.nan,
            })
        return rows

    def table(self, meter_line: str):
        from rich.table import Table

        total = _fmt(float(self.budgets.total_power_w), " W") if self.budgets is not None else "no monitor heard"
        t = Table(title=f"effdl_ros energy  |  total budget {total}  |  local meter: {meter_line}")
        for col in ("node", "budget W", "power W", "use %", "energy J", "items", "compute", "latency ms",
                    "source", "meter", "report age s"):
            t.add_column(col, justify="left" if col in ("node", "source", "meter") else "right")
        for r in self.rows():
            use = 100.0 * r["power_w"] / r["budget_w"] if r["budget_w"] and math.isfinite(r["budget_w"]) else math.nan
            t.add_row(r["node"], _fmt(r["budget_w"]), _fmt(r["power_w"]), _fmt(use), _fmt(r["energy_j"]),
                      str(r["items"]), _fmt(r["compute_fraction"]), _fmt(r["latency_ms"]), r["source"], r["meter"],
                      _fmt(r["age_s"]))
        return t


def _meter_line() -> str:
    from effdl_ros.energy.meters import detect_meter

    meter, _ = detect_meter()
    if meter is None:
        return "none readable (nodes use the cost model: modelled)"
    r = meter.read()
    return f"{meter.name} {r.power_w:.3g} W (measured)"


def _run_status(args: argparse.Namespace) -> int:
    from effdl_ros.runtime import backend

    if args.backend:
        backend.select(args.backend)
    from rich.console import Console
    from rich.live import Live

    from effdl_ros.runtime import Node, init, ok, shutdown, spin_once

    init(args=None)
    node = Node("energy_status")
    view = StatusView(node)
    meter_line = _meter_line()
    console = Console()
    end_wait = time.monotonic() + max(0.0, args.wait)
    try:
        while time.monotonic() < end_wait:
            spin_once(node, timeout_sec=0.1)
        if args.once:
            console.print(view.table(meter_line))
            return 0
        stop = time.monotonic() + args.duration if args.duration > 0 else math.inf
        with Live(view.table(meter_line), console=console, refresh_per_second=2) as live:
            while time.monotonic() < stop:
                for _ in range(5):
                    spin_once(node, timeout_sec=0.1)
                live.update(view.table(meter_line))
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        if ok():
            shutdown()
    return 0


# ---------------------------------------------------------------------------------------------- profile

def _configure_profile(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a torchvision architecture name (e.g. resnet18, mobilenet_v3_small), "
                                 "'module:factory' returning an nn.Module, or a checkpoint file with --loader")
    p.add_argument("--loader", default=None,
                   help="'module:function' that loads the checkpoint file given as MODEL and returns the model "
                        "(or a tuple holding it), e.g. effdl_ros.segmentation.network:load_checkpoint")
    p.add_argument("--input", default="1,3,224,224", help="input shape, comma-separated (default 1,3,224,224)")
    p.add_argument("--profiles", default="all", help="comma-separated profile names, or all")
    p.add_argument("--profiles-file", default=None, help="YAML of profiles (default config/energy_profiles.yaml)")
    add_json_option(p, "also write the figures to this JSON file")


def _import(spec: str, what: str):
    module_name, _, attr = spec.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as err:
        raise ConfigError(f"{what} {spec!r}: cannot import ({err}).") from None


def _as_module(obj, spec: str):
    import torch

    items = obj if isinstance(obj, (tuple, list)) else [obj]
    for item in items:
        if isinstance(item, torch.nn.Module):
            return item
    raise ConfigError(f"{spec!r} gave no torch.nn.Module.")


def _build_model(spec: str, loader: Optional[str] = None):
    if loader is not None or Path(spec).suffix in (".pt", ".pth", ".safetensors"):
        if loader is None:
            raise ConfigError(f"model {spec!r} is a checkpoint file: say how to load it with --loader module:function.")
        if not Path(spec).is_file():
            raise ConfigError(f"model {spec!r}: no such file.")
        return _as_module(_import(loader, "loader")(Path(spec)), loader)
    if ":" in spec:
        return _as_module(_import(spec, "model")(), spec)
    import torchvision

    try:
        return torchvision.models.get_model(spec, weights=None)
    except ValueError:
        known = ", ".join(sorted(torchvision.models.list_models(module=torchvision.models))[:12])
        raise ConfigError(f"model {spec!r} is neither 'module:factory' nor a torchvision architecture "
                          f"(e.g. {known}, ...).") from None


def _run_profile(args: argparse.Namespace) -> int:
    import torch

    from effdl_ros.energy.cost_model import count_work, load_profiles, ops_energy_j

    torch.set_num_threads(min(2, torch.get_num_threads()))
    try:
        shape = tuple(int(s) for s in args.input.split(","))
        if not shape or min(shape) <= 0:
            raise ValueError
    except ValueError:
        raise ConfigError(f"--input {args.input!r} must be positive comma-separated integers, e.g. 1,3,224,224.") from None
    profiles = load_profiles(args.profiles_file)
    if args.profiles != "all":
        wanted = [p.strip() for p in args.profiles.split(",")]
        missing = [p for p in wanted if p not in profiles]
        if missing:
            raise ConfigError(f"unknown energy profiles {missing}; known: {sorted(profiles)}.")
        profiles = {k: profiles[k] for k in wanted}
    model = _build_model(args.model, args.loader).eval()
    params = sum(p.numel() for p in model.parameters())
    work = count_work(model, torch.zeros(shape))
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{args.model}, input {'x'.join(map(str, shape))}: {work.macs / 1e6:.1f} M MACs, "
                    f"{work.bytes / 1e6:.1f} MB touched, {params / 1e6:.2f} M parameters (counted; energy MODELLED)")
    for col in ("profile", "pJ/MAC", "pJ/byte", "efficiency", "compute mJ", "memory mJ", "total mJ/item"):
        t.add_column(col, justify="left" if col == "profile" else "right")
    rows = []
    for name, prof in profiles.items():
        total = ops_energy_j(work, prof)
        mem = work.bytes * prof.pj_per_byte * 1e-12
        rows.append({"profile": name, "energy_j": total, "compute_j": total - mem, "memory_j": mem,
                     "source": "modelled"})
        t.add_row(name, _fmt(prof.pj_per_mac), _fmt(prof.pj_per_byte), _fmt(prof.efficiency),
                  f"{1e3 * (total - mem):.2f}", f"{1e3 * mem:.2f}", f"{1e3 * total:.2f}")
    Console().print(t)
    if args.json:
        write_json(args.json, {"model": args.model, "input": list(shape), "macs": work.macs, "flops": work.flops,
                                "bytes": work.bytes, "parameters": params, "per_profile": rows}, say=None)
    return 0


# ---------------------------------------------------------------------------------------------- loop

def _configure_loop(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plot", default="docs/results/energy_closed_loop.png", help="PNG to write ('' for none)")
    add_json_option(p, "also write the trace and figures to this JSON file")
    p.add_argument("--seed", type=int, default=0)


def _plot_loop(result: Dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nodes = list(result["trace"]["reports"])
    fig, axes = plt.subplots(len(nodes), 1, figsize=(8, 2.2 * len(nodes)), sharex=True)
    for ax, node in zip(axes, nodes):
        tr = result["trace"]
        ta, a = zip(*_dedupe(tr["allocation"][node]))
        tc, c = zip(*_dedupe(tr["command"][node]))
        tr_, r = zip(*tr["reports"][node])
        ax.step(ta, a, where="post", color="black", label="allocation (budget)")
        ax.fill_between(ta, [x * 0.95 for x in a], [x * 1.05 for x in a], step="post", color="grey", alpha=0.2,
                        label="±5%")
        ax.step(tc, c, where="post", color="tab:orange", ls="--", lw=1, label="command sent (after PI correction)")
        ax.plot(tr_, r, "o-", ms=3, color="tab:blue", label="consumption (node's report)")
        for t_step, _ in result["steps"]:
            ax.axvline(t_step, color="red", lw=0.8, ls=":")
        ax.set_ylabel(f"{node}\nW")
    axes[0].legend(fontsize=7, loc="upper right", ncol=2)
    axes[-1].set_xlabel("simulated time (s); total 12 W -> 6 W at 20.5 s -> 12 W at 40.5 s")
    fig.suptitle("energy_monitor + synthetic_load nodes (inproc backend, simulated clock; energy modelled)", fontsize=9)
    atomic_save_figure(fig, path, dpi=110, fmt="png")


def _dedupe(points):
    out = []
    for t, v in points:
        if not out or out[-1][0] != t:
            out.append((t, v))
    return out


def _run_loop(args: argparse.Namespace) -> int:
    from effdl_ros.bench.energy import closed_loop_scenario
    from effdl_ros.runtime import backend

    backend.select("inproc")
    result = closed_loop_scenario(args.seed)
    from rich.console import Console
    from rich.table import Table

    t = Table(title="step response of the budget loop (inproc backend, simulated clock; goal: settle <= 3 periods "
                    "within 5%, overshoot <= 10%)")
    for col in ("node @ step", "from W", "to W", "settle (periods)", "overshoot %", "goal met"):
        t.add_column(col, justify="left" if col.startswith("node") else "right")
    ok = True
    for key, f in result["figures"].items():
        met = f["settle_periods"] <= 3.0 and f["overshoot"] <= 0.10
        ok &= met
        t.add_row(key, _fmt(f["from_w"]), _fmt(f["to_w"]), _fmt(f["settle_periods"]), _fmt(100 * f["overshoot"]),
                  "yes" if met else "NO")
    Console().print(t)
    if args.plot:
        _plot_loop(result, args.plot)
        print(f"plot: {args.plot}")
    if args.json:
        write_json(args.json, result, say=None)
    return 0 if ok else 1


# ---------------------------------------------------------------------------------------------- bench

def _configure_bench(p: argparse.ArgumentParser) -> None:
    p.add_argument("--items", type=int, default=20000, help="items per variant (default 20000)")
    p.add_argument("--repeats", type=int, default=5, help="repeats; the median is reported (default 5)")
    add_json_option(p, "also write the figures to this JSON file")


def _run_bench(args: argparse.Namespace) -> int:
    from effdl_ros.bench.energy import accountant_overhead

    if args.items <= 0 or args.repeats <= 0:
        raise ConfigError("--items and --repeats must be > 0.")
    n = args.items
    times = accountant_overhead(n, args.repeats)
    base = times["no accounting (baseline loop)"]
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"accountant overhead per item, {n} items x {args.repeats} repeats (median), "
                    f"{platform.processor() or platform.machine()}, python {platform.python_version()}")
    t.add_column("variant")
    t.add_column("us/item", justify="right")
    t.add_column("overhead vs baseline us/item", justify="right")
    rows = []
    for name, sec in times.items():
        per = 1e6 * sec / n
        over = 1e6 * (sec - base) / n
        rows.append({"variant": name, "us_per_item": per, "overhead_us_per_item": over})
        t.add_row(name, f"{per:.2f}", "-" if sec is base else f"{over:.2f}")
    Console().print(t)
    if args.json:
        write_json(args.json, {"items": n, "repeats": args.repeats, "rows": rows, "measured": True}, say=None)
    return 0

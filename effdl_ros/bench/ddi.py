"""`effdl-ros bench ddi`: DDI vs the static network and width-/depth-reduced static networks.

Every configuration runs the same batch-1 engine (BN folded, torch CPU) on the same test items, and
the configurations are interleaved item by item so that CPU contention hits them alike. Accuracy and
executed MACs (counted from what ran) are exact; wall time is measured per item around engine.run
(preprocessing excluded) and summarised by the median, which is robust to other processes' bursts.
"""
from __future__ import annotations

import math
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

from effdl_ros.atomic_io import atomic_save_figure
from effdl_ros.ddi.checkpoint import load_checkpoint
from effdl_ros.ddi.engine import DDIEngine, DDISettings
from effdl_ros.errors import DataError


@dataclass
class BenchOptions:
    tasks: List[str] = field(default_factory=lambda: ["mnist5k", "camvid_patches"])
    models_dir: Path = Path("models")
    fractions: List[float] = field(default_factory=lambda: [1.0, 0.6, 0.45, 0.3])
    confidence: Optional[float] = None
    max_test: int = 2000
    threads: int = 1
    warmup: int = 20
    device: str = "cpu"      # cpu | cuda | cuda:N | auto (effdl_ros.device); a GPU's times are synchronised


def _configs(task: str, opts: BenchOptions):
    """(label, kind, engine, settings) for every configuration of one task."""
    d = opts.models_dir
    ddi_path, static_path = d / f"ddi_{task}.pt", d / f"ddi_{task}_static.pt"
    for p in (ddi_path, static_path):
        if not p.is_file():
            raise DataError(f"{p} is absent; train it with `effdl-ros train ddi` (see models/*.md)")
    static_model, static_meta = load_checkpoint(static_path)
    static = DDIEngine(static_model)
    ddi_model, meta = load_checkpoint(ddi_path)
    ddi = DDIEngine(ddi_model)
    norms = {static_path.name: static_meta, ddi_path.name: meta}
    out = [("static (all layers)", "static", static, DDISettings(), static_path.name)]
    for suffix, label in (("slim", "static width-reduced"), ("shallow", "static depth-reduced")):
        p = d / f"ddi_{task}_{suffix}.pt"
        if p.is_file():
            m, norms[p.name] = load_checkpoint(p)
            c = m.config
            out.append((f"{label} w{list(c.widths)} b{list(c.blocks)}", "static", DDIEngine(m), DDISettings(), p.name))
    full = ddi.max_macs     # compute fraction 1.0 = the DDI model's deepest worst case, as in the node
    for f in opts.fractions:
        ceiling = math.inf if f >= 1.0 else f * full
        out.append((f"DDI budget {f:g}", "ddi", ddi, DDISettings(mac_ceiling=ceiling), ddi_path.name))
        if opts.confidence:
            out.append((f"DDI budget {f:g} + conf {opts.confidence:g}", "ddi", ddi,
                        DDISettings(mac_ceiling=ceiling, confidence=opts.confidence), ddi_path.name))
    return out, norms


def bench_task(task_name: str, opts: BenchOptions) -> Dict:
    from effdl_ros.ddi.data import load_task, normalise
    from effdl_ros.device import move_model, resolve_device, synchronize

    device = resolve_device(opts.device, what="--device")
    configs, norms = _configs(task_name, opts)
    for c in {id(c[2]): c[2] for c in configs}.values():
        move_model(c, device)
    task = load_task(task_name, max_test=opts.max_test)
    ys = task.y_test
    # every model sees the test items normalised with its own training statistics
    inputs = {name: torch.from_numpy(normalise(task.x_test_raw, meta["mean"], meta["std"])).to(device)
              for name, meta in norms.items()}
    for _, _, engine, settings, name in configs:          # warm up every path (allocator, kernels)
        for x in inputs[name][: opts.warmup]:
            engine.run(x, settings)
    rows = [{"config": c[0], "kind": c[1], "model": c[4], "ceiling": c[3].mac_ceiling, "correct": 0,
             "macs": [], "ms": [], "exits": [], "skipped": 0, "blocks": 0, "forced": 0} for c in configs]
    perf = time.perf_counter
    for i, y in enumerate(ys):
        for row, (_, _, engine, settings, name) in zip(rows, configs):
            x = inputs[name][i: i + 1]
            t0 = perf()
            r = engine.run(x, settings)
            synchronize(device)
            row["ms"].append((perf() - t0) * 1e3)
            row["macs"].append(r.macs)
            row["exits"].append(r.exit_index)
            row["blocks"] += r.blocks_run
            row["forced"] += len(r.forced)
            if r.skipped:
                row["skipped"] += 1
            elif int(r.logits.argmax()) == int(y):
                row["correct"] += 1
    base = rows[0]
    base_acc = base["correct"] / len(ys)
    base_macs = statistics.fmean(base["macs"])
    base_ms = statistics.median(base["ms"])
    base_mean_ms = statistics.fmean(base["ms"])
    out_rows = []
    for row in rows:
        acc = row["correct"] / len(ys)
        macs = statistics.fmean(row["macs"])
        ms_med = statistics.median(row["ms"])
        exits = np.bincount(np.asarray(row["exits"]) + 1, minlength=4)
        out_rows.append({
            "config": row["config"], "model": row["model"], "kind": row["kind"],
            "mac_ceiling": None if math.isinf(row["ceiling"]) else int(row["ceiling"]),
            "accuracy": acc, "acc_drop_points": 100 * (base_acc - acc),
            "mean_macs": macs, "max_macs": max(row["macs"]), "mac_reduction": base_macs / macs if macs else None,
            "ceiling_violations": sum(m > row["ceiling"] for m in row["macs"]),
            "median_ms": ms_med, "mean_ms": statistics.fmean(row["ms"]),
            "speedup_median": base_ms / ms_med if ms_med else None,
            "speedup_mean": base_mean_ms / statistics.fmean(row["ms"]),
            "mean_blocks_run": row["blocks"] / len(ys), "mean_blocks_force_skipped": row["forced"] / len(ys),
            "skipped_items": row["skipped"], "skipped_share": row["skipped"] / len(ys), "exit_histogram": {"none": int(exits[0]),
                                                               **{str(k): int(v) for k, v in enumerate(exits[1:])}},
            "goal_met": bool(base_macs / macs >= 5 and 100 * (base_acc - acc) <= 1 + 1e-9 and base_ms / ms_med >= 3)
            if macs else False,
        })
    return {"task": task_name, "items": int(len(ys)), "test_split": "val/" if task_name == "camvid_patches"
            else "stratified 20% (seed 0)", "rows": out_rows}


def run_benchmark(opts: BenchOptions) -> Dict:
    torch.set_num_threads(opts.threads)
    results = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
               "torch": torch.__version__, "threads": opts.threads, "batch": 1,
               "load_average_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
               "tasks": []}
    for t in opts.tasks:
        results["tasks"].append(bench_task(t, opts))
    results["load_average_at_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return results


def format_table(results: Dict) -> str:
    lines = [f"batch 1, {results['threads']} CPU thread(s), torch {results['torch']}, "
             f"load average {results['load_average_at_start']:.1f} -> {results['load_average_at_end']:.1f}"]
    for t in results["tasks"]:
        lines.append("")
        lines.append(f"{t['task']}: {t['items']} test items ({t['test_split']})")
        lines.append(f"{'configuration':<46} {'acc %':>7} {'drop':>6} {'MACs/item':>11} {'xMACs':>6} "
                     f"{'max MACs':>10} {'ceiling':>10} {'viol':>4} {'ms med':>7} {'x time':>6} "
                     f"{'ms mean':>7} {'x mean':>6}  goal")
        for r in t["rows"]:
            ceiling = f"{r['mac_ceiling']:,}" if r["mac_ceiling"] is not None else "-"
            red = f"{r['mac_reduction']:6.2f}" if r["mac_reduction"] is not None else f"{'-':>6}"
            spd = f"{r['speedup_median']:6.2f}" if r["speedup_median"] is not None else f"{'-':>6}"
            lines.append(f"{r['config']:<46} {100 * r['accuracy']:7.2f} {r['acc_drop_points']:6.2f} "
                         f"{r['mean_macs']:11,.0f} {red} {r['max_macs']:10,} {ceiling:>10} "
                         f"{r['ceiling_violations']:4d} {r['median_ms']:7.3f} {spd} "
                         f"{r['mean_ms']:7.3f} {r['speedup_mean']:6.2f}  "
                         f"{'yes' if r['goal_met'] else 'no'}")
    lines.append("")
    lines.append("goal = >= 5x fewer executed MACs, <= 1 point accuracy drop and >= 3x lower median wall time "
                 "than the static network (first row), all measured in this run; 'x mean' = ratio of mean times")
    return "\n".join(lines)


def plot(results: Dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = results["tasks"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for ax, t in zip(axes[0], tasks):
        # budgets below the cheapest exit classify nothing; they are in the table, not on the plot
        ddi = sorted((r for r in t["rows"] if r["kind"] == "ddi" and r["mean_macs"] > 0), key=lambda r: r["mean_macs"])
        conf = [r for r in ddi if "conf" in r["config"]]
        plain = [r for r in ddi if "conf" not in r["config"]]
        for rows, style, label in ((plain, "o-", "DDI (budgets)"), (conf, "s--", "DDI + confidence halting")):
            if rows:
                ax.plot([r["mean_macs"] / 1e6 for r in rows], [100 * r["accuracy"] for r in rows], style, label=label)
        for r in t["rows"]:
            if r["kind"] == "static":
                ax.plot(r["mean_macs"] / 1e6, 100 * r["accuracy"], "^", label=r["config"])
        ax.set_xlabel("executed MMACs per item (measured count)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{t['task']} ({t['items']} items)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    atomic_save_figure(fig, path, dpi=120)

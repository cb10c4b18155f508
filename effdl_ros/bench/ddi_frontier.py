"""DDI's accuracy-vs-MACs curve against the frontier of a family of static nets (issue 21).

A dynamic network is only worth its gates if, at some budget, it beats every static network that
costs no more. The family (several widths and depths, `effdl-ros train ddi --static --no-exits`, the
recipe of the shipped static baselines, several seeds each) runs on the same test items through the
same batch-1 engine as `bench ddi`, so executed MACs are counted the same way. The frontier at a
cost m is the best mean accuracy of any static architecture whose MACs are <= m (a step function;
the linear interpolation between frontier points is reported too, a stricter bar).
"""
from __future__ import annotations

import re
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

from effdl_ros.atomic_io import atomic_save_figure
from effdl_ros.errors import DataError

_SEED = re.compile(r"_s(\d+)$")


def family_checkpoints(task: str, family_dir: Path, models_dir: Path) -> Dict[str, List[Path]]:
    """Architecture label -> checkpoints (one per seed): the family folder plus the shipped statics."""
    groups: Dict[str, List[Path]] = defaultdict(list)
    for p in sorted(Path(family_dir).glob(f"ddi_{task}_*.pt")):
        groups[_SEED.sub("", p.stem)].append(p)
    for suffix in ("static", "slim", "shallow"):
        p = Path(models_dir) / f"ddi_{task}_{suffix}.pt"
        if p.is_file():
            groups[p.stem].append(p)
    return dict(groups)


def evaluate_static(paths: List[Path], task_data) -> dict:
    """Accuracy and executed MACs per item (engine, batch 1) for each seed's checkpoint."""
    from effdl_ros.ddi.checkpoint import load_checkpoint
    from effdl_ros.ddi.data import normalise
    from effdl_ros.ddi.engine import DDIEngine, DDISettings

    accs, macs, widths, blocks = [], [], None, None
    for p in paths:
        model, meta = load_checkpoint(p)
        if model.config.gated:
            raise DataError(f"{p} is a gated DDI net, not a static family member")
        engine = DDIEngine(model)
        x = torch.from_numpy(normalise(task_data.x_test_raw, meta["mean"], meta["std"]))
        correct, spent = 0, []
        for i, y in enumerate(task_data.y_test):
            r = engine.run(x[i:i + 1], DDISettings())
            spent.append(r.macs)
            correct += int(int(r.logits.argmax()) == int(y))
        accs.append(correct / len(task_data.y_test))
        macs.append(statistics.fmean(spent))
        widths, blocks = list(model.config.widths), list(model.config.blocks)
    return {"widths": widths, "blocks": blocks, "seeds": len(paths), "accuracy": statistics.fmean(accs),
            "accuracy_std": statistics.stdev(accs) if len(accs) > 1 else 0.0, "per_seed_accuracy": accs,
            "mean_macs": statistics.fmean(macs), "checkpoints": [str(p) for p in paths]}


def frontier_at(points: List[dict], macs: float, *, interpolate: bool = False) -> Optional[dict]:
    """Best static accuracy at cost <= macs (step), or the line between the two frontier points around it."""
    pts = sorted(points, key=lambda p: p["mean_macs"])
    front, best = [], -1.0
    for p in pts:                       # Pareto frontier: cheaper-first, strictly better accuracy
        if p["accuracy"] > best:
            front.append(p)
            best = p["accuracy"]
    below = [p for p in front if p["mean_macs"] <= macs]
    if not below:
        return None
    step = below[-1]
    if not interpolate:
        return {"accuracy": step["accuracy"], "accuracy_std": step["accuracy_std"], "label": step["label"]}
    above = [p for p in front if p["mean_macs"] > macs]
    if not above:
        return {"accuracy": step["accuracy"], "accuracy_std": step["accuracy_std"], "label": step["label"]}
    nxt = above[0]
    t = (macs - step["mean_macs"]) / (nxt["mean_macs"] - step["mean_macs"])
    return {"accuracy": step["accuracy"] + t * (nxt["accuracy"] - step["accuracy"]),
            "accuracy_std": max(step["accuracy_std"], nxt["accuracy_std"]),
            "label": f"{step['label']} .. {nxt['label']}"}


def compare(task_result: dict, family_dir: Path, models_dir: Path, max_test: int) -> dict:
    """Add the static family and, per DDI budget, the frontier and whether DDI is above it."""
    from effdl_ros.ddi.data import load_task

    task = task_result["task"]
    groups = family_checkpoints(task, family_dir, models_dir)
    data = load_task(task, max_test=max_test)
    if len(data.y_test) != task_result["items"]:
        raise DataError(f"{task}: the family saw {len(data.y_test)} items, the bench {task_result['items']}")
    family = []
    for label, paths in groups.items():
        row = evaluate_static(paths, data)
        row["label"] = label
        family.append(row)
    out = []
    for r in task_result["rows"]:
        if r["kind"] != "ddi" or not r["mean_macs"]:
            continue
        step = frontier_at(family, r["mean_macs"])
        line = frontier_at(family, r["mean_macs"], interpolate=True)
        entry = {"config": r["config"], "mean_macs": r["mean_macs"], "accuracy": r["accuracy"],
                 "frontier_step": step, "frontier_interpolated": line}
        if step is not None:
            margin = 100 * (r["accuracy"] - line["accuracy"])
            entry["margin_points_vs_interpolated"] = margin
            entry["margin_points_vs_step"] = 100 * (r["accuracy"] - step["accuracy"])
            spread = 100 * line["accuracy_std"]
            entry["above_frontier"] = bool(margin > 0)
            entry["above_beyond_seed_spread"] = bool(margin > spread)
        else:
            entry["above_frontier"] = True      # no static net of the family is this cheap
            entry["above_beyond_seed_spread"] = True
            entry["note"] = "cheaper than every static family member"
        out.append(entry)
    return {"family": sorted(family, key=lambda p: p["mean_macs"]), "ddi_vs_frontier": out}


def format_frontier(task: str, fr: dict) -> str:
    lines = [f"{task}: static family (mean over seeds, same items, same engine)",
             f"{'static net':44} {'seeds':>5} {'acc %':>14} {'MMACs':>7}"]
    for p in fr["family"]:
        lines.append(f"{p['label'][:44]:44} {p['seeds']:5d} {100 * p['accuracy']:7.2f} ± "
                     f"{100 * p['accuracy_std']:4.2f} {p['mean_macs'] / 1e6:7.3f}")
    lines.append(f"{'DDI budget':30} {'MMACs':>7} {'acc %':>7} {'frontier %':>10} {'margin pt':>9}  above?")
    for e in fr["ddi_vs_frontier"]:
        f = e["frontier_interpolated"]
        fa = f"{100 * f['accuracy']:10.2f}" if f else f"{'-':>10}"
        mg = f"{e['margin_points_vs_interpolated']:+9.2f}" if f else f"{'-':>9}"
        flag = ("yes, beyond seed spread" if e["above_beyond_seed_spread"] else "yes") if e["above_frontier"] else "no"
        lines.append(f"{e['config'][:30]:30} {e['mean_macs'] / 1e6:7.3f} {100 * e['accuracy']:7.2f} {fa} {mg}  {flag}")
    above = [e["config"] for e in fr["ddi_vs_frontier"] if e["above_frontier"]]
    lines.append(f"DDI above the static frontier at: {', '.join(above) if above else 'no budget'}")
    return "\n".join(lines)


def plot_frontier(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in results["tasks"] if "frontier" in t]
    if not tasks:
        return
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for ax, t in zip(axes[0], tasks):
        fam = t["frontier"]["family"]
        ax.errorbar([p["mean_macs"] / 1e6 for p in fam], [100 * p["accuracy"] for p in fam],
                    yerr=[100 * p["accuracy_std"] for p in fam], fmt="^", color="tab:gray",
                    label="static family (mean ± std over seeds)")
        front, best = [], -1.0
        for p in fam:
            if p["accuracy"] > best:
                front.append(p)
                best = p["accuracy"]
        ax.plot([p["mean_macs"] / 1e6 for p in front], [100 * p["accuracy"] for p in front], "-",
                color="tab:gray", alpha=0.6, label="static frontier")
        ddi = sorted(t["frontier"]["ddi_vs_frontier"], key=lambda e: e["mean_macs"])
        ax.plot([e["mean_macs"] / 1e6 for e in ddi], [100 * e["accuracy"] for e in ddi], "o-",
                color="tab:blue", label="DDI over budgets")
        ax.set_xscale("log")
        ax.set_xlabel("executed MMACs per item (measured count, log)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{t['task']} ({t['items']} items)")
        lo = min(min(100 * e["accuracy"] for e in ddi), min(100 * p["accuracy"] for p in fam))
        ax.set_ylim(max(lo - 2, np.floor(lo) - 2), 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    atomic_save_figure(fig, path, dpi=120)

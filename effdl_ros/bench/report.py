"""Replay / demo report: metrics JSON, a Markdown summary and PNG plots, from per-frame records.

Results are plain files (as pytracking keeps them): `frames.jsonl` holds one record per frame, and
`metrics.json`, `summary.md` and the plots are computed from those records only, so a report can be
re-made from a run without running it again (`write_report(records_from_jsonl(...), ...)`).

A record is a dict; every key but `index` is optional:

    index            frame number (0-based)
    t_s              wall time since the start of the run (s)
    stamp_ns         the frame's own time stamp (ns)
    latency_ms       {node: ms spent on this frame}
    energy_j         {node: J spent on this frame}
    energy_source    {node: "measured" | "modelled"}
    power_w          {node: average power over the last report (W)}
    budget_w         {node: W allowed} (the key "total" = the monitor's total budget)
    box / gt_box     tracker output (None = no output) and ground truth, x, y, w, h (px); tracking
                     metrics are computed over the records that have both keys
    seg_confusion    K x K confusion matrix (rows = truth, columns = prediction) of this frame
    seg_classes      class names (once is enough)
    extra            anything else (kept in frames.jsonl)
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from effdl_ros.atomic_io import atomic_save_figure, atomic_write_bytes
from effdl_ros.errors import DataError

PLOTS = ("energy_budget.png", "latency.png", "success.png", "segmentation_iou.png")


def _stats(values: Sequence[float]) -> Dict[str, float]:
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=np.float64)
    if v.size == 0:
        return {"count": 0}
    return {"count": int(v.size), "mean": float(v.mean()), "p50": float(np.percentile(v, 50)),
            "p95": float(np.percentile(v, 95)), "min": float(v.min()), "max": float(v.max()),
            "total": float(v.sum())}


def _nodes(records: Sequence[dict], key: str) -> List[str]:
    names: List[str] = []
    for r in records:
        for n in (r.get(key) or {}):
            if n not in names:
                names.append(n)
    return names


def compute_metrics(records: Sequence[dict], *, meta: Optional[dict] = None) -> Dict[str, object]:
    """Frame count, rate, per-node latency and energy, budgets, tracking and segmentation scores."""
    if not records:
        raise DataError("the run produced no frame records, so there is nothing to report")
    times = [r["t_s"] for r in records if r.get("t_s") is not None]
    duration = (max(times) - min(times)) if len(times) > 1 else 0.0
    out: Dict[str, object] = {"frames": len(records), "duration_s": duration,
                              "rate_hz": (len(records) - 1) / duration if duration > 0 else None}
    if meta:
        out["run"] = dict(meta)
    out["latency_ms"] = {n: _stats([(r.get("latency_ms") or {}).get(n) for r in records
                                    if n in (r.get("latency_ms") or {})])
                         for n in _nodes(records, "latency_ms")}
    energy = {}
    for n in _nodes(records, "energy_j"):
        vals = [(r.get("energy_j") or {}).get(n) for r in records if n in (r.get("energy_j") or {})]
        sources = sorted({(r.get("energy_source") or {}).get(n, "unknown") for r in records
                          if n in (r.get("energy_j") or {})})
        s = _stats(vals)
        energy[n] = {"total_j": s.get("total", 0.0), "per_frame_j": s.get("mean"),
                     "source": "+".join(sources)}
    out["energy"] = energy
    if energy:
        out["energy_total_j"] = float(sum(e["total_j"] for e in energy.values()))
    out["budget_w"] = {n: _stats([(r.get("budget_w") or {}).get(n) for r in records
                                  if n in (r.get("budget_w") or {})]) for n in _nodes(records, "budget_w")}
    out["power_w"] = {n: _stats([(r.get("power_w") or {}).get(n) for r in records
                                 if n in (r.get("power_w") or {})]) for n in _nodes(records, "power_w")}
    track = tracking_metrics(records)
    if track:
        out["tracking"] = track
    seg = segmentation_metrics(records)
    if seg:
        out["segmentation"] = seg
    return out


def tracking_metrics(records: Sequence[dict]) -> Optional[Dict[str, object]]:
    """OTB success curve / AUC and precision@20 over frames that have both a box and ground truth."""
    from effdl_ros.tracking import metrics as tm

    # Only where a tracker ran: records carry "box" (None = no output for that frame).
    pairs = [(r.get("box"), r["gt_box"]) for r in records if r.get("gt_box") is not None and "box" in r]
    if not pairs:
        return None
    pred = np.array([p if p is not None else [np.nan] * 4 for p, _ in pairs], dtype=np.float64)
    gt = np.array([g for _, g in pairs], dtype=np.float64)
    curve = tm.success_curve(pred, gt)
    return {"frames_with_gt": len(pairs), "success_auc": float(curve.mean()),
            "precision_20px": tm.precision(pred, gt),
            "mean_iou": float(np.nan_to_num(tm.iou(np.nan_to_num(pred, nan=0.0), gt)).mean()),
            "thresholds": [float(t) for t in tm.THRESHOLDS], "success_curve": [float(c) for c in curve]}


def segmentation_metrics(records: Sequence[dict]) -> Optional[Dict[str, object]]:
    """Per-class IoU and mIoU from the summed confusion matrices (classes never seen are left out)."""
    mats = [np.asarray(r["seg_confusion"], dtype=np.int64) for r in records if r.get("seg_confusion") is not None]
    if not mats:
        return None
    total = np.sum(mats, axis=0)
    names = next((r["seg_classes"] for r in records if r.get("seg_classes")), None)
    names = list(names) if names else [str(i) for i in range(total.shape[0])]
    tp = np.diag(total).astype(np.float64)
    union = total.sum(0) + total.sum(1) - tp
    per_class = {names[i]: float(tp[i] / union[i]) for i in range(len(tp)) if union[i] > 0}
    per_frame = []
    for m in mats:
        d = np.diag(m).astype(np.float64)
        u = m.sum(0) + m.sum(1) - d
        per_frame.append(float((d[u > 0] / u[u > 0]).mean()) if (u > 0).any() else float("nan"))
    return {"frames_with_gt": len(mats), "miou": float(np.mean(list(per_class.values()))) if per_class else 0.0,
            "pixel_accuracy": float(tp.sum() / max(total.sum(), 1)), "per_class_iou": per_class,
            "per_frame_miou": per_frame}


# ----------------------------------------------------------------------------------------------------


def _umask_mode() -> int:
    """Report files get the mode a plain open() would give (0666 minus the umask), as before."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _atomic_write(path: Path, data: bytes) -> None:
    atomic_write_bytes(path, data, mode=_umask_mode())


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        return None if math.isnan(float(x)) or math.isinf(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def records_from_jsonl(path: Path) -> List[dict]:
    """Read frames.jsonl back; a malformed line is one DataError naming the file and line."""
    path = Path(path)
    out = []
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise DataError(f"cannot read frame records {path}: {err.strerror or err}") from None
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}, line {i}: not a JSON record ({err.msg})") from None
        if not isinstance(rec, dict) or "index" not in rec:
            raise DataError(f"{path}, line {i}: a frame record needs an 'index' field")
        out.append(rec)
    return out


def write_report(records: Sequence[dict], out_dir: Path, *, title: str = "effdl_ros replay",
                 meta: Optional[dict] = None, events: Sequence[dict] = (), plots: bool = True
                 ) -> Dict[str, object]:
    """Write frames.jsonl, metrics.json, summary.md and the plots into out_dir; returns the metrics.

    events: [{"t_s": ..., "text": ...}] marked on the time plots (e.g. "total budget lowered").
    """
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create report folder {out_dir}: {err.strerror or err}") from None
    metrics = compute_metrics(records, meta=meta)
    if events:
        metrics["events"] = _jsonable(list(events))
    made = make_plots(records, out_dir, metrics, events) if plots else []
    metrics["plots"] = made
    _atomic_write(out_dir / "frames.jsonl",
                  "".join(json.dumps(_jsonable(r)) + "\n" for r in records).encode())
    _atomic_write(out_dir / "metrics.json", json.dumps(_jsonable(metrics), indent=1).encode())
    _atomic_write(out_dir / "summary.md", markdown(metrics, title=title).encode())
    return metrics


def _fmt(v, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def markdown(metrics: Dict[str, object], *, title: str) -> str:
    """The human summary of a report (figures from metrics.json, nothing else)."""
    lines = [f"# {title}", ""]
    run = metrics.get("run") or {}
    for k, v in run.items():
        lines.append(f"- {k}: {v}")
    lines.append(f"- frames: {metrics['frames']}, duration {_fmt(metrics['duration_s'])} s, "
                 f"rate {_fmt(metrics.get('rate_hz'))} Hz")
    lines.append("")
    if metrics.get("latency_ms"):
        lines += ["## Per-node latency (ms, measured wall time per frame)", "",
                  "| node | frames | mean | p50 | p95 | max |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for n, s in metrics["latency_ms"].items():
            lines.append(f"| {n} | {s.get('count', 0)} | {_fmt(s.get('mean'))} | {_fmt(s.get('p50'))} | "
                         f"{_fmt(s.get('p95'))} | {_fmt(s.get('max'))} |")
        lines.append("")
    if metrics.get("energy"):
        lines += ["## Energy", "", "| node | total (J) | per frame (mJ) | source |", "| --- | ---: | ---: | --- |"]
        for n, e in metrics["energy"].items():
            per = e.get("per_frame_j")
            lines.append(f"| {n} | {_fmt(e['total_j'], 3)} | {_fmt(per * 1000 if per is not None else None)} | "
                         f"{e['source']} |")
        lines += ["", f"Total: {_fmt(metrics.get('energy_total_j'), 3)} J.", ""]
    if metrics.get("budget_w"):
        lines += ["## Budgets (W)", "", "| node | mean | min..max |", "| --- | ---: | --- |"]
        for n, s in metrics["budget_w"].items():
            lines.append(f"| {n} | {_fmt(s.get('mean'))} | {_fmt(s.get('min'))}..{_fmt(s.get('max'))} |")
        lines.append("")
    t = metrics.get("tracking")
    if t:
        lines += ["## Tracking (OTB one-pass evaluation)", "",
                  f"- frames with ground truth: {t['frames_with_gt']}",
                  f"- success AUC: {_fmt(t['success_auc'], 3)}",
                  f"- precision at 20 px: {_fmt(t['precision_20px'], 3)}",
                  f"- mean IoU: {_fmt(t['mean_iou'], 3)}", ""]
    s = metrics.get("segmentation")
    if s:
        lines += ["## Segmentation", "", f"- frames with ground truth: {s['frames_with_gt']}",
                  f"- mIoU: {_fmt(s['miou'], 3)}, pixel accuracy {_fmt(s['pixel_accuracy'], 3)}", "",
                  "| class | IoU |", "| --- | ---: |"]
        lines += [f"| {c} | {_fmt(v, 3)} |" for c, v in s["per_class_iou"].items()]
        lines.append("")
    for e in metrics.get("events") or []:
        lines.append(f"- event at {_fmt(e.get('t_s'))} s: {e.get('text')}")
    if metrics.get("plots"):
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in metrics["plots"]]
    return "\n".join(lines).rstrip() + "\n"


def make_plots(records: Sequence[dict], out_dir: Path, metrics: Dict[str, object],
               events: Sequence[dict] = ()) -> List[str]:
    """PNG plots; only those whose data exist. Returns the file names written."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    made: List[str] = []
    xs = np.array([r.get("t_s", r["index"]) if r.get("t_s") is not None else r["index"] for r in records], float)
    xlabel = "time (s)" if any(r.get("t_s") is not None for r in records) else "frame"

    def save(fig, name: str) -> None:
        atomic_save_figure(fig, out_dir / name, dpi=90, fmt="png", mode=_umask_mode())
        made.append(name)

    def mark(ax) -> None:
        for e in events:
            if e.get("t_s") is not None:
                ax.axvline(float(e["t_s"]), color="grey", linestyle=":", linewidth=1)
                ax.annotate(str(e.get("text", "")), (float(e["t_s"]), 1.0), xycoords=("data", "axes fraction"),
                            fontsize=7, rotation=90, va="top", ha="right", color="grey")

    power_nodes, budget_nodes = _nodes(records, "power_w"), _nodes(records, "budget_w")
    energy_nodes = _nodes(records, "energy_j")
    if power_nodes or budget_nodes or energy_nodes:
        fig, axes = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True)
        ax = axes[0]
        for n in power_nodes:
            ax.plot(xs, [(r.get("power_w") or {}).get(n, np.nan) for r in records], label=f"{n} power",
                    drawstyle="steps-post")
        for n in budget_nodes:
            ax.plot(xs, [(r.get("budget_w") or {}).get(n, np.nan) for r in records], linestyle="--",
                    label=f"{n} budget", drawstyle="steps-post")
        ax.set_ylabel("W")
        ax.set_title("power and budget over time")
        mark(ax)
        if power_nodes or budget_nodes:
            ax.legend(fontsize=7, ncol=2)
        ax = axes[1]
        for n in energy_nodes:
            cum = np.cumsum([(r.get("energy_j") or {}).get(n, 0.0) or 0.0 for r in records])
            ax.plot(xs, cum, label=n)
        ax.set_ylabel("cumulative energy (J)")
        ax.set_xlabel(xlabel)
        mark(ax)
        if energy_nodes:
            ax.legend(fontsize=7, ncol=2)
        save(fig, "energy_budget.png")
    lat_nodes = _nodes(records, "latency_ms")
    if lat_nodes:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [3, 1]})
        for n in lat_nodes:
            axes[0].plot(xs, [(r.get("latency_ms") or {}).get(n, np.nan) for r in records], label=n, linewidth=1)
        axes[0].set_xlabel(xlabel)
        axes[0].set_ylabel("ms per frame")
        axes[0].set_title("per-node latency")
        mark(axes[0])
        axes[0].legend(fontsize=7)
        data = [[v for v in ((r.get("latency_ms") or {}).get(n) for r in records) if v is not None]
                for n in lat_nodes]
        axes[1].boxplot(data)
        axes[1].set_xticks(range(1, len(lat_nodes) + 1), lat_nodes, rotation=45, fontsize=7)
        axes[1].set_ylabel("ms")
        save(fig, "latency.png")
    t = metrics.get("tracking")
    if t:
        fig, ax = plt.subplots(figsize=(4.5, 4))
        ax.plot(t["thresholds"], t["success_curve"], label=f"AUC {t['success_auc']:.3f}")
        ax.set_xlabel("overlap threshold (IoU)")
        ax.set_ylabel("success rate")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_title("success plot (OTB OPE)")
        ax.legend()
        save(fig, "success.png")
    s = metrics.get("segmentation")
    if s:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        names = list(s["per_class_iou"])
        axes[0].bar(range(len(names)), [s["per_class_iou"][c] for c in names])
        axes[0].set_xticks(range(len(names)), names, rotation=60, fontsize=7)
        axes[0].set_ylabel("IoU")
        axes[0].set_title(f"per-class IoU (mIoU {s['miou']:.3f})")
        fxs = [r.get("t_s", r["index"]) for r in records if r.get("seg_confusion") is not None]
        axes[1].plot(fxs, s["per_frame_miou"])
        axes[1].set_xlabel(xlabel)
        axes[1].set_ylabel("frame mIoU")
        save(fig, "segmentation_iou.png")
    return made


def write_records_jsonl(records: Iterable[dict], path: Path) -> None:
    _atomic_write(Path(path), "".join(json.dumps(_jsonable(r)) + "\n" for r in records).encode())

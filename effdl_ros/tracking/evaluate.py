"""OTB one-pass evaluation of several trackers on the same frames in the same run.

Every tracker starts from the first ground-truth box and is never re-initialised (OPE). FPS counts
tracking only: each frame is decoded (and converted to RGB) before its clock starts; init + update
calls are timed with perf_counter. Results are plain JSON (pytracking's habit: running and analysis apart).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence as Seq

import numpy as np

from effdl_ros.atomic_io import atomic_save_figure
from effdl_ros.data.sequences import Sequence
from effdl_ros.errors import DataError
from effdl_ros.tracking import metrics


@dataclass
class RunResult:
    boxes: np.ndarray        # [N, 4] x,y,w,h (NaN where the tracker gave none)
    seconds: float           # tracking time (init + updates)
    frames: int


def read_rgb(path: Path) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DataError(f"cannot decode frame {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def run_sequence(tracker, seq: Sequence, frames: Optional[List[np.ndarray]] = None) -> RunResult:
    """One-pass run; frames may be given pre-decoded (shared by every tracker of the run)."""
    n = len(seq)
    out = np.full((n, 4), np.nan)
    total = 0.0
    for i in range(n):
        image = frames[i] if frames is not None else read_rgb(seq.frames[i])
        t0 = time.perf_counter()
        if i == 0:
            tracker.init(image, seq.boxes[0])
            out[0] = seq.boxes[0]
        else:
            res = tracker.update(image)
            out[i] = res.box
        total += time.perf_counter() - t0
    return RunResult(out, total, n)


def score(run: RunResult, seq: Sequence) -> Dict:
    return {"auc": metrics.success_auc(run.boxes, seq.boxes),
            "precision20": metrics.precision(run.boxes, seq.boxes, 20.0),
            "fps": run.frames / run.seconds if run.seconds > 0 else float("inf"),
            "frames": run.frames,
            "success_curve": metrics.success_curve(run.boxes, seq.boxes).tolist()}


def evaluate(sequences: Seq[Sequence], factories: Dict[str, Callable[[], object]],
             progress: Optional[Callable[[str, str], None]] = None, keep_boxes: bool = False) -> Dict:
    """{"trackers": {name: {"sequences": {seq: {...}}, "mean_auc", "mean_precision20", "mean_fps"}}}."""
    result = {"trackers": {name: {"sequences": {}} for name in factories}}
    for seq in sequences:
        frames = [read_rgb(p) for p in seq.frames] if len(seq) <= 2000 else None
        for name, make in factories.items():
            if progress:
                progress(name, seq.name)
            run = run_sequence(make(), seq, frames)
            entry = score(run, seq)
            if keep_boxes:
                entry["boxes"] = np.round(run.boxes, 2).tolist()
            result["trackers"][name]["sequences"][seq.name] = entry
    for name, tr in result["trackers"].items():
        seqs = list(tr["sequences"].values())
        tr["mean_auc"] = float(np.mean([s["auc"] for s in seqs]))
        tr["mean_precision20"] = float(np.mean([s["precision20"] for s in seqs]))
        tr["mean_fps"] = float(np.mean([s["fps"] for s in seqs]))
    return result


def success_plot(result: Dict, out: Path, title: str = "OTB success plot (one-pass)") -> None:
    """Success rate vs IoU threshold, mean over sequences, AUC in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    rows = sorted(result["trackers"].items(), key=lambda kv: -kv[1]["mean_auc"])
    for name, tr in rows:
        curve = np.mean([s["success_curve"] for s in tr["sequences"].values()], axis=0)
        ax.plot(metrics.THRESHOLDS, curve, label=f"{name} [{tr['mean_auc']:.3f}]")
    ax.set_xlabel("overlap threshold (IoU)")
    ax.set_ylabel("success rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    atomic_save_figure(fig, out)

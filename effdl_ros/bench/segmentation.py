"""Evaluation on real labelled frames, and the adaptation benchmark's segmentation rows.

Every model is evaluated the same way: the frame is resized to the model's input size, the class
scores are upsampled bilinearly to the label's full resolution (CamVid: 360x480), and the confusion
matrix ignores class 11. ms_per_frame is the median wall time per frame of preprocessing + forward +
upsampling + argmax on this process's device and threads (measured, not modelled; the first frame is a
warm-up and not timed); disk reading is excluded.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from effdl_ros.errors import DataError
from effdl_ros.segmentation.inference import predict


def evaluate_pairs(model, config: Dict, pairs: Sequence[Tuple[Path, Path]], *, device: str = "cpu",
                   scale: float = 1.0) -> Dict[str, object]:
    """mIoU, per-class IoU, pixel accuracy and ms per frame over (image, mask) pairs."""
    from effdl_ros.data.camvid import CLASSES, IGNORE_INDEX, load_pair
    from effdl_ros.segmentation.metrics import confusion_matrix, scores

    names = list(config.get("classes", CLASSES))
    conf = np.zeros((len(names), len(names)), np.int64)
    times = []
    for k, (ip, mp) in enumerate(pairs):
        rgb, mask = load_pair(ip, mp)
        t0 = time.perf_counter()
        pred = predict(model, config, rgb, scale=scale, device=device)
        if k > 0 or len(pairs) == 1:  # the first frame warms up the allocator and kernels
            times.append(time.perf_counter() - t0)
        conf += confusion_matrix(pred, mask, len(names), IGNORE_INDEX)
    out = scores(conf, names)
    # The median resists other processes' bursts on a shared CPU; the mean is kept beside it.
    out["ms_per_frame"] = 1000.0 * float(np.median(times))
    out["ms_per_frame_mean"] = 1000.0 * float(np.mean(times))
    out["frames"] = len(pairs)
    return out


def folder_pairs(images: Path, labels: Path) -> List[Tuple[Path, Path]]:
    """Pair every image in `images` with the same-stem .png mask in `labels`."""
    images, labels = Path(images), Path(labels)
    if not images.is_dir():
        raise DataError(f"image folder {images} does not exist")
    if not labels.is_dir():
        raise DataError(f"label folder {labels} does not exist")
    files = sorted(p for p in images.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise DataError(f"no .jpg/.png images in {images}")
    out = []
    for f in files:
        m = labels / (f.stem + ".png")
        if not m.is_file():
            raise DataError(f"label {m} for image {f.name} is missing")
        out.append((f, m))
    return out


def _rows_spec(sources: Sequence[str]) -> List[Tuple[str, str]]:
    from effdl_ros.segmentation.train import checkpoint_names

    names = checkpoint_names(sources)
    rows = [(f"source-only: {s}", names[f"source:{s}"]) for s in sources]
    rows.append(("source-only: all sources merged", names["source:merged"]))
    rows += [(f"single-source adaptation: {s} (CycleGAN+DSC+feature alignment)", names[f"single:{s}"])
             for s in sources]
    rows.append(("MADAN multi-source (" + "+".join(sources) + ")", names["madan"]))
    rows.append(("oracle: trained on the target's labels", names["oracle"]))
    return rows


#: Frames a benchmark reports on: CamVid val (daylight, sequence 0016E5), or the dusk sequence's last
#: 22 frames in time (its first 40 are the adaptation frames of target camvid:0001TP).
EVAL_SETS = ("val", "dusk-report")


def eval_pairs(camvid_root, eval_on: str = "val") -> List[Tuple[Path, Path]]:
    from effdl_ros.data.camvid import dusk_split, pairs

    if eval_on == "val":
        return pairs(Path(camvid_root), "val")
    if eval_on == "dusk-report":
        return dusk_split(Path(camvid_root))[1]
    raise DataError(f"unknown evaluation set {eval_on!r}; choose from {', '.join(EVAL_SETS)}")


def run_segmentation_benchmark(models_dir, camvid_root, max_frames: Optional[int] = None,
                               sources: Sequence[str] = ("sunny", "dusk"), eval_on: str = "val") -> List[Dict]:
    """One run, the same CamVid val frames for every model; rows as the adaptation bench prints them.

    Each row: {"method", "miou", "pixel_acc", "ms_per_frame", "checkpoint", "per_class", "role"}.
    The best single-source adaptation row (highest val mIoU, as the papers report the best single
    source) gets role "best_single"; MADAN's role is "madan", the oracle's "oracle", source-only rows
    "source_only" (the merged one "source_merged"). A missing checkpoint raises DataError.
    """
    import torch

    from effdl_ros.segmentation.network import load_checkpoint

    models_dir, camvid_root = Path(models_dir), Path(camvid_root)
    val = eval_pairs(camvid_root, eval_on)
    if max_frames:
        val = val[: int(max_frames)]
    rows = []
    for method, fname in _rows_spec(sources):
        path = models_dir / fname
        model, cfg = load_checkpoint(path)
        r = evaluate_pairs(model, cfg, val)
        role = ("source_merged" if "merged" in method else "source_only" if method.startswith("source-only")
                else "single" if method.startswith("single") else "madan" if method.startswith("MADAN")
                else "oracle")
        rows.append({"method": method, "miou": r["miou"], "pixel_acc": r["pixel_acc"],
                     "ms_per_frame": r["ms_per_frame"], "checkpoint": str(path), "per_class": r["per_class"],
                     "role": role, "frames": r["frames"], "threads": torch.get_num_threads()})
    singles = [r for r in rows if r["role"] == "single"]
    if singles:
        max(singles, key=lambda r: r["miou"])["role"] = "best_single"
    return rows


def summary(rows: Iterable[Dict]) -> Dict[str, float]:
    """The two goals: MADAN - best single (mIoU points) and the share of the source->oracle gap closed.

    The source-only reference is the best source-only row (the strongest baseline without adaptation).
    """
    rows = list(rows)
    get = lambda role: [r for r in rows if r["role"] == role]  # noqa: E731
    madan, best, oracle = get("madan"), get("best_single"), get("oracle")
    src = [r for r in rows if r["role"] in ("source_only", "source_merged")]
    out: Dict[str, float] = {}
    if madan and best:
        out["madan_minus_best_single_points"] = 100.0 * (madan[0]["miou"] - best[0]["miou"])
    merged = get("source_merged")
    if madan and merged:
        out["madan_minus_merged_points"] = 100.0 * (madan[0]["miou"] - merged[0]["miou"])
    if madan and oracle and src:
        s = max(r["miou"] for r in src)
        gap = oracle[0]["miou"] - s
        out["gap_closed"] = (madan[0]["miou"] - s) / gap if gap > 0 else float("nan")
        out["best_source_only_miou"] = s
    return out


def qualitative_figure(models_dir, camvid_root, out_png, *, frame_indices: Sequence[int] = (0, 40, 80),
                       sources: Sequence[str] = ("sunny", "dusk")) -> Path:
    """PNG: per val frame, the image, its ground truth and each benchmark model's prediction, in colour."""
    import cv2

    from effdl_ros.data.camvid import IGNORE_INDEX, PALETTE, load_pair, pairs
    from effdl_ros.segmentation.network import load_checkpoint

    val = pairs(Path(camvid_root), "val")
    pal = np.concatenate([PALETTE, np.zeros((256 - len(PALETTE), 3), np.uint8)], 0)
    pal[IGNORE_INDEX] = 0
    def short(method: str) -> str:
        method = method.split(" (")[0].replace("single-source adaptation:", "single:")
        return method.replace("all sources merged", "merged").replace(": trained on the target's labels", "")

    models = [(short(m), *load_checkpoint(Path(models_dir) / f)) for m, f in _rows_spec(sources)]
    rows = []
    for i in frame_indices:
        rgb, mask = load_pair(*val[min(i, len(val) - 1)])
        tiles = [rgb, pal[mask]] + [pal[predict(m, c, rgb)] for _, m, c in models]
        tiles = [cv2.resize(t, (240, 180), interpolation=cv2.INTER_NEAREST) for t in tiles]
        rows.append(np.concatenate(tiles, 1))
    grid = np.concatenate(rows, 0)
    head = np.full((22, grid.shape[1], 3), 255, np.uint8)
    names = ["image", "ground truth"] + [n for n, _, _ in models]
    for k, n in enumerate(names):
        cv2.putText(head, n[:30], (4 + 240 * k, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out_png), cv2.cvtColor(np.concatenate([head, grid], 0), cv2.COLOR_RGB2BGR))
    return out_png


def scale_sweep(model, config: Dict, pairs: Sequence[Tuple[Path, Path]], scales: Sequence[float],
                repeats: int = 3, device="cpu", fp16: bool = False) -> List[Dict]:
    """mIoU, counted MACs and median ms/frame per input scale (the node's budget knob).

    Scales are interleaved frame by frame, each timed ``repeats`` times (the minimum kept), so a burst
    of load from other processes hits every scale alike.
    """
    from effdl_ros.data.camvid import CLASSES, IGNORE_INDEX, load_pair
    from effdl_ros.segmentation.inference import input_size
    from effdl_ros.segmentation.metrics import confusion_matrix, scores
    from effdl_ros.segmentation.network import count_macs

    names = list(config.get("classes", CLASSES))
    confs = {s: np.zeros((len(names), len(names)), np.int64) for s in scales}
    times: Dict[float, List[float]] = {s: [] for s in scales}
    for k, (ip, mp) in enumerate(pairs):
        rgb, mask = load_pair(ip, mp)
        for s in scales:
            best = float("inf")
            for _ in range(max(1, repeats)):
                t0 = time.perf_counter()
                pred = predict(model, config, rgb, scale=s, device=device, fp16=fp16)  # host labels: synced
                best = min(best, time.perf_counter() - t0)
            if k > 0 or len(pairs) == 1:
                times[s].append(best)
            confs[s] += confusion_matrix(pred, mask, len(names), IGNORE_INDEX)
    full = count_macs(model, input_size(config, 1.0))
    rows = []
    for s in scales:
        hw = input_size(config, s)
        macs = count_macs(model, hw)
        sc = scores(confs[s], names)
        rows.append({"scale": s, "input_hw": list(hw), "macs": macs, "macs_fraction": macs / full,
                     "miou": sc["miou"], "pixel_acc": sc["pixel_acc"],
                     "ms_per_frame": 1000.0 * float(np.median(times[s]))})
    return rows

"""Evaluation on real labelled frames, and the adaptation benchmark's segmentation rows.

Every model is evaluated the same way: the frame is resized to the model's input size, the class
scores are upsampled bilinearly to the label's full resolution (CamVid: 360x480), and the confusion
matrix ignores class 11. ms_per_frame is wall time per frame of preprocessing + forward + upsampling
+ argmax on this process's device and threads (measured, not modelled); disk reading is excluded.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from effdl_ros.errors import DataError


def predict(model, config: Dict, rgb: np.ndarray, *, scale: float = 1.0, device: str = "cpu",
            out_hw: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """Class ids uint8 [H, W] for one RGB uint8 frame, at the frame's size (or out_hw).

    :param scale: multiplies the model's input size (the budget knob: 0.5 = a quarter of the MACs).
    """
    import cv2
    import torch
    import torch.nn.functional as F

    from effdl_ros.segmentation.network import to_input

    h, w = [max(16, int(round(v * scale / 8.0)) * 8) for v in config.get("input_hw", (120, 160))]
    small = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
    with torch.no_grad():
        x = to_input(torch.from_numpy(np.ascontiguousarray(small))[None]).to(device)
        scores = model(x)
        size = out_hw or rgb.shape[:2]
        scores = F.interpolate(scores, size=tuple(size), mode="bilinear", align_corners=False)
        return scores.argmax(1)[0].to(torch.uint8).cpu().numpy()


def evaluate_pairs(model, config: Dict, pairs: Sequence[Tuple[Path, Path]], *, device: str = "cpu",
                   scale: float = 1.0) -> Dict[str, object]:
    """mIoU, per-class IoU, pixel accuracy and ms per frame over (image, mask) pairs."""
    from effdl_ros.data.camvid import CLASSES, IGNORE_INDEX, load_pair
    from effdl_ros.segmentation.metrics import confusion_matrix, scores

    names = list(config.get("classes", CLASSES))
    conf = np.zeros((len(names), len(names)), np.int64)
    elapsed = 0.0
    for k, (ip, mp) in enumerate(pairs):
        rgb, mask = load_pair(ip, mp)
        t0 = time.perf_counter()
        pred = predict(model, config, rgb, scale=scale, device=device)
        if k > 0 or len(pairs) == 1:  # the first frame warms up the allocator and kernels
            elapsed += time.perf_counter() - t0
        conf += confusion_matrix(pred, mask, len(names), IGNORE_INDEX)
    timed = max(1, len(pairs) - 1) if len(pairs) > 1 else 1
    out = scores(conf, names)
    out["ms_per_frame"] = 1000.0 * elapsed / timed
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
    rows.append(("oracle: trained on CamVid train labels", names["oracle"]))
    return rows


def run_segmentation_benchmark(models_dir, camvid_root, max_frames: Optional[int] = None,
                               sources: Sequence[str] = ("sunny", "dusk")) -> List[Dict]:
    """One run, the same CamVid val frames for every model; rows as the adaptation bench prints them.

    Each row: {"method", "miou", "pixel_acc", "ms_per_frame", "checkpoint", "per_class", "role"}.
    The best single-source adaptation row (highest val mIoU, as the papers report the best single
    source) gets role "best_single"; MADAN's role is "madan", the oracle's "oracle", source-only rows
    "source_only" (the merged one "source_merged"). A missing checkpoint raises DataError.
    """
    import torch

    from effdl_ros.data.camvid import pairs
    from effdl_ros.segmentation.network import load_checkpoint

    models_dir, camvid_root = Path(models_dir), Path(camvid_root)
    val = pairs(camvid_root, "val")
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
    if madan and oracle and src:
        s = max(r["miou"] for r in src)
        gap = oracle[0]["miou"] - s
        out["gap_closed"] = (madan[0]["miou"] - s) / gap if gap > 0 else float("nan")
        out["best_source_only_miou"] = s
    return out

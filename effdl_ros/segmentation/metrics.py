"""Segmentation metrics from one confusion matrix: per-class IoU, mIoU, pixel accuracy.

Pixels whose ground truth is the ignore index (CamVid's 11, Unlabelled) are left out, as in the
SegNet/CamVid protocol. mIoU averages over the classes that occur in the ground truth or in the
predictions (a class absent from both has no defined IoU and is reported as None).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np


def confusion_matrix(pred: np.ndarray, target: np.ndarray, num_classes: int,
                     ignore_index: Optional[int] = 11) -> np.ndarray:
    """[num_classes, num_classes] int64 counts, rows = ground truth, columns = prediction."""
    pred = np.asarray(pred).ravel().astype(np.int64)
    target = np.asarray(target).ravel().astype(np.int64)
    if pred.shape != target.shape:
        raise ValueError(f"prediction has {pred.size} pixels, ground truth {target.size}")
    keep = (target >= 0) & (target < num_classes)
    if ignore_index is not None:
        keep &= target != ignore_index
    pred = np.clip(pred[keep], 0, num_classes - 1)
    return np.bincount(target[keep] * num_classes + pred, minlength=num_classes ** 2).reshape(
        num_classes, num_classes)


def scores(conf: np.ndarray, class_names: Optional[Sequence[str]] = None) -> Dict[str, object]:
    """{"miou", "per_class" {name: IoU or None}, "pixel_acc"} from a confusion matrix."""
    conf = np.asarray(conf, np.float64)
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    names = list(class_names) if class_names is not None else [str(i) for i in range(len(tp))]
    per_class = {n: (float(tp[i] / union[i]) if union[i] > 0 else None) for i, n in enumerate(names)}
    valid = [v for v in per_class.values() if v is not None]
    total = conf.sum()
    return {"miou": float(np.mean(valid)) if valid else 0.0, "per_class": per_class,
            "pixel_acc": float(tp.sum() / total) if total > 0 else 0.0}

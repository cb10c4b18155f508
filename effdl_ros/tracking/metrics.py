"""OTB one-pass evaluation (Wu et al., "Object Tracking Benchmark", TPAMI 2015).

Success: fraction of frames whose IoU exceeds each of 21 thresholds 0, 0.05, ..., 1; its area under
the curve (AUC) is the mean of those fractions. Precision@20: fraction of frames whose centre error
is <= 20 px. Frames whose ground truth is absent (NaN) are skipped.
"""
from __future__ import annotations

import numpy as np

THRESHOLDS = np.linspace(0.0, 1.0, 21)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of x,y,w,h boxes, row by row ([N,4] x [N,4] -> [N]); 0 where a box is empty."""
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    x1 = np.maximum(a[:, 0], b[:, 0])
    y1 = np.maximum(a[:, 1], b[:, 1])
    x2 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y2 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    out = np.zeros(len(inter))
    ok = union > 0
    out[ok] = inter[ok] / union[ok]
    return out


def center_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    ca = a[:, :2] + a[:, 2:] / 2
    cb = b[:, :2] + b[:, 2:] / 2
    return np.linalg.norm(ca - cb, axis=1)


def _valid(gt: np.ndarray) -> np.ndarray:
    return ~np.isnan(gt).any(axis=1)


def success_curve(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Success rate per threshold (OTB: IoU > t); a missing prediction (NaN) counts as IoU 0."""
    ok = _valid(gt)
    p = np.nan_to_num(np.asarray(pred, dtype=np.float64)[ok], nan=0.0)
    overlaps = iou(p, np.asarray(gt)[ok])
    return np.array([(overlaps > t).mean() if len(overlaps) else 0.0 for t in THRESHOLDS])


def success_auc(pred: np.ndarray, gt: np.ndarray) -> float:
    return float(success_curve(pred, gt).mean())


def precision(pred: np.ndarray, gt: np.ndarray, threshold_px: float = 20.0) -> float:
    ok = _valid(gt)
    p = np.asarray(pred, dtype=np.float64)[ok]
    err = center_error(np.nan_to_num(p, nan=-1e9), np.asarray(gt)[ok])
    return float((err <= threshold_px).mean()) if len(err) else 0.0

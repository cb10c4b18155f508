"""11-class CamVid patch classification: 32x32 RGB crops labelled by their centre pixel.

A harder-than-digits image task for dynamic inference, built from real street scenes: frames are
downscaled (default 0.5, so a crop sees 64x64 pixels of the original 360x480 frame), then per frame a
fixed number of centres is drawn uniformly among pixels whose class is not Unlabelled (11) and which
lie at least half a crop from the border. Sampling is deterministic: the generator is seeded from
(seed, split, frame index), so the same call always returns the same patches. Training patches come
from CamVid train/, test patches from val/ (the test split is not in ../shared/data on purpose).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from effdl_ros.data import camvid
from effdl_ros.errors import DataError

Patches = Tuple[np.ndarray, np.ndarray]     # uint8 [N, S, S, 3] RGB, int64 [N] class ids 0..10


def sample_patches(image: np.ndarray, mask: np.ndarray, count: int, rng: np.random.Generator,
                   size: int = 32) -> Patches:
    """count crops of size x size around random labelled centres of one frame."""
    half = size // 2
    h, w = mask.shape
    valid = mask[half: h - half, half: w - half] < camvid.IGNORE_INDEX
    ys, xs = np.nonzero(valid)
    if len(ys) == 0:
        return np.zeros((0, size, size, 3), np.uint8), np.zeros((0,), np.int64)
    pick = rng.choice(len(ys), size=min(count, len(ys)), replace=False)
    cy, cx = ys[pick] + half, xs[pick] + half
    crops = np.stack([image[y - half: y - half + size, x - half: x - half + size] for y, x in zip(cy, cx)])
    return crops, mask[cy, cx].astype(np.int64)


def load_patches(split: str, *, root: Optional[Path] = None, per_frame: int = 64, size: int = 32,
                 scale: float = 0.5, seed: int = 0, max_frames: Optional[int] = None) -> Patches:
    """Deterministic patches of one CamVid split ('train' or 'val')."""
    import cv2

    if split not in ("train", "val"):
        raise DataError(f"CamVid patch split must be 'train' or 'val', got {split!r}")
    root = Path(root) if root is not None else camvid.default_root()
    if not root.is_dir():
        raise DataError(f"CamVid folder {root} is absent (see ../shared/data/README.md)")
    pairs = camvid.pairs(root, split)
    if max_frames is not None:
        pairs = pairs[:max_frames]
    split_id = {"train": 0, "val": 1}[split]
    images, labels = [], []
    for i, (image_path, mask_path) in enumerate(pairs):
        image, mask = camvid.load_pair(image_path, mask_path)
        if scale != 1.0:
            dsize = (int(round(image.shape[1] * scale)), int(round(image.shape[0] * scale)))
            image = cv2.resize(image, dsize, interpolation=cv2.INTER_AREA)
            mask = cv2.resize(mask, dsize, interpolation=cv2.INTER_NEAREST)
        rng = np.random.default_rng([seed, split_id, i])
        crops, labs = sample_patches(image, mask, per_frame, rng, size)
        images.append(crops)
        labels.append(labs)
    return np.concatenate(images), np.concatenate(labels)

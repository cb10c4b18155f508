"""CamVid (Brostow et al.) in the 11-class SegNet split: real street scenes, 360x480.

Folder layout as in ../shared/data/segmentation/camvid: train/, trainannot/, val/, valannot/.
Masks hold class ids 0..10 and 11 = Unlabelled (ignored in metrics).
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import numpy as np

from effdl_ros.errors import DataError
from effdl_ros.resources import shared_data_dir

CLASSES = ("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
           "Pedestrian", "Bicyclist")
IGNORE_INDEX = 11
#: Display colours (RGB) for overlays, one per class, in the usual CamVid palette.
PALETTE = np.array([
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
    (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
], dtype=np.uint8)


def default_root() -> Path:
    return shared_data_dir() / "segmentation" / "camvid"


def pairs(root: Path, split: str) -> List[Tuple[Path, Path]]:
    """(image, mask) paths of one split ('train' or 'val'), sorted by name."""
    images = sorted((root / split).glob("*.jpg")) + sorted((root / split).glob("*.png"))
    if not images:
        raise DataError(f"no CamVid images in {root / split}")
    out = []
    for image in images:
        mask = root / f"{split}annot" / (image.stem + ".png")
        if not mask.is_file():
            raise DataError(f"CamVid mask {mask} for image {image.name} is missing")
        out.append((image, mask))
    return out


def load_pair(image_path: Path, mask_path: Path) -> Tuple[np.ndarray, np.ndarray]:
    """RGB uint8 [H, W, 3] and class ids uint8 [H, W]."""
    import cv2

    bgr = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DataError(f"cannot decode image {image_path}")
    mask = cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED)
    if mask is None or mask.ndim != 2:
        raise DataError(f"cannot decode single-channel mask {mask_path}")
    if mask.shape != bgr.shape[:2]:
        raise DataError(f"mask {mask_path} is {mask.shape}, its image is {bgr.shape[:2]}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), mask

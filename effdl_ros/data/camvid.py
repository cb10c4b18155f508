"""CamVid (Brostow et al.) in the 11-class SegNet split: real street scenes, 360x480.

Folder layout as in ../shared/data/segmentation/camvid: train/, trainannot/, val/, valannot/.
Masks hold class ids 0..10 and 11 = Unlabelled (ignored in metrics).
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence, Tuple

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


# ----------------------------------------------------------------------------- sequences and time

#: CamVid's sequences, by the prefix of their file names: 0001TP is filmed at dusk, 0006R0 and 0016E5
#: in daylight; Seq05VD (daylight) is only in the held-back test split.
DUSK = "0001TP"
DAY = ("0006R0", "0016E5")


def sequence_of(path) -> str:
    """The sequence a CamVid frame belongs to: the file name before its first '_' (0001TP_006690.png)."""
    name = Path(path).name
    if "_" not in name:
        raise DataError(f"CamVid file name {name} carries no sequence prefix (expected e.g. 0001TP_006690.png)")
    return name.split("_", 1)[0]


def frame_number(path) -> int:
    """The frame index in its sequence, for ordering by time: 0001TP_006690.png -> 6690, Seq05VD_f00420 -> 420."""
    stem = Path(path).stem.split("_", 1)[1] if "_" in Path(path).stem else Path(path).stem
    digits = "".join(ch for ch in stem if ch.isdigit())
    if not digits:
        raise DataError(f"CamVid file name {Path(path).name} carries no frame number")
    return int(digits)


def sequence_pairs(root: Path, sequence: str, splits: Sequence[str] = ("train", "val")) -> List[Tuple[Path, Path]]:
    """Every labelled (image, mask) pair of one sequence in the given splits, in time order."""
    out = []
    for split in splits:
        if (Path(root) / split).is_dir():
            out += [p for p in pairs(Path(root), split) if sequence_of(p[0]) == sequence]
    if not out:
        raise DataError(f"no frames of CamVid sequence {sequence} in {root} ({', '.join(splits)})")
    return sorted(out, key=lambda p: frame_number(p[0]))


def time_split(items: Sequence[Tuple[Path, Path]], n_adapt: int) -> Tuple[List, List]:
    """Split one sequence's pairs by time: the first n_adapt frames for adaptation (their labels are
    never read), the rest for reporting. Sorting here, not trusting the caller, keeps report frames
    out of adaptation whatever order the items came in."""
    ordered = sorted(items, key=lambda p: frame_number(p[0]))
    if not 0 < n_adapt < len(ordered):
        raise DataError(f"cannot split {len(ordered)} frames into {n_adapt} for adaptation and the rest for "
                        "reporting: both parts must be non-empty")
    return list(ordered[:n_adapt]), list(ordered[n_adapt:])


#: The dusk target of issue 17: 0001TP's 62 labelled frames, the first 40 (by time) for adaptation
#: without labels, the last 22 for reporting only.
DUSK_ADAPT_FRAMES = 40


def dusk_split(root: Path) -> Tuple[List, List]:
    return time_split(sequence_pairs(root, DUSK), DUSK_ADAPT_FRAMES)

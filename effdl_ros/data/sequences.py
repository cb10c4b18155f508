"""Tracking sequences with ground truth: OTB, VOT and UAV123 frame folders.

Layouts understood by :func:`load_sequence`:

- OTB: ``SEQ/img/*.jpg`` + ``SEQ/groundtruth_rect.txt`` (x,y,w,h per line; comma, space or tab).
- VOT: ``SEQ/*.jpg`` + ``SEQ/groundtruth.txt`` (x,y,w,h, or 8 values = polygon corners; the
  axis-aligned box is the min/max of the corners).
- UAV123 (as in vision4robotics/ARCF-tracker): ``seq/NAME/*.jpg`` + ``seq/NAME.txt`` (x,y,w,h).

Lines reading NaN (target absent, as in UAV123) give a NaN row; metrics skip those frames.
Boxes are 0-based pixel x,y,w,h float64 (OTB's 1-based origin is kept as written, as the toolkits do).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import numpy as np

from effdl_ros.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_SPLIT = re.compile(r"[,\s]+")


@dataclass
class Sequence:
    """One video with a ground-truth box per frame (frames and boxes have the same length)."""

    name: str
    frames: List[Path]
    boxes: np.ndarray  # [N, 4] x, y, w, h (float64; NaN row = target absent)

    def __len__(self) -> int:
        return len(self.frames)


def parse_box_line(line: str, path: Path, lineno: int) -> np.ndarray:
    """One ground-truth line -> [x, y, w, h]; raises DataError naming file and line when malformed."""
    fields = [f for f in _SPLIT.split(line.strip()) if f]
    try:
        values = [float(f) for f in fields]
    except ValueError:
        raise DataError(f"{path}, line {lineno}: expected numbers, got {line.strip()!r}") from None
    if len(values) == 4:
        x, y, w, h = values
        if all(math.isnan(v) for v in values):
            return np.full(4, np.nan)
        if any(math.isnan(v) or math.isinf(v) for v in values) or w < 0 or h < 0:
            raise DataError(f"{path}, line {lineno}: box {line.strip()!r} has a negative or invalid size")
        return np.array([x, y, w, h], dtype=np.float64)
    if len(values) == 8:
        if any(math.isnan(v) or math.isinf(v) for v in values):
            raise DataError(f"{path}, line {lineno}: polygon {line.strip()!r} has an invalid value")
        xs, ys = values[0::2], values[1::2]
        return np.array([min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)], dtype=np.float64)
    raise DataError(f"{path}, line {lineno}: expected 4 values (x,y,w,h) or 8 (polygon), "
                    f"got {len(values)}")


def read_boxes(path: Path) -> np.ndarray:
    """All boxes of a ground-truth file (blank lines are skipped), [N, 4]."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise DataError(f"cannot read ground truth {path}: {err.strerror}") from None
    rows = [parse_box_line(line, path, i) for i, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not rows:
        raise DataError(f"ground truth {path} holds no boxes")
    return np.stack(rows)


def _frames_in(folder: Path) -> List[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _find_layout(path: Path) -> tuple:
    if (path / "groundtruth_rect.txt").is_file():
        folder = path / "img" if (path / "img").is_dir() else path
        return folder, path / "groundtruth_rect.txt"
    if (path / "groundtruth.txt").is_file():
        folder = path / "color" if (path / "color").is_dir() else path
        return folder, path / "groundtruth.txt"
    sibling = path.parent / (path.name + ".txt")
    if sibling.is_file():
        return path, sibling
    raise DataError(f"{path} is not a tracking sequence: expected groundtruth_rect.txt (OTB), "
                    f"groundtruth.txt (VOT) or a sibling {path.name}.txt (UAV123)")


def load_sequence(path, name: Optional[str] = None) -> Sequence:
    """Load one sequence folder (OTB, VOT or UAV123 layout); frames beyond the boxes are dropped."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"sequence folder {path} does not exist")
    folder, gt = _find_layout(path)
    frames = _frames_in(folder)
    if not frames:
        raise DataError(f"no image frames ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    boxes = read_boxes(gt)
    # Partial copies exist (e.g. the first 199 frames of OTB Human3 with all its boxes): evaluate the
    # frames that have both an image and a box.
    n = min(len(boxes), len(frames))
    if n < 2:
        raise DataError(f"{gt} and {folder} give only {n} frame(s) with a box; need at least 2")
    frames, boxes = frames[:n], boxes[:n]
    if np.isnan(boxes[0]).any() or boxes[0, 2] <= 0 or boxes[0, 3] <= 0:
        raise DataError(f"{gt}, line 1: the first frame needs a valid box to start tracking")
    return Sequence(name=name or path.name, frames=frames, boxes=boxes)

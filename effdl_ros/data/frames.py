"""Frames from a folder of images, a video file or a camera, as BGR arrays (OpenCV's order)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, List, Optional, Union

import numpy as np

from effdl_ros.errors import DataError
from effdl_ros.resources import resolve_path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm")


def list_frames(folder: Path) -> List[Path]:
    """Image files of a frame folder (or its img/ subfolder, OTB layout), sorted by name."""
    folder = Path(folder)
    if (folder / "img").is_dir():
        folder = folder / "img"
    frames = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not frames:
        raise DataError(f"frame folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return frames


def resolve_input(spec: str) -> Union[Path, int]:
    """A camera index ('0', 'camera:0'), or a path; relative paths also resolve against the package's
    shared files, so the shipped sample works from any directory."""
    if spec.startswith("camera:"):
        spec = spec.split(":", 1)[1]
    if spec.isdigit():
        return int(spec)

    path = resolve_path(spec)
    if path.exists():
        return path
    raise DataError(f"input {spec} does not exist (neither a file, a folder nor a camera index)")


class FrameSource:
    """Iterates frames; `loop` restarts at the end; `max_frames` > 0 stops after that many."""

    def __init__(self, spec: str, *, loop: bool = False, max_frames: int = 0,
                 resize_width: int = 0) -> None:
        self.target = resolve_input(spec)
        self.loop = loop
        self.max_frames = max_frames
        self.resize_width = resize_width
        self.frames: Optional[List[Path]] = None
        self._capture = None
        if isinstance(self.target, Path) and self.target.is_dir():
            self.frames = list_frames(self.target)
        else:
            self._open_capture()

    def _open_capture(self) -> None:
        import cv2

        target = self.target if isinstance(self.target, int) else str(self.target)
        self._capture = cv2.VideoCapture(target)
        if not self._capture.isOpened():
            raise DataError(f"OpenCV cannot open {'camera' if isinstance(target, int) else 'video'} "
                            f"{target}")

    def __iter__(self) -> Iterator[np.ndarray]:
        import cv2

        count = 0
        while True:
            produced = False
            for frame in self._read_once():
                produced = True
                if self.resize_width and frame.shape[1] != self.resize_width:
                    height = int(round(frame.shape[0] * self.resize_width / frame.shape[1]))
                    frame = cv2.resize(frame, (self.resize_width, height), interpolation=cv2.INTER_AREA)
                yield frame
                count += 1
                if self.max_frames and count >= self.max_frames:
                    return
            if not self.loop or not produced:
                return

    def _read_once(self) -> Iterator[np.ndarray]:
        import cv2

        if self.frames is not None:
            for path in self.frames:
                frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if frame is None:
                    raise DataError(f"cannot decode image {path}")
                yield frame
            return
        if not isinstance(self.target, int):
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
        while True:
            ok, frame = self._capture.read()
            if not ok:
                return
            yield frame

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()

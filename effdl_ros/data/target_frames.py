"""The robot's own unlabelled frames, for adapting a model to its camera: a folder, a video or a bag.

`effdl-ros train madan --target DIR|VIDEO|BAG` reads them here. A long recording is sampled evenly in
time (consecutive frames of a 30 Hz camera are near copies: spreading the sample buys variety), and
every frame is resized to the training size with area interpolation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional

import numpy as np

from effdl_ros.data.bags import is_bag, read_frames
from effdl_ros.data.frames import IMAGE_SUFFIXES, list_frames
from effdl_ros.errors import DataError

VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg")


@dataclass
class TargetFrames:
    """RGB uint8 frames [N, H, W, 3] and where they came from (for the model card)."""

    images: np.ndarray
    source: str
    kind: str                       # folder | video | bag
    total: int                      # frames in the recording before sampling
    topic: str = ""
    picked: List[int] = field(default_factory=list)   # indices of the frames kept

    def describe(self) -> str:
        what = f"{self.kind} {self.source}" + (f" topic {self.topic}" if self.topic else "")
        return f"{len(self.images)} of {self.total} frames of {what}"


def kind_of(path: Path) -> str:
    path = Path(path)
    if not path.exists():
        raise DataError(f"target {path} does not exist (give a folder of frames, a video or a bag)")
    if is_bag(path):
        return "bag"
    if path.is_dir():
        return "folder"
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return "video"
    raise DataError(f"target {path} is neither a folder of frames ({', '.join(IMAGE_SUFFIXES)}), a video "
                    f"({', '.join(VIDEO_SUFFIXES)}) nor a bag (rosbag2 folder, .db3, .mcap or ROS 1 .bag)")


def even_indices(total: int, limit: Optional[int]) -> List[int]:
    """limit indices spread evenly over range(total) (all of them when limit is None or >= total)."""
    if total <= 0:
        return []
    if limit is None or limit >= total:
        return list(range(total))
    return sorted({int(round(i * (total - 1) / max(1, limit - 1))) for i in range(limit)})


def _iter_rgb(path: Path, kind: str, image_topic: Optional[str]) -> Iterator[np.ndarray]:
    import cv2

    if kind == "folder":
        for p in list_frames(path):
            bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if bgr is None:
                raise DataError(f"cannot decode image {p}")
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    elif kind == "video":
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise DataError(f"OpenCV cannot open video {path}")
        try:
            while True:
                ok, bgr = cap.read()
                if not ok:
                    return
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            cap.release()
    else:
        for frame in read_frames(path, image_topic):
            yield frame.image


def _video_length(path: Path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    cap.release()
    return n


def read_target_frames(spec, *, height: int, width: int, image_topic: Optional[str] = None,
                       limit: Optional[int] = None) -> TargetFrames:
    """Up to `limit` frames of a folder, video or bag, evenly spread in time, resized to height x width."""
    import cv2

    path = Path(spec)
    kind = kind_of(path)
    if image_topic and kind != "bag":
        raise DataError(f"--image-topic {image_topic} only applies to a bag, and target {path} is a {kind}")
    topic = ""
    if kind == "bag":        # the bag's topic list is read once: it names the topic and its length
        from effdl_ros.data.bags import choose_image_topic, list_topics

        info = choose_image_topic(path, list_topics(path), image_topic)
        topic, total = info.topic, info.count
    else:
        total = len(list_frames(path)) if kind == "folder" else _video_length(path)
    wanted = set(even_indices(total, limit)) if total > 0 else None
    out, picked, seen = [], [], 0
    for i, rgb in enumerate(_iter_rgb(path, kind, topic or image_topic)):
        seen = i + 1
        if wanted is not None and i not in wanted:
            continue
        out.append(cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA))
        picked.append(i)
    if wanted is None and limit is not None and len(out) > limit:   # a video whose length was unknown
        keep = even_indices(len(out), limit)
        out, picked = [out[i] for i in keep], [picked[i] for i in keep]
    if not out:
        raise DataError(f"target {path} holds no readable frames")
    return TargetFrames(np.stack(out), str(path), kind, max(total, seen), topic, picked)

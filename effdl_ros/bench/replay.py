"""What `effdl-ros replay` plays: frames (with ground truth where there is one) and their timing.

Inputs: a rosbag2 folder or .db3/.mcap file, a ROS 1 .bag (effdl_ros.data.bags), a tracking sequence
in OTB/VOT/UAV123 layout with its ground truth (effdl_ros.data.sequences), a plain frame folder, or a
video file. Timing follows `ros2 bag play`: frames are released at their recorded time stamps scaled
by --rate, or as fast as the graph takes them.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np

from effdl_ros.errors import ConfigError, DataError
from effdl_ros.resources import resolve_path

VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".webm")


@dataclass
class ReplayFrame:
    index: int
    stamp_ns: int
    image: np.ndarray                   # RGB uint8 [H, W, 3]
    gt_box: Optional[np.ndarray] = None  # x, y, w, h (NaN = target absent)
    frame_id: str = "camera"            # the input's header.frame_id (bags), else "camera"


@dataclass
class ReplayInput:
    kind: str                 # "bag" | "sequence" | "frames" | "video"
    path: Path
    name: str
    count: Optional[int]      # frames, where known before reading
    topic: str = ""           # the bag's image topic
    fps: float = 10.0         # nominal rate of frame folders and videos (bags carry stamps)
    first_box: Optional[np.ndarray] = None
    _iter: Optional[Callable[[], Iterator[ReplayFrame]]] = None

    @property
    def has_ground_truth(self) -> bool:
        return self.first_box is not None

    def frames(self) -> Iterator[ReplayFrame]:
        assert self._iter is not None
        return self._iter()


START_NS = 1_700_000_000_000_000_000


def _read_rgb(path: Path) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DataError(f"cannot decode image {path}")
    return np.ascontiguousarray(bgr[..., ::-1])


def open_input(path, *, image_topic: Optional[str] = None, fps: float = 10.0,
               limit: Optional[int] = None) -> ReplayInput:
    """Recognise the input kind; all problems are DataErrors naming the file (and line)."""
    from effdl_ros.data import bags

    path = resolve_path(str(path))  # as given, else the bundled file (samples/vtest from any folder)
    if fps <= 0:
        raise ConfigError(f"--fps must be > 0, got {fps}")
    if limit is not None and limit < 1:
        raise ConfigError(f"--max-frames must be >= 1, got {limit}")
    if not path.exists():
        raise DataError(f"replay input {path} does not exist")
    period = int(round(1e9 / fps))

    if bags.is_bag(path):
        topics = bags.list_topics(path)
        topic = bags.choose_image_topic(path, topics, image_topic)
        if topic.count == 0:
            raise DataError(f"topic {topic.topic} in bag {path} has zero messages")

        def bag_frames() -> Iterator[ReplayFrame]:
            for f in bags.read_frames(path, topic.topic, limit=limit):
                yield ReplayFrame(f.index, f.stamp_ns, f.image, frame_id=f.frame_id or "camera")

        count = topic.count if limit is None else min(limit, topic.count)
        return ReplayInput("bag", path, path.stem if path.is_file() else path.name, count, topic.topic,
                           _iter=bag_frames)

    if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
        def video_frames() -> Iterator[ReplayFrame]:
            import cv2

            cap = cv2.VideoCapture(str(path))
            if not cap.isOpened():
                raise DataError(f"cannot open video {path}")
            try:
                i = 0
                while limit is None or i < limit:
                    ok, bgr = cap.read()
                    if not ok:
                        break
                    yield ReplayFrame(i, START_NS + i * period, np.ascontiguousarray(bgr[..., ::-1]))
                    i += 1
                if i == 0:
                    raise DataError(f"video {path} holds no decodable frames")
            finally:
                cap.release()

        return ReplayInput("video", path, path.stem, None, fps=fps, _iter=video_frames)

    if path.is_dir():
        from effdl_ros.data import sequences

        has_gt = ((path / "groundtruth_rect.txt").is_file() or (path / "groundtruth.txt").is_file()
                  or (path.parent / (path.name + ".txt")).is_file())
        if has_gt:
            seq = sequences.load_sequence(path)
            files, boxes = seq.frames[:limit], seq.boxes[:limit]

            def seq_frames() -> Iterator[ReplayFrame]:
                for i, (f, box) in enumerate(zip(files, boxes)):
                    yield ReplayFrame(i, START_NS + i * period, _read_rgb(f), np.asarray(box, float))

            return ReplayInput("sequence", path, seq.name, len(files), fps=fps, first_box=boxes[0],
                               _iter=seq_frames)
        from effdl_ros.data.frames import list_frames

        files = list_frames(path)[:limit]

        def folder_frames() -> Iterator[ReplayFrame]:
            for i, f in enumerate(files):
                yield ReplayFrame(i, START_NS + i * period, _read_rgb(f))

        return ReplayInput("frames", path, path.name, len(files), fps=fps, _iter=folder_frames)
    raise DataError(f"replay input {path} is not a bag (.bag, .db3, .mcap, rosbag2 folder), a frame "
                    "folder or a video")


class Pacer:
    """Release frames at their recorded times x 1/rate, as `ros2 bag play --rate`; rate None = no wait.

    The first frame sets the origin; a graph slower than the recording is not waited for (frames are
    then released late, never dropped: replay is for evaluation).
    """

    def __init__(self, rate: Optional[float], *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate is not None and rate <= 0:
            raise ConfigError(f"--rate must be > 0, got {rate}")
        self.rate = rate
        self._clock, self._sleep = clock, sleep
        self._origin: Optional[tuple] = None
        self.late = 0

    def wait(self, stamp_ns: int, idle: Optional[Callable[[float], None]] = None) -> float:
        """Wait until the frame is due, in idle(seconds) (default: sleep); returns the seconds waited.

        A graph passes idle = "spin for this long" so that its timers keep running meanwhile.
        """
        if self.rate is None:
            return 0.0
        now = self._clock()
        if self._origin is None:
            self._origin = (now, int(stamp_ns))
            return 0.0
        due = self._origin[0] + (int(stamp_ns) - self._origin[1]) / 1e9 / self.rate
        delay = due - now
        if delay > 0:
            (idle or self._sleep)(delay)
            return delay
        if delay < -1e-3:
            self.late += 1
        return 0.0

"""OpenCV's trackers as baselines (CSRT and KCF from opencv-contrib, MIL from core), same interface
as RoamTracker: init(image, box) then update(image) -> TrackResult. Images are RGB (converted to BGR
for OpenCV inside, counted in their time like ROAM's own conversions)."""
from __future__ import annotations

import numpy as np

from effdl_ros.errors import ConfigError
from effdl_ros.tracking.tracker import TrackResult

OPENCV_TRACKERS = ("csrt", "kcf", "mil")


def _factory(name: str):
    import cv2

    legacy = {"csrt": "TrackerCSRT", "kcf": "TrackerKCF", "mil": "TrackerMIL"}[name]
    cls = getattr(cv2, legacy, None)
    if cls is not None and hasattr(cls, "create"):
        return cls.create
    fn = getattr(cv2, legacy + "_create", None)
    if fn is None:
        raise ConfigError(f"OpenCV tracker {name!r} is not available in this OpenCV build "
                          "(csrt and kcf need opencv-contrib-python-headless)")
    return fn


class OpenCVTracker:
    def __init__(self, name: str):
        if name not in OPENCV_TRACKERS:
            raise ConfigError(f"unknown OpenCV tracker {name!r}; choose from {', '.join(OPENCV_TRACKERS)}")
        self.name = name
        self._create = _factory(name)
        self.box = None

    def init(self, image: np.ndarray, box) -> None:
        import cv2

        self.tracker = self._create()
        b = tuple(int(round(v)) for v in box)
        self.tracker.init(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), b)
        self.box = np.asarray(box, dtype=np.float64)

    def update(self, image: np.ndarray) -> TrackResult:
        import cv2

        ok, b = self.tracker.update(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if ok:
            self.box = np.asarray(b, dtype=np.float64)
            return TrackResult(box=self.box, score=1.0, lost=False)
        return TrackResult(box=np.full(4, np.nan), score=0.0, lost=True)

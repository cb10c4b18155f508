"""A bounded replay buffer with a fixed held-out part, and pairing of images with labels by stamp.

Every sample is assigned once, on arrival, to training or held-out (every ``holdout_every``-th sample),
so a held-out sample never leaks into training. Each part is a FIFO: the robot's most recent
experience wins when the buffer is full (memory stays bounded).
"""
from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Deque, Optional, Tuple

import numpy as np


@dataclass
class Sample:
    image: np.ndarray      # float32 [C, H, W], already normalised for the consumer's model
    label: int
    pseudo: bool = False   # True when the label came from the consumer's own confident output


class ReplayBuffer:
    def __init__(self, capacity: int = 512, *, holdout_every: int = 5, seed: int = 0) -> None:
        """:param capacity: samples kept in all (training + held-out).
        :param holdout_every: every n-th arriving sample is held out for validation (n >= 2)."""
        if capacity < 2:
            raise ValueError("capacity must be >= 2")
        if holdout_every < 2:
            raise ValueError("holdout_every must be >= 2")
        n_hold = max(1, capacity // holdout_every)
        self.train: Deque[Sample] = deque(maxlen=capacity - n_hold)
        self.holdout: Deque[Sample] = deque(maxlen=n_hold)
        self.holdout_every = holdout_every
        self.arrived = 0
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.train) + len(self.holdout)

    def add(self, image: np.ndarray, label: int, *, pseudo: bool = False) -> None:
        self.arrived += 1
        sample = Sample(np.asarray(image, dtype=np.float32), int(label), pseudo)
        (self.holdout if self.arrived % self.holdout_every == 0 else self.train).append(sample)

    def batch(self, size: int) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        """A random training mini-batch (with replacement when the buffer is small), or None if empty."""
        if not self.train:
            return None
        idx = self.rng.integers(0, len(self.train), size=size)
        return (np.stack([self.train[i].image for i in idx]),
                np.array([self.train[i].label for i in idx], dtype=np.int64))

    def held_out(self) -> Tuple[np.ndarray, np.ndarray]:
        if not self.holdout:
            return np.zeros((0,), np.float32), np.zeros((0,), np.int64)
        return (np.stack([s.image for s in self.holdout]),
                np.array([s.label for s in self.holdout], dtype=np.int64))


class StampPairer:
    """Pairs an image and a label that carry the same header stamp (either may arrive first).

    Unpaired entries are kept for at most ``max_pending`` of each kind (oldest forgotten first).
    """

    def __init__(self, max_pending: int = 64) -> None:
        self.max_pending = max_pending
        self.images: "OrderedDict[Tuple[int, int], object]" = OrderedDict()
        self.labels: "OrderedDict[Tuple[int, int], Tuple[int, float]]" = OrderedDict()

    def _put(self, table: OrderedDict, key, value) -> None:
        table[key] = value
        while len(table) > self.max_pending:
            table.popitem(last=False)

    def add_image(self, stamp: Tuple[int, int], image) -> Optional[Tuple[object, int, float]]:
        if stamp in self.labels:
            label, score = self.labels.pop(stamp)
            return image, label, score
        self._put(self.images, stamp, image)
        return None

    def add_label(self, stamp: Tuple[int, int], label: int, score: float = 1.0
                  ) -> Optional[Tuple[object, int, float]]:
        if stamp in self.images:
            return self.images.pop(stamp), label, score
        self._put(self.labels, stamp, (label, score))
        return None

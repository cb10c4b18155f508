"""What one timed training step runs; shared by dlbench.py (the DLBench networks) and own_models.py
(effdl_ros's networks), so that neither imports the other's module to build one."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass
class Workload:
    """A model plus a synthetic data pool and its feed: what one timed step runs."""

    name: str
    model: object
    pool: list                       # host-memory batches, cycled through
    feed: Callable                   # (host batch, device) -> (inputs, targets) on the device
    loss: Callable                   # (model, inputs, targets) -> scalar loss
    samples_per_batch: int
    params: int = 0
    note: str = ""

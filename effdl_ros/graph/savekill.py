"""Kill -9 a process in the middle of checkpoint writes, many times, and check what is left.

Each trial forks a writer that saves the trainer's checkpoint in a loop with the trainer's own
consumer (effdl_ros.training.online CONSUMERS[kind].save: temp file in the same folder, fsync,
os.replace), SIGKILLs it after a random delay, and loads the file as a consumer node would
(CONSUMERS[kind].load: weights_only, inside model_dir). The baseline writes the same payload with a
plain torch.save onto the target path, the way a checkpoint is commonly written. A write takes most of
the loop, so most kills land mid-write (counted: a temp file left behind, or the baseline's file
shorter than a full one).
"""
from __future__ import annotations

import os
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from effdl_ros.errors import DataError


@dataclass
class SaveKillResult:
    method: str
    trials: int = 0
    loadable: int = 0
    mid_write: int = 0            # kills that left evidence of an interrupted write
    leftover_temp_files: int = 0  # temp files a killed atomic writer left in the folder
    file_bytes: int = 0
    seconds: float = 0.0
    errors: List[str] = field(default_factory=list)

    @property
    def unloadable(self) -> int:
        return self.trials - self.loadable


def _model(kind: str):
    import torch

    torch.manual_seed(0)
    if kind == "ddi":
        from effdl_ros.ddi.model import DDIConfig, DDINet

        return DDINet(DDIConfig(widths=(32, 64, 128), blocks=(2, 2, 2), image_size=28, exit_channels=16))
    raise ValueError(f"no save-kill model for consumer kind {kind!r}")


def run_save_kill(trials: int, workdir: Path, *, method: str = "atomic", kind: str = "ddi",
                  max_delay_s: float = 0.25, seed: int = 0) -> SaveKillResult:
    """`trials` fork + SIGKILL rounds; method "atomic" (the trainer's save) or "naive" (baseline)."""
    import torch

    from effdl_ros.graph.setups import DDI_META
    from effdl_ros.training.online import CONSUMERS

    if not hasattr(os, "fork"):
        raise RuntimeError("the save-kill trial needs os.fork (POSIX)")
    torch.set_num_threads(1)
    consumer = CONSUMERS[kind]()
    model = _model(kind)
    model_dir = Path(workdir) / f"models_{method}"
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / "model.pt"
    consumer.save(path, model, dict(DDI_META, version=0))  # the deployed model before any trial
    full_size = path.stat().st_size
    result = SaveKillResult(method=method, file_bytes=full_size)
    rng = random.Random(seed)
    start = time.perf_counter()
    for trial in range(trials):
        before = set(os.listdir(model_dir))
        pid = os.fork()
        if pid == 0:  # the writer: save new versions until killed
            try:
                version = trial * 100000
                while True:
                    version += 1
                    with torch.no_grad():
                        next(model.parameters()).add_(0.001)
                    meta = dict(DDI_META, version=version)
                    if method == "atomic":
                        consumer.save(path, model, meta)
                    else:
                        payload = {"format": "effdl_ros.ddi/1", "config": model.config.to_dict(), "meta": meta,
                                   "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()}}
                        torch.save(payload, str(path))
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0.01, max_delay_s))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        result.trials += 1
        leftovers = [n for n in set(os.listdir(model_dir)) - before if n.endswith(".tmp")]
        size = path.stat().st_size if path.exists() else 0
        if leftovers or (method != "atomic" and size != full_size):
            result.mid_write += 1
        try:
            consumer.load(path, model_dir)
            result.loadable += 1
        except DataError as err:
            if len(result.errors) < 3:
                result.errors.append(str(err))
            if method != "atomic":  # the baseline starts the next trial from a good file again
                consumer.save(path, model, dict(DDI_META, version=-1))
    result.leftover_temp_files = sum(1 for n in os.listdir(model_dir) if n.endswith(".tmp"))
    result.seconds = time.perf_counter() - start
    return result


def compare(trials: int, workdir: Path, *, seed: int = 0, max_delay_s: float = 0.25,
            methods: Optional[List[str]] = None) -> List[SaveKillResult]:
    return [run_save_kill(trials, workdir, method=m, seed=seed, max_delay_s=max_delay_s)
            for m in (methods or ["atomic", "naive"])]

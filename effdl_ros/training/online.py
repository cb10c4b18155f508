"""On-device fine-tuning of a consumer's model: replay buffer -> E2-Train steps -> guarded updates.

Everything the trainer node decides lives here (no ROS): which samples enter the buffer (labels, or
the consumer's own outputs above a confidence threshold), when a step is due (steps per second from
the budget), E2-Train's knobs (knobs.py), validation on the held-out part of the buffer against the
deployed model on the same samples (guard.py), and the atomic checkpoint of an accepted model.

A refused candidate is reset to the deployed weights, so a bad stretch of data cannot accumulate.
BatchNorm statistics stay frozen while fine-tuning (its affine weights still train): a robot's small
batches give unreliable batch statistics (measured on ddi_mnist5k.pt: the last exit's loss on a batch
of 16 was 0.01 with frozen statistics and 2.7, chance level, with batch statistics).
Consumers: "ddi" (effdl_ros.ddi checkpoints; loss = DDI's own: every exit's CE + its cost term;
SMD and PSG apply, SLU does not: DDI has its own gates) and "resnet" (this package's GatedResNet
checkpoints; SMD, SLU and PSG apply).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from effdl_ros.errors import ConfigError
from effdl_ros.training.e2train import E2TrainConfig, E2Trainer, StepResult
from effdl_ros.training.guard import GuardDecision, UpdateGuard
from effdl_ros.training.knobs import TrainerKnobs
from effdl_ros.training.replay_buffer import ReplayBuffer


# --- consumers ---------------------------------------------------------------------------------------
class Consumer:
    """How to load, save, feed and score one kind of consumer model."""

    kind = "?"
    supports_slu = False

    def load(self, path: Path, model_dir: Path) -> Tuple[nn.Module, Dict[str, Any]]:
        raise NotImplementedError

    def save(self, path: Path, model: nn.Module, meta: Dict[str, Any]) -> Path:
        raise NotImplementedError

    def preprocess(self, image: np.ndarray, meta: Dict[str, Any]) -> np.ndarray:
        raise NotImplementedError

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def logits(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def class_index(self, meta: Dict[str, Any], class_id: str) -> Optional[int]:
        classes = [str(c) for c in meta.get("classes", range(10))]
        return classes.index(class_id) if class_id in classes else None


class DdiConsumer(Consumer):
    kind = "ddi"

    def __init__(self, cost_weight: float = 4.0) -> None:
        self.cost_weight = cost_weight

    def load(self, path, model_dir):
        from effdl_ros.ddi.checkpoint import load_checkpoint

        model, meta = load_checkpoint(path, model_dir)
        return model, meta

    def save(self, path, model, meta):
        from effdl_ros.ddi.checkpoint import save_checkpoint

        return save_checkpoint(path, model, meta)

    def preprocess(self, image, meta):
        from effdl_ros.ddi.data import preprocess

        return preprocess(image, meta["mean"], meta["std"], self._size)[0].numpy()

    def bind(self, model) -> None:
        self._size = model.config.image_size
        self._gated = bool(model.config.gated)

    def loss(self, model, x, y):
        from effdl_ros.ddi.model import expected_cost_fraction

        out = model(x)
        loss = sum(F.cross_entropy(e, y) for e in out["exits"])
        if self._gated:
            share = expected_cost_fraction(model, out).mean()
            loss = loss + self.cost_weight * (share - self.target) ** 2
        return loss

    target = 0.5

    def logits(self, model, x):
        return model(x)["exits"][-1]


class ResNetConsumer(Consumer):
    kind = "resnet"
    supports_slu = True

    def load(self, path, model_dir):
        from effdl_ros.training.checkpoint import load_gated_resnet

        return load_gated_resnet(path, model_dir=model_dir)

    def save(self, path, model, meta):
        from effdl_ros.training.checkpoint import save_checkpoint

        return save_checkpoint(path, model.state_dict(), model.config.to_dict(), meta)

    def bind(self, model) -> None:
        self._size = int(getattr(model, "image_size", 0))

    def preprocess(self, image, meta):
        import cv2

        img = np.asarray(image)
        if img.ndim == 3:
            img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        size = int(meta.get("image_size", img.shape[0]))
        if img.shape[:2] != (size, size):
            img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
        x = img.astype(np.float32) / 255.0
        return ((x - float(meta.get("mean", 0.13))) / float(meta.get("std", 0.31)))[None]

    def loss(self, model, x, y):
        return F.cross_entropy(model(x), y)

    def logits(self, model, x):
        return model(x)


CONSUMERS: Dict[str, Callable[[], Consumer]] = {"ddi": DdiConsumer, "resnet": ResNetConsumer}


# --- the online trainer ----------------------------------------------------------------------------
@dataclass
class OnlineSettings:
    batch_size: int = 16
    lr: float = 0.01
    validate_every: int = 20          # executed steps between two validations
    min_train_samples: int = 32       # no training before the buffer holds this many
    min_holdout: int = 10             # no decision on fewer held-out samples
    capacity: int = 512
    holdout_every: int = 5
    pseudo_threshold: float = 0.9     # consumer outputs at or above this score become pseudo-labels
    tolerance: float = 0.0            # see UpdateGuard
    seed: int = 0

    def validated(self) -> "OnlineSettings":
        if not 0.0 < self.pseudo_threshold <= 1.0:
            raise ConfigError(f"pseudo_threshold must be in (0, 1], got {self.pseudo_threshold}")
        if self.batch_size < 1 or self.validate_every < 1:
            raise ConfigError("batch_size and validate_every must be >= 1")
        return self


@dataclass
class ModelUpdateInfo:
    path: Path
    version: int
    metric: float
    decision: GuardDecision


class RateLimiter:
    """Is a step due at time ``now`` (s) for a rate in steps per second? (0 = never)."""

    def __init__(self) -> None:
        self.last: Optional[float] = None

    def due(self, now: float, rate: float) -> bool:
        if rate <= 0.0:
            return False
        if self.last is None or now - self.last >= 1.0 / rate - 1e-9:
            self.last = now
            return True
        return False


class OnlineTrainer:
    def __init__(self, consumer: Consumer, model_path: Path, model_dir: Path, *,
                 settings: OnlineSettings = OnlineSettings(), knobs: TrainerKnobs = TrainerKnobs(),
                 out_dir: Optional[Path] = None, device="cpu") -> None:
        self.consumer = consumer
        self.device = torch.device(device)  # the models and each step's batch live here
        self.settings = settings.validated()
        self.model_dir = Path(model_dir)
        self.out_dir = Path(out_dir) if out_dir is not None else self.model_dir
        deployed, meta = consumer.load(Path(model_path).absolute(), self.model_dir)
        consumer.bind(deployed)
        self.meta = meta
        self.stem = Path(model_path).stem
        self.deployed = deployed.to(self.device).eval()
        self.model = copy.deepcopy(deployed)
        slu = consumer.supports_slu and getattr(self.model, "gates", None) is not None
        self.trainer = E2Trainer(self.model, E2TrainConfig(
            lr=settings.lr, batch_size=settings.batch_size, smd_rate=knobs.smd_rate, slu=slu,
            slu_target=knobs.slu_target, psg=True, seed=settings.seed, freeze_bn=True))
        self.model.to(self.device)  # PSG's swapped-in convolutions bring CPU buffers
        self.trainer.loss_fn = consumer.loss
        self.trainer.set_knobs(knobs)
        self.buffer = ReplayBuffer(settings.capacity, holdout_every=settings.holdout_every,
                                   seed=settings.seed)
        self.guard = UpdateGuard(tolerance=settings.tolerance, min_samples=settings.min_holdout)
        self.rate = RateLimiter()
        self.executed_since_validation = 0
        self.version = int(meta.get("version", 0))
        self.guard.version = self.version
        self.pseudo_added = 0
        self.labelled_added = 0

    # -- samples ------------------------------------------------------------------------------
    def add_labelled(self, image: np.ndarray, label: int) -> None:
        self.buffer.add(self.consumer.preprocess(image, self.meta), label)
        self.labelled_added += 1

    def add_prediction(self, image: np.ndarray, label: int, score: float) -> bool:
        """A consumer output becomes a pseudo-label only when its score >= pseudo_threshold."""
        if not (score >= self.settings.pseudo_threshold):
            return False
        self.buffer.add(self.consumer.preprocess(image, self.meta), label, pseudo=True)
        self.pseudo_added += 1
        return True

    # -- training ------------------------------------------------------------------------------
    def set_knobs(self, knobs: TrainerKnobs) -> None:
        self.trainer.set_knobs(knobs)

    def ready(self) -> bool:
        return (len(self.buffer.train) >= self.settings.min_train_samples
                and not self.trainer.knobs.paused)

    def step(self) -> Optional[StepResult]:
        """One E2-Train iteration on a buffer batch (None when not ready); SMD may drop it."""
        if not self.ready():
            return None
        if self.trainer.drop():
            return StepResult(executed=False)
        return self.train_step()

    def train_step(self) -> StepResult:
        """Execute one step now (the caller already let SMD decide, e.g. to account only real work)."""
        x, y = self.buffer.batch(self.settings.batch_size)
        from effdl_ros.device import to_device

        res = self.trainer._execute(to_device(x, self.device), to_device(y, self.device))
        self.executed_since_validation += 1
        return res

    def metric(self, model: nn.Module) -> Tuple[float, int]:
        """Top-1 accuracy on the held-out part of the buffer, and how many samples it used."""
        x, y = self.buffer.held_out()
        if len(y) == 0:
            return math.nan, 0
        model.eval()
        with torch.no_grad():
            from effdl_ros.device import to_device

            pred = self.consumer.logits(model, to_device(x, self.device)).argmax(1).cpu().numpy()
        return float((pred == y).mean()), int(len(y))

    def validation_due(self) -> bool:
        return self.executed_since_validation >= self.settings.validate_every

    def validate(self) -> Tuple[GuardDecision, Optional[ModelUpdateInfo]]:
        """Compare candidate vs deployed on the held-out samples; save + return an update if accepted."""
        self.executed_since_validation = 0
        cand, n = self.metric(self.model)
        dep, _ = self.metric(self.deployed)
        decision = self.guard.decide(cand, dep, n)
        if not decision.accept:
            self.model.load_state_dict(self.deployed.state_dict())  # drop the bad candidate
            return decision, None
        self.version = self.guard.version
        meta = dict(self.meta, version=self.version, validation_top1=cand,
                    trained_steps=self.trainer.stats.executed_iterations)
        path = self.out_dir / f"{self.stem}_ft_v{self.version}.pt"
        self.consumer.save(path, self.model, meta)
        self.deployed.load_state_dict(self.model.state_dict())
        return decision, ModelUpdateInfo(path, self.version, cand, decision)

"""E2-Train's training step (Wang et al., NeurIPS 2019, arXiv 1910.13349), with REAL savings.

Three switchable parts (REFERENCES.md section 1):
- SMD, stochastic mini-batch dropping: u ~ U(0,1) per iteration; with probability ``smd_rate`` the batch
  is skipped before any forward or backward (the iteration still advances the learning-rate schedule,
  as in the paper). A dropped batch costs nothing.
- SLU, selective layer update: gates in GatedResNet decide per sample (or, ``slu_unit="batch"``, per
  mini-batch) which blocks run; a block is computed only where its gate fired (resnet.py). Loss =
  CE + reg * beta * R, reg = -1 while the fired share <= target, else +1 (we set the target; the
  original default 100 % always rewarded more compute); R = mean gate logit (``slu_reg="logit"``) or
  E2-Train's sum of masks (``"prob"``).
- PSG, predictive sign gradients (psg.py): conv weight gradients are predicted signs; their saving is
  MODELLED (no low-bit kernels on a CPU), see ``modelled_energy_j``.
Executed MACs are counted from what ran (macs.py); wall time is measured by the callers.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from effdl_ros.training.knobs import TrainerKnobs
from effdl_ros.training.macs import MacCounter, MacTally
from effdl_ros.training.psg import PsgBits, PsgStats, convert_to_psg, mac_energy_pj, set_psg, sign_parameters
from effdl_ros.training.resnet import GatedResNet


@dataclass
class E2TrainConfig:
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    batch_size: int = 64
    epochs: int = 10
    lr_drops: Tuple[float, ...] = (2.0 / 3.0,)  # lr x0.1 at these shares of the run (E2-Train: 2/3)
    smd_rate: float = 0.0
    slu: bool = False
    slu_target: float = 0.5
    slu_beta: float = 1e-2              # E2-Train's beta is 1e-5 over 35 gates and 64k iterations
    slu_unit: str = "batch"             # gate decision per "batch" (whole-batch skips) or "sample"
    slu_anneal: float = 0.0             # share of the run over which the target falls from 1 to slu_target
    #: "logit": the regulariser reg * beta * mean of the gates' logits (its push on a gate does not
    #: vanish when the gate saturates); "prob": E2-Train's reg * beta * sum of the masks (gradient
    #: through p = sigmoid(z), which vanishes as p -> 0: measured, MNIST-5k's batch gates died)
    slu_reg: str = "logit"
    psg: bool = False
    psg_threshold: float = 5e-5
    psg_lr: float = 2e-3                # lr of the sign-updated conv weights (a sign has magnitude 1)
    freeze_bn: bool = False             # BN in eval mode while training (small on-device batches)
    seed: int = 0

    def knobs(self) -> TrainerKnobs:
        return TrainerKnobs(smd_rate=self.smd_rate, slu_target=self.slu_target, psg=self.psg)


@dataclass
class StepResult:
    executed: bool
    loss: float = math.nan
    fired_fraction: float = 1.0         # share of gated blocks that ran (1 without SLU)
    macs: int = 0                       # executed training MACs of this step


@dataclass
class TrainStats:
    iterations: int = 0
    executed_iterations: int = 0
    samples_seen: int = 0
    macs: MacTally = field(default_factory=MacTally)
    fired_sum: float = 0.0
    loss_sum: float = 0.0
    wall_s: float = 0.0

    @property
    def mean_fired(self) -> float:
        return self.fired_sum / self.executed_iterations if self.executed_iterations else 1.0

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / self.executed_iterations if self.executed_iterations else math.nan


class E2Trainer:
    """One model, one optimiser, knobs that may change between steps (the trainer node's budget)."""

    def __init__(self, model: GatedResNet, config: E2TrainConfig) -> None:
        self.model = model
        self.config = config
        self.knobs = config.knobs().validated()
        self.rng = np.random.default_rng(config.seed)
        self.psg_stats: Optional[PsgStats] = None
        if config.psg:
            self.psg_stats = convert_to_psg(model, threshold=config.psg_threshold)
        if config.slu and getattr(model, "gates", None) is None:
            raise ValueError("SLU needs a model built with gates=True")
        signed = {id(p) for p in sign_parameters(model)}
        plain = [p for p in model.parameters() if id(p) not in signed]
        groups = [{"params": plain, "lr": config.lr, "base_lr": config.lr}]
        if signed:
            groups.append({"params": sign_parameters(model), "lr": config.psg_lr,
                           "base_lr": config.psg_lr, "weight_decay": 0.0})
        self.optimizer = torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                                         weight_decay=config.weight_decay)
        self.counter = MacCounter(model, training=True)
        self.stats = TrainStats()
        #: (model, x, y) -> loss; the default is cross entropy of model(x). The trainer node sets
        #: another for consumers whose forward returns several exits (DDI).
        self.loss_fn: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] = (
            lambda m, x, y: F.cross_entropy(m(x), y))
        #: called after backward, before the optimiser step (Early-Bird's slimming L1 goes here)
        self.grad_hook: Optional[Callable[[nn.Module], None]] = None
        #: SLU target of the current iteration while ``fit`` anneals it (None: the knob's target)
        self.current_target: Optional[float] = None

    # -- knobs ----------------------------------------------------------------------------------
    def set_knobs(self, knobs: TrainerKnobs) -> None:
        """Apply new knobs between steps; PSG off gives the conv weights float gradients and the lr."""
        self.knobs = knobs.validated()
        set_psg(self.model, knobs.psg)
        if len(self.optimizer.param_groups) > 1:
            scale = self.optimizer.param_groups[0]["lr"] / self.optimizer.param_groups[0]["base_lr"]
            group = self.optimizer.param_groups[1]
            group["base_lr"] = self.config.psg_lr if knobs.psg else self.config.lr
            group["weight_decay"] = 0.0 if knobs.psg else self.config.weight_decay
            group["lr"] = group["base_lr"] * scale

    def set_lr_scale(self, scale: float) -> None:
        for g in self.optimizer.param_groups:
            g["lr"] = g["base_lr"] * scale

    # -- one iteration --------------------------------------------------------------------------
    def drop(self) -> bool:
        """Counts one iteration; True when it must do nothing (paused, or SMD drops the batch)."""
        self.stats.iterations += 1
        if self.knobs.paused:
            return True
        return self.knobs.smd_rate > 0.0 and self.rng.random() < self.knobs.smd_rate

    def step(self, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        """One E2-Train iteration; returns at once (no work at all) when SMD drops the batch."""
        if self.drop():
            return StepResult(executed=False)  # SMD: dropped before any forward or backward
        return self._execute(x, y)

    def _execute(self, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        model = self.model
        model.train()
        if self.config.freeze_bn:
            for m in model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        use_slu = getattr(model, "gates", None) is not None and self.config.slu
        if hasattr(model, "force_full"):
            model.force_full = not use_slu
        before = self.counter.tally.total
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(model, x, y)
        fired = 1.0
        total = loss
        if use_slu and model.last_masks is not None:
            fired = float(model.last_masks.mean())
            target = self.knobs.slu_target if self.current_target is None else self.current_target
            reg = -1.0 if fired <= target else 1.0
            if self.config.slu_reg == "logit":
                # constant push reg * beta / n_gates on every gate's logit, also at saturation
                total = loss + reg * self.config.slu_beta * model.last_logits.mean()
            else:
                # reg * beta * sum of straight-through masks: its gradient w.r.t. each p is
                # reg * beta, the same as that of sum(p), which is what we add
                total = loss + reg * self.config.slu_beta * model.last_probs.sum(1).mean()
        total.backward()
        if self.grad_hook is not None:
            self.grad_hook(model)
        self.optimizer.step()
        st = self.stats
        st.executed_iterations += 1
        st.samples_seen += int(x.shape[0])
        st.fired_sum += fired
        st.loss_sum += float(loss.detach())
        macs = self.counter.tally.total - before
        return StepResult(executed=True, loss=float(loss.detach()), fired_fraction=fired, macs=macs)

    # -- a whole run ----------------------------------------------------------------------------
    def fit(self, images: torch.Tensor, labels: torch.Tensor, *, start_epoch: int = 0,
            stop_epoch: Optional[int] = None,
            on_iteration: Optional[Callable[[int, int, StepResult], None]] = None,
            on_epoch_end: Optional[Callable[[int], bool]] = None) -> TrainStats:
        """Epochs start_epoch..stop_epoch-1 of a config.epochs-long schedule (lr x0.1 at lr_drops).

        ``on_epoch_end(epoch)`` returning True stops the run early.
        """
        t0 = time.perf_counter()
        for _ in self.iter_fit(images, labels, start_epoch=start_epoch, stop_epoch=stop_epoch,
                               on_iteration=on_iteration, on_epoch_end=on_epoch_end):
            pass
        self.stats.wall_s += time.perf_counter() - t0
        return self.stats

    def iter_fit(self, images: torch.Tensor, labels: torch.Tensor, *, start_epoch: int = 0,
                 stop_epoch: Optional[int] = None,
                 on_iteration: Optional[Callable[[int, int, StepResult], None]] = None,
                 on_epoch_end: Optional[Callable[[int], bool]] = None) -> Iterator[StepResult]:
        """``fit`` one iteration at a time (yields each iteration's result), so that a benchmark can
        interleave several trainers' iterations and time each one under the same machine load."""
        cfg = self.config
        stop_epoch = cfg.epochs if stop_epoch is None else stop_epoch
        n = images.shape[0]
        per_epoch = max(1, n // cfg.batch_size)
        total = per_epoch * cfg.epochs
        gen = torch.Generator().manual_seed(cfg.seed + start_epoch)
        it = start_epoch * per_epoch
        for epoch in range(start_epoch, stop_epoch):
            order = torch.randperm(n, generator=gen)
            for b in range(per_epoch):
                self.set_lr_scale(0.1 ** sum(it >= d * total for d in cfg.lr_drops))
                if cfg.slu and cfg.slu_anneal > 0:  # target: 1 -> slu_target, linearly
                    share = min(1.0, it / (cfg.slu_anneal * total))
                    self.current_target = 1.0 - (1.0 - self.knobs.slu_target) * share
                idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
                if self.drop():  # dropped: not even the batch is gathered
                    res = StepResult(executed=False)
                else:
                    res = self._execute(images[idx], labels[idx])
                it += 1
                if on_iteration is not None:
                    on_iteration(it, total, res)
                self.stats.macs = self.counter.tally
                yield res
            if on_epoch_end is not None and on_epoch_end(epoch):
                break
        self.stats.macs = self.counter.tally

    def close(self) -> None:
        self.counter.remove()


def evaluate(model: GatedResNet, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 256,
             full: bool = False, gates: str = "hard", seed: int = 0) -> Tuple[float, float]:
    """(top-1 accuracy, mean share of gated blocks run); ``full`` runs every block.

    ``gates``: "hard" fires where p > 0.5; "sample" draws Bernoulli(p) as in training (seeded).
    """
    model.eval()
    model.eval_gates = gates
    torch.manual_seed(seed)
    saved = model.force_full
    model.force_full = full or model.gates is None
    correct, fired, batches = 0, 0.0, 0
    with torch.no_grad():
        for i in range(0, images.shape[0], batch_size):
            out = model(images[i:i + batch_size])
            correct += int((out.argmax(1) == labels[i:i + batch_size]).sum())
            if model.last_masks is not None:
                fired += float((model.last_masks > 0.5).float().mean())
            else:
                fired += 1.0
            batches += 1
    model.force_full = saved
    return correct / max(1, images.shape[0]), fired / max(1, batches)


def modelled_energy_j(macs: MacTally, *, psg: bool = False, psg_predicted_fraction: float = 0.0,
                      bits: PsgBits = PsgBits()) -> float:
    """Modelled compute energy of the executed training MACs (psg.mac_energy_pj; memory not counted).

    Without PSG every MAC is float32. With PSG, convolutions: forward 8x8 bit, input gradient
    8 x main_grad bit, weight gradient 4x16 bit (predictor, every entry) plus 8 x main_grad bit for the
    share of entries whose predicted gradient was below threshold (1 - predicted fraction); everything
    else (BN, classifier, gates) float32.
    """
    fp = mac_energy_pj(32, 32)
    if not psg:
        return macs.total * fp * 1e-12
    conv_fwd, conv_wg, conv_ig = macs.conv_forward, macs.conv_weight_grad, macs.conv_input_grad
    other = macs.total - conv_fwd - conv_wg - conv_ig
    pj = (conv_fwd * mac_energy_pj(bits.main, bits.main)
          + conv_ig * mac_energy_pj(bits.main, bits.main_grad)
          + conv_wg * mac_energy_pj(bits.predictor_input, bits.predictor_grad)
          + conv_wg * (1.0 - psg_predicted_fraction) * mac_energy_pj(bits.main, bits.main_grad)
          + other * fp)
    return pj * 1e-12


def to_tensors(images: np.ndarray, labels: np.ndarray) -> Tuple[torch.Tensor, torch.Tensor]:
    """uint8 [N, H, W] -> float [N, 1, H, W], (x/255 - 0.13) / 0.31 (MNIST's mean and std), int64 labels."""
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    x = (x - 0.13) / 0.31
    return x, torch.from_numpy(labels.astype(np.int64))

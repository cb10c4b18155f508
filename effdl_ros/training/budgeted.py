"""Budgeted training: the normal recipe, shortened to a compute budget, lr decayed linearly to zero.

The strong simple baseline for any training-efficiency method (Li, Yumer and Ramanan, "Budgeted
Training: Rethinking Deep Neural Network Training Under Resource Constraints", ICLR 2020): give plain
training exactly the executed MACs (or the modelled joules) the method used, and let its learning
rate fall linearly to zero at the end of that budget. Without this row a saving is measured against
an over-long schedule.

Executed MACs are counted from what ran (macs.py); a dense iteration's MACs are the same every time,
so the number of iterations that spends a budget is the budget over one iteration's MACs, rounded.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, replace
from typing import Optional

import torch
from torch import nn

from effdl_ros.errors import ConfigError
from effdl_ros.training.e2train import E2TrainConfig, E2Trainer, modelled_energy_j
from effdl_ros.training.macs import MacCounter
from effdl_ros.training.psg import mac_energy_pj


def linear_decay(step: int, total: int) -> float:
    """lr scale at ``step`` of a ``total``-step budget: 1 at step 0, falling linearly to 0 at ``total``."""
    if total <= 0:
        raise ConfigError(f"a budgeted schedule needs at least one step, got {total}")
    return max(0.0, 1.0 - step / total)


def macs_for_energy(energy_j: float) -> float:
    """The fp32 training MACs that cost ``energy_j`` modelled joules (e2train.modelled_energy_j)."""
    return energy_j / (mac_energy_pj(32, 32) * 1e-12)


def train_macs_per_iteration(model: nn.Module, sample: torch.Tensor, batch_size: int) -> int:
    """Training MACs (forward + backward, counted) of one full mini-batch through ``model``."""
    probe = copy.deepcopy(model)
    probe.train()
    if hasattr(probe, "force_full"):
        probe.force_full = True
    counter = MacCounter(probe, training=True)
    probe(sample[:2])
    counter.remove()
    return counter.tally.total // 2 * batch_size


def iterations_for(target_macs: float, macs_per_iteration: int) -> int:
    """Iterations of plain training that execute ``target_macs`` (at least one)."""
    if not target_macs > 0:
        raise ConfigError(f"the MAC budget must be > 0, got {target_macs}")
    return max(1, int(round(target_macs / macs_per_iteration)))


@dataclass
class BudgetedResult:
    iterations: int
    target_macs: float
    executed_train_macs: int      # measured count of what ran
    modelled_energy_j: float      # executed MACs x fp32 energy per MAC (modelled)
    wall_s: float                 # measured
    final_lr_scale: float         # 0: the schedule ended at zero


def budgeted_fit(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, target_macs: float,
                 config: Optional[E2TrainConfig] = None, trainable: Optional[list] = None
                 ) -> BudgetedResult:
    """Train ``model`` plainly (no SMD, no SLU, no PSG) for the iterations that spend ``target_macs``.

    Shuffled epochs over (images, labels) with ``config``'s optimiser settings; lr = base x
    linear_decay(step). ``trainable``: only these parameters learn (the rest are frozen, and
    frozen layers' weight gradients are then not counted, since they are not computed).
    """
    cfg = config or E2TrainConfig()
    cfg = replace(cfg, smd_rate=0.0, slu=False, psg=False)
    if trainable is not None:
        keep = {id(p) for p in trainable}
        for p in model.parameters():
            p.requires_grad_(id(p) in keep)
    batch = min(cfg.batch_size, images.shape[0])
    per_iteration = train_macs_per_iteration(model, images, batch)
    total = iterations_for(target_macs, per_iteration)
    trainer = E2Trainer(model, replace(cfg, batch_size=batch))
    if trainable is not None:  # the optimiser must not decay frozen weights
        for g in trainer.optimizer.param_groups:
            g["params"] = [p for p in g["params"] if p.requires_grad]
    gen = torch.Generator().manual_seed(cfg.seed)
    n = images.shape[0]
    per_epoch = max(1, n // batch)
    t0 = time.perf_counter()
    step = 0
    while step < total:
        order = torch.randperm(n, generator=gen)
        for b in range(per_epoch):
            if step >= total:
                break
            trainer.set_lr_scale(linear_decay(step, total))
            idx = order[b * batch:(b + 1) * batch]
            trainer._execute(images[idx], labels[idx])
            step += 1
    trainer.set_lr_scale(linear_decay(total, total))
    wall = time.perf_counter() - t0
    tally = trainer.counter.tally
    trainer.close()
    if trainable is not None:
        for p in model.parameters():
            p.requires_grad_(True)
    return BudgetedResult(iterations=total, target_macs=float(target_macs),
                          executed_train_macs=tally.total, modelled_energy_j=modelled_energy_j(tally),
                          wall_s=wall, final_lr_scale=trainer.optimizer.param_groups[0]["lr"]
                          / trainer.optimizer.param_groups[0]["base_lr"])

"""Training DDI (and the static baselines) on CPU.

Loss (DDI, arXiv 1907.04523, as in the same group's SLU design): the sum of every exit's cross entropy
plus cost_weight x (mean executed share of the gateable block MACs - target)^2, the share being
differentiable through the straight-through gates. The first warmup epochs train with every gate on so
that the backbone and exits learn before the gates start to skip.

Two optional additions (ours, not in the paper's description): *budget truncation*, where a share of
the items in each batch has every skippable block from a random point on force-skipped, as the
engine's per-block budget halting does, so that the exits stay accurate under tight budgets (the
cost term is taken over the other items only); and *distillation* from a trained static network
(Hinton et al. 2015): each exit's loss is (1 - w) x cross entropy + w x T^2 x KL(teacher || exit) at
temperature T.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

from effdl_ros.ddi.data import Task
from effdl_ros.ddi.model import DDIConfig, DDINet, expected_cost_fraction


@dataclass
class TrainSettings:
    epochs: int = 6
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    target: float = 0.5             # wanted share of gateable block MACs (DDI only)
    cost_weight: float = 4.0
    warmup_epochs: int = 1
    flip: bool = False              # random horizontal flips (street scenes, not digits)
    seed: int = 0
    max_seconds: float = math.inf   # stop early (after the current epoch) past this wall time
    init_state: Optional[Dict] = None   # backbone weights to start from (a trained static network)
    truncate_prob: float = 0.0      # share of items trained with a random budget truncation
    teacher: Optional[torch.nn.Module] = None   # static network to distil from (final exit logits)
    distill: float = 0.0            # weight w of the distillation term
    temperature: float = 4.0
    device: str = "cpu"


@dataclass
class TrainResult:
    model: DDINet
    history: List[Dict] = field(default_factory=list)
    seconds: float = 0.0


@torch.no_grad()
def evaluate(model: DDINet, x: np.ndarray, y: np.ndarray, batch_size: int = 512) -> Dict:
    """Per-exit accuracy and mean gated block share, batched (the masked graph; for speed only)."""
    model.eval()
    device = next(model.parameters()).device
    correct = None
    cost = 0.0
    for i in range(0, len(x), batch_size):
        xb = torch.from_numpy(x[i: i + batch_size]).to(device)
        yb = torch.from_numpy(y[i: i + batch_size]).to(device)
        out = model(xb)
        hits = [int((e.argmax(1) == yb).sum()) for e in out["exits"]]
        correct = hits if correct is None else [a + b for a, b in zip(correct, hits)]
        if model.config.gated:
            cost += float(expected_cost_fraction(model, out).sum())
    n = max(1, len(x))
    return {"exit_acc": [c / n for c in correct], "gate_share": cost / n if model.config.gated else 1.0}


def init_from(model: DDINet, state: Dict) -> int:
    """Copy a static network's weights into the DDI net: every tensor whose name and shape match, and
    the static final classifier into the last exit. Returns how many tensors were copied."""
    own = model.state_dict()
    last = f"heads.{model.num_exits - 1}."
    copied = {}
    for name, value in state.items():
        target = name if name in own else None
        if name.startswith("heads.0.") and not name.startswith(last):
            target = last + name[len("heads.0."):]
            if target in own and model.num_exits > 1 and own[target].shape == value.shape:
                copied[target] = value
                continue
        if target is not None and own[target].shape == value.shape and not name.startswith("heads."):
            copied[target] = value
    own.update(copied)
    model.load_state_dict(own)
    return len(copied)


@torch.no_grad()
def recalibrate_bn(model: DDINet, x: np.ndarray, max_items: int = 2000, batch_size: int = 250) -> None:
    """Re-estimate BatchNorm statistics as exact averages over training items, gates as at inference.

    A few hundred CPU steps leave the running averages far behind the weights; the exact averages
    make eval-mode accuracy match what the network has learned.
    """
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None                      # cumulative average
    model.train()
    device = next(model.parameters()).device
    idx = np.linspace(0, len(x) - 1, min(max_items, len(x))).round().astype(int)
    for i in range(0, len(idx), batch_size):
        model(torch.from_numpy(x[idx[i: i + batch_size]]).to(device))
    for m, mom in zip(bns, saved):
        m.momentum = mom
    model.eval()


def truncation_mask(rng: np.random.Generator, items: int, n_blocks: int, prob: float):
    """(keep [items, n_blocks] float 0/1, truncated [items] bool): each item is truncated with
    probability prob, and then every block from a uniformly drawn index in [0, n_blocks) on is
    force-skipped (keep 0; only layer-gated blocks obey it), as the engine's budget halting does."""
    truncated = torch.from_numpy(rng.random(items) < prob)
    cut = torch.from_numpy(rng.integers(0, n_blocks, items))
    keep = torch.arange(n_blocks)[None, :] < torch.where(truncated, cut, torch.full_like(cut, n_blocks))[:, None]
    return keep.float(), truncated


def train(task: Task, config: DDIConfig, settings: TrainSettings,
          progress: Optional[Callable[[int, int, Dict], None]] = None) -> TrainResult:
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    model = DDINet(config)
    if settings.init_state is not None:
        init_from(model, settings.init_state)
    device = torch.device(settings.device)
    model.to(device)
    teacher = None
    if settings.teacher is not None and settings.distill > 0:
        teacher = settings.teacher.to(device).eval()
    n_blocks = len(model.blocks())
    gate_params = [p for n, p in model.named_parameters() if ".gate." in n]
    other = [p for n, p in model.named_parameters() if ".gate." not in n]
    # gates get a 10x learning rate so that they can move within a few CPU epochs
    groups = [{"params": other}] + ([{"params": gate_params, "lr": settings.lr * 10, "weight_decay": 0.0}]
                                    if gate_params else [])
    opt = torch.optim.AdamW(groups, lr=settings.lr, weight_decay=settings.weight_decay)
    steps_per_epoch = math.ceil(len(task.x_train) / settings.batch_size)
    total = settings.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g.get("lr", settings.lr) for g in groups], total_steps=total, pct_start=0.15)
    start = time.perf_counter()
    result = TrainResult(model)
    step = 0
    for epoch in range(settings.epochs):
        model.train()
        order = rng.permutation(len(task.x_train))
        force_on = epoch < settings.warmup_epochs
        stats = {"loss": 0.0, "share": 0.0, "n": 0}
        for i in range(0, len(order), settings.batch_size):
            idx = order[i: i + settings.batch_size]
            xb = torch.from_numpy(task.x_train[idx])
            if settings.flip:
                flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
                xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            yb = torch.from_numpy(task.y_train[idx])
            keep = truncated = None
            if config.gated and settings.truncate_prob > 0:
                keep, truncated = truncation_mask(rng, len(idx), n_blocks, settings.truncate_prob)
                keep, truncated = keep.to(device), truncated.to(device)
            xb, yb = xb.to(device), yb.to(device)
            out = model(xb, force_on=force_on, keep=keep)
            if teacher is not None:
                with torch.no_grad():
                    soft = F.log_softmax(teacher(xb)["exits"][-1] / settings.temperature, 1)
                w, t = settings.distill, settings.temperature
                loss = sum((1 - w) * F.cross_entropy(e, yb) + w * t * t * F.kl_div(
                    F.log_softmax(e / t, 1), soft, log_target=True, reduction="batchmean") for e in out["exits"])
            else:
                loss = sum(F.cross_entropy(e, yb) for e in out["exits"])
            if config.gated and not force_on:
                per_item = expected_cost_fraction(model, out)
                if truncated is not None:
                    full = (~truncated).float()
                    share = (per_item * full).sum() / full.sum().clamp(min=1.0)
                else:
                    share = per_item.mean()
                loss = loss + settings.cost_weight * (share - settings.target) ** 2
                stats["share"] += float(share.detach()) * len(idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            stats["loss"] += float(loss.detach()) * len(idx)
            stats["n"] += len(idx)
            if progress is not None:
                progress(step, total, {"epoch": epoch, "loss": float(loss.detach())})
        recalibrate_bn(model, task.x_train)
        ev = evaluate(model, task.x_test, task.y_test)
        rec = {"epoch": epoch, "loss": stats["loss"] / stats["n"], "train_share": stats["share"] / stats["n"]
               if not force_on and config.gated else 1.0, **ev, "seconds": time.perf_counter() - start}
        result.history.append(rec)
        if time.perf_counter() - start > settings.max_seconds:
            break
    result.seconds = time.perf_counter() - start
    model.cpu().eval()
    return result

"""The training runs behind `effdl-ros train e2train` and `prune eb`, and their building blocks (no
printing); the side-by-side benchmarks on top of them are effdl_ros.bench.training.

Every figure returned says whether it is measured (accuracy, executed MAC counts, wall time) or
modelled (energy: executed MACs x per-MAC energy of psg.mac_energy_pj, compute only).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import torch

from effdl_ros.errors import ConfigError
from effdl_ros.training.e2train import E2TrainConfig, E2Trainer, StepResult, evaluate, modelled_energy_j, to_tensors
from effdl_ros.training.early_bird import EarlyBirdDetector, add_slimming_grad, bn_mask
from effdl_ros.training.macs import MacCounter, inference_macs
from effdl_ros.training.resnet import GatedResNet, ResNetConfig, build

#: default image side per data set (sklearn's 8x8 digits are upscaled; MNIST keeps 28 with a stride-2 stem)
DATA_DEFAULTS = {"sklearn": dict(size=16, stem_stride=1), "mnist5k": dict(size=28, stem_stride=2),
                 "opencv": dict(size=20, stem_stride=1)}


@dataclass
class Data:
    name: str
    size: int
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def load_data(name: str, size: Optional[int] = None, *, test_fraction: float = 0.2, seed: int = 0) -> Data:
    from effdl_ros.data.digits import load_named, split

    if name not in DATA_DEFAULTS:
        raise ConfigError(f"--data must be one of {sorted(DATA_DEFAULTS)}, got {name!r}")
    size = size or DATA_DEFAULTS[name]["size"]
    images, labels = load_named(name, size)
    (tr_x, tr_y), (te_x, te_y) = split(images, labels, test_fraction, seed)
    x_tr, y_tr = to_tensors(tr_x, tr_y)
    x_te, y_te = to_tensors(te_x, te_y)
    return Data(name, size, x_tr, y_tr, x_te, y_te)


def validation_split(data: Data, fraction: float = 0.2, seed: int = 123) -> Data:
    """Hold out ``fraction`` of the TRAINING split as the evaluation set (the test split is dropped):
    for choosing settings without looking at the test split."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(data.x_train.shape[0], generator=g)
    n_val = int(data.x_train.shape[0] * fraction)
    val, train = perm[:n_val], perm[n_val:]
    return Data(data.name, data.size, data.x_train[train], data.y_train[train],
                data.x_train[val], data.y_train[val])


def parse_arch(spec: str) -> Tuple[int, int]:
    """'resnet20' -> 3 blocks per stage (depth = 6n + 2); optional ':W' base width, e.g. resnet32:8."""
    name, _, width = spec.partition(":")
    if not name.startswith("resnet"):
        raise ConfigError(f"--model {spec!r}: expected resnetD[:W] (D = 6n+2) or a checkpoint path")
    try:
        depth = int(name[len("resnet"):])
        w = int(width) if width else 16
    except ValueError:
        raise ConfigError(f"--model {spec!r}: expected resnetD[:W], e.g. resnet32:8") from None
    if depth < 8 or (depth - 2) % 6:
        raise ConfigError(f"--model {spec!r}: depth must be 6n+2 >= 8 (8, 14, 20, 32, 44, 56, 74, 110)")
    return (depth - 2) // 6, w


def make_config(arch: str, data: Data, *, gates: bool = False, gate_bias: float = 2.0,
                gate_unit: str = "sample") -> ResNetConfig:
    n, w = parse_arch(arch)
    return ResNetConfig(blocks=(n, n, n), widths=(w, 2 * w, 4 * w), in_channels=1, num_classes=10,
                        stem_stride=DATA_DEFAULTS[data.name]["stem_stride"], gates=gates,
                        gate_bias=gate_bias, gate_unit=gate_unit)


def dense_train_macs_per_sample(model: GatedResNet, sample: torch.Tensor) -> int:
    """Training MACs (forward + backward) of one sample through EVERY block of ``model``."""
    probe = copy.deepcopy(model)
    probe.train()
    probe.force_full = True
    counter = MacCounter(probe, training=True)
    probe(sample[:2])
    counter.remove()
    return counter.tally.total // 2


# --- E2-Train ------------------------------------------------------------------------------------
VARIANTS: Dict[str, dict] = {
    "full": dict(smd_rate=0.0),
    "SMD": dict(smd_rate=0.5),
    "SMD+SLU": dict(smd_rate=0.5, slu=True),
    "SMD+SLU+PSG": dict(smd_rate=0.5, slu=True, psg=True),
}


def prepare_e2train(data: Data, arch: str, config: E2TrainConfig, *, gate_bias: float = 2.0
                    ) -> Tuple[GatedResNet, E2Trainer, int]:
    """A seeded model and its trainer; also the dense training MACs of one sample (for shares)."""
    torch.manual_seed(config.seed)
    model = build(make_config(arch, data, gates=config.slu, gate_bias=gate_bias,
                              gate_unit=config.slu_unit))
    dense_per_sample = dense_train_macs_per_sample(model, data.x_train)
    return model, E2Trainer(model, config), dense_per_sample


def e2train_result(model: GatedResNet, trainer: E2Trainer, data: Data, config: E2TrainConfig,
                   dense_per_sample: int, wall: float) -> dict:
    """Score a trained variant; the measured and modelled figures of one run."""
    stats = trainer.stats
    trainer.close()
    # E2-Train saves TRAINING energy; the trained net is scored with every block scaled by its gate
    # probability (stochastic depth's test rule). Hard gating (p > 0.5) and sampled gating, which
    # also skip work at inference, are reported beside it.
    gated = model.gates is not None
    acc = evaluate(model, data.x_test, data.y_test, gates="expected")[0]
    acc_hard, fired = evaluate(model, data.x_test, data.y_test, gates="hard")
    acc_sample, fired_sample = evaluate(model, data.x_test, data.y_test, gates="sample")
    acc_full = evaluate(model, data.x_test, data.y_test, full=True)[0] if gated else acc
    predicted = trainer.psg_stats.predicted_fraction if trainer.psg_stats else 0.0
    per_epoch = data.x_train.shape[0] // config.batch_size
    dense_total = dense_per_sample * per_epoch * config.batch_size * config.epochs
    return {
        "accuracy": acc,                                   # measured; gated nets: expected gates
        "accuracy_hard_gates": acc_hard,                   # measured, gates p > 0.5 (skips blocks)
        "accuracy_sampled_gates": acc_sample,              # measured, Bernoulli(p) gates (skips)
        "accuracy_all_blocks": acc_full,                   # measured, every block run unscaled
        "eval_fired_fraction": fired,                      # share of gated blocks run, hard gates
        "eval_fired_fraction_sampled": fired_sample,
        "train_fired_fraction": stats.mean_fired,
        "gate_unit": model.config.gate_unit if gated else None,
        "iterations": stats.iterations,
        "executed_iterations": stats.executed_iterations,
        "executed_train_macs": stats.macs.total,           # measured count of what ran
        "dense_train_macs": dense_total,                   # every batch through every block
        "wall_s": wall,                                    # measured
        "modelled_energy_j": modelled_energy_j(stats.macs, psg=config.psg,
                                               psg_predicted_fraction=predicted),
        "psg_predicted_fraction": predicted if config.psg else None,
        "inference_macs": inference_macs(model, data.x_test[:64]),
        "final_loss": stats.mean_loss,
    }


def run_e2train(data: Data, arch: str, config: E2TrainConfig, *, gate_bias: float = 2.0,
                on_iteration: Optional[Callable[[int, int, StepResult, E2Trainer, int], None]] = None
                ) -> Tuple[GatedResNet, dict]:
    """Train one variant from a seeded initialisation; returns the model and its measured figures."""
    model, trainer, dense_per_sample = prepare_e2train(data, arch, config, gate_bias=gate_bias)
    cb = None
    if on_iteration is not None:
        def cb(it, total, res):
            on_iteration(it, total, res, trainer, dense_per_sample)
    t0 = time.perf_counter()
    trainer.fit(data.x_train, data.y_train, on_iteration=cb)
    wall = time.perf_counter() - t0
    return model, e2train_result(model, trainer, data, config, dense_per_sample, wall)


# --- Early-Bird ----------------------------------------------------------------------------------
@dataclass
class EarlyBirdRun:
    epochs: int
    ticket_epoch: Optional[int]        # epochs trained when the ticket was drawn (1-based count)
    distances: List[float] = field(default_factory=list)
    snapshot: Optional[GatedResNet] = None
    mask: Optional[torch.Tensor] = None


def search_early_bird(model: GatedResNet, data: Data, config: E2TrainConfig, *, ratio: float,
                      epsilon: float = 0.1, fifo: int = 5, slimming: float = 1e-4,
                      stop_at_ticket: bool = False,
                      on_epoch: Optional[Callable[[int, float, bool], None]] = None
                      ) -> Tuple[E2Trainer, EarlyBirdRun]:
    """Dense training with slimming L1, a mask per epoch, a FIFO of masks; snapshot at the ticket."""
    trainer = E2Trainer(model, config)
    trainer.grad_hook = lambda m: add_slimming_grad(m, slimming)
    detector = EarlyBirdDetector(fifo=fifo, epsilon=epsilon)
    run = EarlyBirdRun(epochs=config.epochs, ticket_epoch=None)

    def epoch_end(epoch: int) -> bool:
        mask = bn_mask(model, ratio)
        dist = detector.update(mask)
        run.distances.append(dist)
        drawn = False
        if detector.found and run.ticket_epoch is None:
            run.ticket_epoch = epoch + 1
            run.snapshot = copy.deepcopy(model)
            run.mask = mask
            drawn = True
        if on_epoch:
            on_epoch(epoch + 1, dist, drawn)
        return stop_at_ticket and drawn

    trainer.fit(data.x_train, data.y_train, on_epoch_end=epoch_end)
    return trainer, run


def retrain_pruned(pruned: GatedResNet, data: Data, config: E2TrainConfig, *, start_epoch: int
                   ) -> Tuple[E2Trainer, float]:
    """Train the pruned net from ``start_epoch`` to config.epochs of the same schedule; (trainer, wall)."""
    trainer = E2Trainer(pruned, config)
    t0 = time.perf_counter()
    trainer.fit(data.x_train, data.y_train, start_epoch=start_epoch)
    return trainer, time.perf_counter() - t0

"""The runs behind `effdl-ros train e2train`, `prune eb`, `bench e2train` and `bench eb` (no printing).

Every figure returned says whether it is measured (accuracy, executed MAC counts, wall time) or
modelled (energy: executed MACs x per-MAC energy of psg.mac_energy_pj, compute only).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from effdl_ros.errors import ConfigError
from effdl_ros.training.e2train import E2TrainConfig, E2Trainer, StepResult, evaluate, modelled_energy_j, to_tensors
from effdl_ros.training.early_bird import EarlyBirdDetector, add_slimming_grad, bn_mask
from effdl_ros.training.macs import MacCounter, inference_macs
from effdl_ros.training.prune import prune_resnet, reinitialised
from effdl_ros.training.resnet import GatedResNet, ResNetConfig, build, count_parameters

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


def interleaved_fit(trainers: Dict[str, E2Trainer], data: Data) -> Dict[str, float]:
    """Train several variants in turns, one iteration each, timing each variant's own iterations.

    All variants then see the same machine load (the load on this shared machine drifts over
    minutes), so their wall-time ratio is a fair comparison. Returns the wall seconds per variant.
    """
    runs = {k: t.iter_fit(data.x_train, data.y_train) for k, t in trainers.items()}
    wall = {k: 0.0 for k in trainers}
    while runs:
        for k in list(runs):
            t0 = time.perf_counter()
            try:
                next(runs[k])
            except StopIteration:
                del runs[k]
            wall[k] += time.perf_counter() - t0
    return wall


def bench_e2train(datasets: Sequence[str], *, arch: str, epochs: Dict[str, int], seed: int = 0,
                  slu_target: float = 0.25, slu_beta: float = 0.2, gate_bias: float = 3.0,
                  batch_size: int = 128, slu_unit: str = "batch", slu_anneal: float = 0.0,
                  slu_reg: str = "logit",
                  interleave: bool = True,
                  variants: Sequence[str] = tuple(VARIANTS),
                  progress: Optional[Callable[[str], None]] = None) -> dict:
    """Every variant on every data set, same seed, same data, in one process.

    ``interleave``: the variants train in turns, one iteration each (see interleaved_fit); otherwise
    one after the other.
    """
    out = {"arch": arch, "seed": seed, "slu_target": slu_target, "slu_beta": slu_beta,
           "slu_unit": slu_unit, "slu_anneal": slu_anneal, "gate_bias": gate_bias,
           "slu_reg": slu_reg,
           "batch_size": batch_size, "smd_rate": 0.5, "interleaved": interleave,
           "torch_threads": torch.get_num_threads(), "results": {}}
    for name in datasets:
        data = load_data(name)
        rows = {}
        cfgs = {v: E2TrainConfig(epochs=epochs[name], seed=seed, slu_target=slu_target,
                                 slu_beta=slu_beta, batch_size=batch_size, slu_unit=slu_unit,
                                 slu_anneal=slu_anneal, slu_reg=slu_reg, **VARIANTS[v])
                for v in variants}
        if interleave:
            if progress:
                progress(f"{name}: {', '.join(variants)} (interleaved)")
            prepared = {v: prepare_e2train(data, arch, cfgs[v], gate_bias=gate_bias) for v in variants}
            walls = interleaved_fit({v: p[1] for v, p in prepared.items()}, data)
            for v, (model, trainer, dense) in prepared.items():
                rows[v] = e2train_result(model, trainer, data, cfgs[v], dense, walls[v])
        else:
            for variant in variants:
                if progress:
                    progress(f"{name}: {variant}")
                _, rows[variant] = run_e2train(data, arch, cfgs[variant], gate_bias=gate_bias)
        base = rows.get("full")
        if base:
            for r in rows.values():
                r["macs_saved"] = 1.0 - r["executed_train_macs"] / base["executed_train_macs"]
                r["wall_saved"] = 1.0 - r["wall_s"] / base["wall_s"]
                r["energy_saved"] = 1.0 - r["modelled_energy_j"] / base["modelled_energy_j"]
                r["accuracy_drop_points"] = 100.0 * (base["accuracy"] - r["accuracy"])
        out["results"][name] = {"epochs": epochs[name], "image_size": data.size,
                                "train_samples": int(data.x_train.shape[0]),
                                "test_samples": int(data.x_test.shape[0]), "variants": rows}
    return out


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


def bench_eb(datasets: Sequence[str], *, arch: str, epochs: Dict[str, int], ratio: float = 0.5,
             epsilon: float = 0.1, seed: int = 0, lr: float = 0.1,
             progress: Optional[Callable[[str], None]] = None) -> dict:
    """Dense vs EB ticket (continue) vs EB ticket (from scratch), per data set, one process.

    One dense run with slimming L1 serves as the dense baseline AND as the ticket search (its weights
    are snapshotted when the ticket is drawn), so the EB rows' energy includes the search epochs.
    'continue' = the ticket's weights, physically pruned, trained on for the remaining epochs of the
    same schedule; 'scratch' = the same pruned architecture re-initialised and trained for all epochs.
    """
    out = {"arch": arch, "ratio": ratio, "epsilon": epsilon, "seed": seed,
           "torch_threads": torch.get_num_threads(), "results": {}}
    for name in datasets:
        data = load_data(name)
        n_ep = epochs[name]
        cfg = E2TrainConfig(epochs=n_ep, seed=seed, lr=lr, lr_drops=(0.5, 0.75))
        torch.manual_seed(seed)
        dense = build(make_config(arch, data))
        if progress:
            progress(f"{name}: dense + ticket search")
        t0 = time.perf_counter()
        trainer, run = search_early_bird(dense, data, cfg, ratio=ratio, epsilon=epsilon)
        dense_wall = time.perf_counter() - t0
        trainer.close()
        dense_macs = trainer.stats.macs
        per_epoch_macs = dense_macs.total / n_ep
        per_epoch_wall = dense_wall / n_ep
        sample = data.x_test[:64]
        rows = {"dense": {
            "ticket_epoch": None, "accuracy": evaluate(dense, data.x_test, data.y_test)[0],
            "inference_macs": inference_macs(dense, sample), "parameters": count_parameters(dense),
            "train_macs": dense_macs.total, "modelled_energy_j": modelled_energy_j(dense_macs),
            "wall_s": dense_wall}}
        result = {"epochs": n_ep, "distances": run.distances, "ticket_epoch": run.ticket_epoch,
                  "variants": rows}
        if run.ticket_epoch is not None:
            t = run.ticket_epoch
            search_macs = per_epoch_macs * t
            search_wall = per_epoch_wall * t
            for label, make in (("EB (continue)", lambda: prune_resnet(run.snapshot, run.mask)),
                                ("EB (scratch)", lambda: reinitialised(prune_resnet(run.snapshot, run.mask),
                                                                       seed))):
                if progress:
                    progress(f"{name}: {label}")
                pruned = make()
                start = t if label == "EB (continue)" else 0
                tr, wall = retrain_pruned(pruned, data, cfg, start_epoch=start)
                tr.close()
                total = search_macs + tr.stats.macs.total
                rows[label] = {
                    "ticket_epoch": t, "accuracy": evaluate(pruned, data.x_test, data.y_test)[0],
                    "inference_macs": inference_macs(pruned, sample),
                    "parameters": count_parameters(pruned), "train_macs": int(total),
                    "modelled_energy_j": total * modelled_energy_j(dense_macs) / max(1, dense_macs.total),
                    "wall_s": search_wall + wall, "retrain_epochs": n_ep - start}
        base = rows["dense"]
        for r in rows.values():
            r["energy_saving_x"] = base["modelled_energy_j"] / r["modelled_energy_j"]
            r["wall_saving_x"] = base["wall_s"] / r["wall_s"]
            r["accuracy_drop_points"] = 100.0 * (base["accuracy"] - r["accuracy"])
        out["results"][name] = result
    return out

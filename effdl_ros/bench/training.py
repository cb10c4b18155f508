"""`effdl-ros bench e2train` and `bench eb`: every variant side by side in one process (no printing).

Every figure returned says whether it is measured (accuracy, executed MAC counts, wall time) or
modelled (energy: executed MACs x per-MAC energy of psg.mac_energy_pj, compute only).
"""
from __future__ import annotations

import time
from typing import Callable, Dict, Optional, Sequence

import torch

from effdl_ros.training.e2train import E2TrainConfig, E2Trainer, evaluate, modelled_energy_j
from effdl_ros.training.experiments import (
    VARIANTS,
    Data,
    e2train_result,
    load_data,
    make_config,
    prepare_e2train,
    retrain_pruned,
    run_e2train,
    search_early_bird,
)
from effdl_ros.training.macs import inference_macs
from effdl_ros.training.prune import prune_resnet, reinitialised
from effdl_ros.training.resnet import build, count_parameters


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

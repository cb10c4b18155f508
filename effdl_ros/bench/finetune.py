"""`effdl-ros bench finetune`: adapt a deployed digit classifier to a shifted domain on the robot.

The case E2-Train exists for (the trainer node): a network trained on one domain (MNIST-5k digits)
must adapt, from a short stream of a few hundred labelled samples, to what the robot now sees
(MNIST-M-like digits: each digit blended with a grey texture background as |texture - digit|, the
blend MNIST-M uses), under a fixed MODELLED energy budget in joules. Methods, same pretrained net,
same stream, same budget:

- ``none``: the deployed net as is (0 J);
- ``last-layer``: backbone frozen, its features computed once for the stream, the classifier trained
  on them until the budget is spent;
- ``budget-matched``: plain fine-tuning of every layer for the iterations the budget buys, lr
  decayed linearly to zero at the budget (Li et al., ICLR 2020);
- ``e2train``: E2-Train's SMD / SLU / PSG knobs; iterations run until the next one would pass the
  budget, lr decayed linearly with the share of the budget spent (the same rule as the baseline).

Energy = executed MACs (counted from what ran) x modelled energy per MAC (psg.mac_energy_pj; PSG's
low-bit MACs are MODELLED, they run as float32 on a CPU). Accuracies are measured on test items that
no method ever trains on (`make_task` keeps them apart; tested).
"""
from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from effdl_ros.errors import ConfigError
from effdl_ros.training.budgeted import budgeted_fit, macs_for_energy
from effdl_ros.training.e2train import E2TrainConfig, E2Trainer, evaluate, modelled_energy_j, to_tensors
from effdl_ros.training.macs import MacCounter
from effdl_ros.training.psg import mac_energy_pj
from effdl_ros.training.resnet import GatedResNet, ResNetConfig, build


# --- data ----------------------------------------------------------------------------------------
def texture_backgrounds(n: int, size: int, seed: int) -> np.ndarray:
    """``n`` grey textures (uint8 [n, size, size]): two random oriented gratings + smoothed noise."""
    import cv2

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    out = np.empty((n, size, size), np.float32)
    for i in range(n):
        t = np.zeros((size, size), np.float32)
        for _ in range(2):
            theta, freq, phase = rng.uniform(0, np.pi), rng.uniform(0.1, 0.6), rng.uniform(0, 2 * np.pi)
            t += np.sin(freq * (np.cos(theta) * xx + np.sin(theta) * yy) + phase)
        noise = cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), 1.5)
        t = t / 2 + 1.5 * noise
        lo, hi = rng.uniform(0, 120), rng.uniform(150, 255)
        t = (t - t.min()) / max(1e-6, float(t.max() - t.min()))
        out[i] = lo + (hi - lo) * t
    return out.clip(0, 255).astype(np.uint8)


def shifted(images: np.ndarray, seed: int) -> np.ndarray:
    """MNIST-M-like: |texture - digit| per pixel, one random texture per image (seeded)."""
    bg = texture_backgrounds(len(images), images.shape[1], seed).astype(np.int16)
    return np.abs(bg - images.astype(np.int16)).astype(np.uint8)


@dataclass
class FinetuneTask:
    """Index sets into MNIST-5k and the tensors built from them; test items never reach training."""

    pretrain_idx: np.ndarray   # old-domain training items (the deployed net's training set)
    stream_idx: np.ndarray     # the few hundred items the robot sees, shown in the NEW domain
    test_idx: np.ndarray       # held out: scored in both domains, never trained on
    x_pre: torch.Tensor
    y_pre: torch.Tensor
    x_stream: torch.Tensor
    y_stream: torch.Tensor
    x_test_old: torch.Tensor
    x_test_new: torch.Tensor
    y_test: torch.Tensor


def make_task(stream_size: int = 300, *, seed: int = 0, images: Optional[np.ndarray] = None,
              labels: Optional[np.ndarray] = None) -> FinetuneTask:
    """Split MNIST-5k (stratified 80/20, seed 0: the test set every digit bench uses); the training
    part is cut into the pretraining set and a pool the stream is drawn from (seeded)."""
    from effdl_ros.data.digits import load_mnist5k, split

    if images is None:
        images, labels = load_mnist5k()
    idx = np.arange(len(labels))
    (train_idx, _), (test_idx, _) = split(idx, labels, 0.2, 0)
    pool_n = max(stream_size, len(train_idx) // 4)
    if stream_size < 10 or pool_n >= len(train_idx):
        raise ConfigError(f"--stream must be between 10 and {len(train_idx) // 2}, got {stream_size}")
    rng = np.random.default_rng(1000 + seed)
    order = rng.permutation(train_idx)
    pool, pre = order[:pool_n], np.sort(order[pool_n:])
    stream = pool[:stream_size]
    new_images = shifted(images, seed=7)        # one texture per item, fixed across seeds
    x_pre, y_pre = to_tensors(images[pre], labels[pre])
    x_stream, y_stream = to_tensors(new_images[stream], labels[stream])
    x_old, y_test = to_tensors(images[test_idx], labels[test_idx])
    x_new, _ = to_tensors(new_images[test_idx], labels[test_idx])
    return FinetuneTask(pre, stream, test_idx, x_pre, y_pre, x_stream, y_stream, x_old, x_new, y_test)


# --- methods ---------------------------------------------------------------------------------------
def arch_config(arch: str) -> ResNetConfig:
    from effdl_ros.training.experiments import parse_arch

    n, w = parse_arch(arch)
    return ResNetConfig(blocks=(n, n, n), widths=(w, 2 * w, 4 * w), in_channels=1, num_classes=10,
                        stem_stride=2, gates=True, gate_bias=3.0, gate_unit="batch")


def pretrain(task: FinetuneTask, arch: str, *, epochs: int, seed: int) -> GatedResNet:
    """The deployed net: every block run (gates present but unused), step schedule, old domain."""
    torch.manual_seed(seed)
    model = build(arch_config(arch))
    trainer = E2Trainer(model, E2TrainConfig(epochs=epochs, batch_size=64, lr=0.1, seed=seed,
                                             lr_drops=(0.5, 0.75)))
    trainer.fit(task.x_pre, task.y_pre)
    trainer.close()
    return model


@dataclass
class FinetuneSettings:
    lr: float = 0.02
    batch_size: int = 32
    max_head_epochs: int = 200


def _score(model: GatedResNet, task: FinetuneTask, *, gated: bool) -> Dict[str, float]:
    kw = dict(gates="expected") if gated else dict(full=True)
    return {"new_domain_acc": evaluate(model, task.x_test_new, task.y_test, **kw)[0],
            "old_domain_acc": evaluate(model, task.x_test_old, task.y_test, **kw)[0]}


def run_none(model: GatedResNet, task: FinetuneTask, budget_j: float, s: FinetuneSettings, seed: int) -> dict:
    return {**_score(model, task, gated=False), "energy_j": 0.0, "executed_macs": 0, "steps": 0}


def run_budget_matched(model, task, budget_j, s: FinetuneSettings, seed: int) -> dict:
    cfg = E2TrainConfig(lr=s.lr, batch_size=s.batch_size, seed=seed)
    r = budgeted_fit(model, task.x_stream, task.y_stream, target_macs=macs_for_energy(budget_j), config=cfg)
    return {**_score(model, task, gated=False), "energy_j": r.modelled_energy_j,
            "executed_macs": r.executed_train_macs, "steps": r.iterations}


def run_last_layer(model: GatedResNet, task: FinetuneTask, budget_j: float, s: FinetuneSettings,
                   seed: int) -> dict:
    """Features of the stream once (forward MACs counted), then the classifier alone, until the budget."""
    fp = mac_energy_pj(32, 32) * 1e-12
    model.eval()
    model.force_full = True
    fc = model.fc
    feats: List[torch.Tensor] = []
    hook = fc.register_forward_hook(lambda m, i, o: feats.append(i[0].detach()))
    counter = MacCounter(model, training=False)
    n_feat = task.x_stream.shape[0]
    per_item_fwd = None
    with torch.no_grad():
        for i in range(0, task.x_stream.shape[0], 64):
            before = counter.tally.total
            model(task.x_stream[i:i + 64])
            per_item_fwd = (counter.tally.total - before) / min(64, task.x_stream.shape[0] - i)
            if counter.tally.total * fp > budget_j / 2:  # keep half the budget for the classifier
                break
    counter.remove()
    hook.remove()
    x = torch.cat(feats)
    y = task.y_stream[: x.shape[0]]
    n_feat = x.shape[0]
    spent_macs = counter.tally.total
    torch.manual_seed(seed)
    opt = torch.optim.SGD(fc.parameters(), lr=s.lr * 5, momentum=0.9)
    head_macs_step = fc.in_features * fc.out_features * 2     # forward + weight gradient, per item
    steps = 0
    gen = torch.Generator().manual_seed(seed)
    for _ in range(s.max_head_epochs):
        order = torch.randperm(n_feat, generator=gen)
        for b in range(0, n_feat, s.batch_size):
            idx = order[b:b + s.batch_size]
            cost = head_macs_step * len(idx)
            if (spent_macs + cost) * fp > budget_j:
                break
            opt.zero_grad()
            F.cross_entropy(fc(x[idx]), y[idx]).backward()
            opt.step()
            spent_macs += cost
            steps += 1
        else:
            continue
        break
    model.force_full = False
    return {**_score(model, task, gated=False), "energy_j": spent_macs * fp, "executed_macs": spent_macs,
            "steps": steps, "stream_items_featurised": n_feat, "forward_macs_per_item": per_item_fwd}


def run_e2train(model: GatedResNet, task: FinetuneTask, budget_j: float, s: FinetuneSettings, seed: int,
                *, smd: float = 0.5, slu_target: Optional[float] = None, psg: bool = False) -> dict:
    """E2-Train's knobs under the energy budget: stop before the step that would pass it."""
    cfg = E2TrainConfig(lr=s.lr, batch_size=s.batch_size, seed=seed, smd_rate=smd,
                        slu=slu_target is not None, slu_target=slu_target or 1.0, slu_beta=0.2,
                        slu_unit="batch", psg=psg)
    trainer = E2Trainer(model, cfg)
    n = task.x_stream.shape[0]
    gen = torch.Generator().manual_seed(seed)
    spent, last, steps, iters = 0.0, 0.0, 0, 0
    done = False

    def energy() -> float:
        pred = trainer.psg_stats.predicted_fraction if trainer.psg_stats else 0.0
        return modelled_energy_j(trainer.counter.tally, psg=psg, psg_predicted_fraction=pred)

    while not done and iters < 100000:
        order = torch.randperm(n, generator=gen)
        for b in range(0, n - s.batch_size + 1, s.batch_size):
            if spent + last > budget_j:
                done = True
                break
            trainer.set_lr_scale(max(0.0, 1.0 - spent / budget_j))  # linear decay by budget share
            idx = order[b:b + s.batch_size]
            iters += 1
            res = trainer.step(task.x_stream[idx], task.y_stream[idx])
            if res.executed:
                now = energy()
                last, spent = now - spent, now
                steps += 1
    tally = trainer.counter.tally
    trainer.close()
    gated = slu_target is not None
    return {**_score(model, task, gated=gated), "energy_j": spent, "executed_macs": tally.total,
            "steps": steps, "iterations": iters, "train_fired_fraction": trainer.stats.mean_fired}


METHODS: Dict[str, tuple] = {
    "no fine-tuning": ("none", run_none, {}),
    "last layer only": ("last-layer", run_last_layer, {}),
    "plain (budget-matched)": ("budget-matched", run_budget_matched, {}),
    "E2-Train SMD": ("e2train", run_e2train, dict(smd=0.5)),
    "E2-Train SMD+SLU": ("e2train", run_e2train, dict(smd=0.5, slu_target=0.5)),
    "E2-Train SMD+PSG": ("e2train", run_e2train, dict(smd=0.5, psg=True)),
    "E2-Train SMD+SLU+PSG": ("e2train", run_e2train, dict(smd=0.5, slu_target=0.5, psg=True)),
    "E2-Train PSG": ("e2train", run_e2train, dict(smd=0.0, psg=True)),
}


def _mean_std(values: Sequence[float]):
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def bench_finetune(*, arch: str = "resnet20:8", budgets_j: Sequence[float] = (0.01, 0.04),
                   seeds: Sequence[int] = (0, 1, 2), stream_size: int = 300, pretrain_epochs: int = 4,
                   methods: Sequence[str] = tuple(METHODS), settings: FinetuneSettings = FinetuneSettings(),
                   progress: Optional[Callable[[str], None]] = None) -> dict:
    """Every method x budget x seed; per seed one pretrained net and one stream, shared by all."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ConfigError(f"unknown method(s) {unknown}; known: {list(METHODS)}")
    if not budgets_j or any(not b > 0 for b in budgets_j):
        raise ConfigError(f"--budgets must be positive joules, got {list(budgets_j)}")
    per: Dict[tuple, List[dict]] = {}
    pretrained_acc = []
    t_start = time.perf_counter()
    for seed in seeds:
        task = make_task(stream_size, seed=seed)
        if progress:
            progress(f"seed {seed}: pretraining {arch} on {len(task.pretrain_idx)} MNIST-5k items")
        base = pretrain(task, arch, epochs=pretrain_epochs, seed=seed)
        pretrained_acc.append(_score(base, task, gated=False))
        for budget in budgets_j:
            for name in methods:
                kind, fn, kw = METHODS[name]
                model = copy.deepcopy(base)
                t0 = time.perf_counter()
                r = fn(model, task, budget, settings, seed, **kw)
                r["wall_s"] = time.perf_counter() - t0
                per.setdefault((budget, name), []).append(r)
        if progress:
            progress(f"seed {seed} done ({time.perf_counter() - t_start:.0f} s)")
    rows = []
    for (budget, name), rs in per.items():
        new_m, new_s = _mean_std([r["new_domain_acc"] for r in rs])
        old_m, old_s = _mean_std([r["old_domain_acc"] for r in rs])
        rows.append({"method": name, "kind": METHODS[name][0], "budget_j": budget,
                     "new_domain_acc": new_m, "new_domain_acc_std": new_s,
                     "old_domain_acc": old_m, "old_domain_acc_std": old_s,
                     "energy_j": statistics.fmean(r["energy_j"] for r in rs),
                     "executed_macs": statistics.fmean(r["executed_macs"] for r in rs),
                     "steps": statistics.fmean(r["steps"] for r in rs),
                     "wall_s": statistics.fmean(r["wall_s"] for r in rs),
                     "per_seed_new_domain_acc": [r["new_domain_acc"] for r in rs]})
    return {"arch": arch, "seeds": list(seeds), "stream_size": stream_size, "budgets_j": list(budgets_j),
            "pretrain_epochs": pretrain_epochs, "settings": vars(settings),
            "torch_threads": torch.get_num_threads(),
            "pretrained": {"old_domain_acc": _mean_std([p["old_domain_acc"] for p in pretrained_acc]),
                           "new_domain_acc": _mean_std([p["new_domain_acc"] for p in pretrained_acc])},
            "data": "MNIST-5k (old domain) -> MNIST-M-like |texture - digit| (new domain); "
                    "stratified 80/20 test split, seed 0",
            "measured": "accuracies, executed MAC counts, wall time",
            "modelled": "energy_j = executed MACs x energy per MAC (fp32 4.6 pJ; PSG 8/4/16 bit)",
            "rows": rows}


def format_table(res: dict) -> str:
    lines = [f"{res['arch']}, stream of {res['stream_size']} new-domain items, seeds {res['seeds']}; "
             f"pretrained: old {100 * res['pretrained']['old_domain_acc'][0]:.1f} %, new "
             f"{100 * res['pretrained']['new_domain_acc'][0]:.1f} %"]
    head = (f"{'budget J*':>9} {'method':24} {'kind':15} {'new-domain %':>14} {'old-domain %':>13} "
            f"{'energy J*':>9} {'GMAC':>6} {'steps':>6} {'wall s':>6}")
    lines += [head, "-" * len(head)]
    for r in sorted(res["rows"], key=lambda r: (r["budget_j"], list(METHODS).index(r["method"]))):
        lines.append(f"{r['budget_j']:9.3f} {r['method']:24} {r['kind']:15} "
                     f"{100 * r['new_domain_acc']:7.2f} ± {100 * r['new_domain_acc_std']:4.2f} "
                     f"{100 * r['old_domain_acc']:13.2f} {r['energy_j']:9.4f} "
                     f"{r['executed_macs'] / 1e9:6.2f} {r['steps']:6.0f} {r['wall_s']:6.1f}")
    lines.append("measured: accuracies (mean ± std over seeds), executed MACs, wall time; * modelled: "
                 "energy (fp32 4.6 pJ/MAC, PSG 8/4/16-bit MACs, Horowitz ISSCC 2014)")
    return "\n".join(lines)

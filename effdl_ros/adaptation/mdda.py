"""Multi-source Distilling Domain Adaptation (MDDA; Zhao et al., AAAI 2020, arXiv 1911.11554).

Four stages, re-implemented from the facts in ../shared/REFERENCES.md section 3:
1. pre-train an encoder + classifier on each labelled source (cross-entropy, SGD);
2. per source, map the unlabelled target into that source's feature space: a target encoder,
   initialised from the source encoder, plays a WGAN-GP game against a critic (wgan_gp.py);
3. distillation: score every source sample with the critic, d_j = |D(f_s,j) - mean D(f_t)|, keep those
   below the median (the source samples closest to the target) and fine-tune ONLY the classifier on
   them, the source encoder frozen;
4. aggregation: w_i = exp(-W_i^2 / 2) / sum_k exp(-W_k^2 / 2), W_i = |mean D(f_s) - mean D(f_t)| of
   source i's critic, prediction = argmax sum_i w_i * logits_i(target encoder i, distilled classifier i).
``domain_weights`` also takes an optimal-transport distance (ot_distance.py) in place of the critic's W_i.

Iteration counts and learning rates default to reduced values for CPU (``MddaConfig.paper()`` has the
paper's); see docs/adaptation.md for what was changed and why.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from effdl_ros.adaptation import wgan_gp
from effdl_ros.adaptation.domains import Domain
from effdl_ros.adaptation.nets import Encoder, NetSizes, make_classifier, make_critic
from effdl_ros.atomic_io import atomic_torch_save, safe_torch_load
from effdl_ros.errors import DataError

Log = Optional[Callable[[str], None]]


@dataclass
class MddaConfig:
    """Hyper-parameters of the four stages (defaults: reduced for CPU; ``paper()``: the original)."""

    sizes: NetSizes = field(default_factory=NetSizes)
    batch: int = 64
    # stage 1 (paper: SGD m0.9 lr 0.01, 3000 it, lr x0.1 every 1000)
    pretrain_iters: int = 500
    pretrain_lr: float = 0.01
    # stage 2 (paper: Adam(0.5, 0.9), critic lr 1e-5, encoder lr 1e-7, 5500 it)
    adapt_iters: int = 1600  # was 800 until the critic W analysis of 2026-11-26 (docs/adaptation.md)
    critic_lr: float = 1e-4
    encoder_lr: float = 2e-5
    critic_steps: int = 5
    gp_weight: float = wgan_gp.GP_WEIGHT
    # stage 3 (paper: SGD m0.99 lr 1e-5, 150 it)
    distill_iters: int = 150
    distill_lr: float = 1e-4
    distill_momentum: float = 0.99
    seed: int = 0

    @classmethod
    def paper(cls) -> "MddaConfig":
        return cls(sizes=NetSizes.paper(), pretrain_iters=3000, adapt_iters=5500, critic_lr=1e-5,
                   encoder_lr=1e-7, distill_lr=1e-5)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["sizes"] = self.sizes.to_dict()
        return d


class _Batches:
    """Endless random mini-batches from arrays (reshuffled each pass, seeded)."""

    def __init__(self, x: np.ndarray, y: Optional[np.ndarray], batch: int, seed: int):
        self.x = torch.as_tensor(x)
        self.y = None if y is None else torch.as_tensor(y)
        self.batch = min(batch, len(self.x))
        self.gen = torch.Generator().manual_seed(seed)
        self.order = torch.randperm(len(self.x), generator=self.gen)
        self.pos = 0

    def next(self):
        if self.pos + self.batch > len(self.x):
            self.order = torch.randperm(len(self.x), generator=self.gen)
            self.pos = 0
        idx = self.order[self.pos:self.pos + self.batch]
        self.pos += self.batch
        return (self.x[idx], None if self.y is None else self.y[idx])


class SourceModel(nn.Module):
    """An encoder and its classifier (stage 1 output; also the oracle and the merged baseline)."""

    def __init__(self, sizes: NetSizes):
        super().__init__()
        self.encoder = Encoder(sizes)
        self.classifier = make_classifier(sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.encoder(x))


def pretrain(x: np.ndarray, y: np.ndarray, cfg: MddaConfig, *, seed: Optional[int] = None,
             log: Log = None) -> SourceModel:
    """Stage 1: supervised training on one labelled domain (SGD m0.9, lr x0.1 at 1/3 and 2/3)."""
    seed = cfg.seed if seed is None else seed
    torch.manual_seed(seed)
    model = SourceModel(cfg.sizes)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.pretrain_lr, momentum=0.9, weight_decay=5e-4)
    step = max(1, cfg.pretrain_iters // 3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=step, gamma=0.1)
    batches = _Batches(x, y, cfg.batch, seed)
    model.train()
    for it in range(cfg.pretrain_iters):
        xb, yb = batches.next()
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if log and (it + 1) % max(1, cfg.pretrain_iters // 4) == 0:
            log(f"    pretrain it {it + 1}/{cfg.pretrain_iters} loss {loss.item():.3f}")
    model.eval()
    return model


@torch.no_grad()
def features(encoder: nn.Module, x: np.ndarray, chunk: int = 512) -> torch.Tensor:
    encoder.eval()
    xt = torch.as_tensor(x)
    return torch.cat([encoder(xt[i:i + chunk]) for i in range(0, len(xt), chunk)])


@torch.no_grad()
def predict_logits(model: nn.Module, x: np.ndarray, chunk: int = 512) -> torch.Tensor:
    model.eval()
    xt = torch.as_tensor(x)
    return torch.cat([model(xt[i:i + chunk]) for i in range(0, len(xt), chunk)])


def accuracy(logits: torch.Tensor, y: np.ndarray) -> float:
    return float((logits.argmax(1).numpy() == np.asarray(y)).mean())


@dataclass
class AdaptResult:
    target_encoder: Encoder
    critic: nn.Module
    history: List[float]  # the critic's W estimate, one per iteration


def adapt(source_encoder: nn.Module, source_x: np.ndarray, target_x: np.ndarray, cfg: MddaConfig,
          *, seed: Optional[int] = None, critic: Optional[nn.Module] = None,
          target_encoder: Optional[nn.Module] = None, iters: Optional[int] = None,
          encoder_lr: Optional[float] = None, log: Log = None) -> AdaptResult:
    """Stage 2: WGAN-GP mapping of the target into the (frozen) source encoder's feature space.

    The target encoder starts as a copy of the source encoder (or continues ``target_encoder``);
    the source encoder's parameters are frozen (requires_grad False); ``encoder_lr=0`` trains the
    critic only (used to measure a distance with the encoders fixed).
    """
    if cfg.critic_steps < 1:
        raise ValueError("critic_steps must be >= 1")
    seed = cfg.seed if seed is None else seed
    torch.manual_seed(seed)
    iters = cfg.adapt_iters if iters is None else iters
    encoder_lr = cfg.encoder_lr if encoder_lr is None else encoder_lr
    src_enc = source_encoder.eval()
    for p in src_enc.parameters():
        p.requires_grad_(False)
    tgt_enc = target_encoder if target_encoder is not None else copy.deepcopy(source_encoder)
    for p in tgt_enc.parameters():
        p.requires_grad_(True)
    tgt_enc.train()
    if critic is None:
        critic = make_critic(cfg.sizes) if isinstance(src_enc, Encoder) else None
        if critic is None:
            raise ValueError("pass a critic for a non-standard encoder")
    opt_c = torch.optim.Adam(critic.parameters(), lr=cfg.critic_lr, betas=(0.5, 0.9))
    opt_e = torch.optim.Adam(tgt_enc.parameters(), lr=max(encoder_lr, 1e-12), betas=(0.5, 0.9))
    src_b = _Batches(source_x, None, cfg.batch, seed + 1)
    tgt_b = _Batches(target_x, None, cfg.batch, seed + 2)
    history: List[float] = []
    for it in range(iters):
        xs, _ = src_b.next()
        xt, _ = tgt_b.next()
        with torch.no_grad():
            fs = src_enc(xs)
        ft = tgt_enc(xt)
        for _ in range(cfg.critic_steps):
            ds, dt = critic(fs), critic(ft.detach())
            loss_c = wgan_gp.critic_loss(ds, dt) + wgan_gp.gradient_penalty(
                critic, fs, ft.detach(), weight=cfg.gp_weight)
            opt_c.zero_grad()
            loss_c.backward()
            opt_c.step()
        history.append(wgan_gp.wasserstein_estimate(ds.detach(), dt.detach()))
        if encoder_lr > 0:
            for p in critic.parameters():
                p.requires_grad_(False)
            loss_e = wgan_gp.encoder_loss(critic(ft))
            opt_e.zero_grad()
            loss_e.backward()
            opt_e.step()
            for p in critic.parameters():
                p.requires_grad_(True)
        if log and (it + 1) % max(1, iters // 4) == 0:
            log(f"    adapt it {it + 1}/{iters} W~{np.mean(history[-20:]):.3f}")
    tgt_enc.eval()
    critic.eval()
    return AdaptResult(tgt_enc, critic, history)


@torch.no_grad()
def critic_scores(critic: nn.Module, feats: torch.Tensor) -> np.ndarray:
    critic.eval()
    return critic(feats).squeeze(1).numpy()


def select_below_median(source_scores: np.ndarray, target_mean: float) -> np.ndarray:
    """Stage 3's choice: mask of source samples with |D(f_s,j) - mean D(f_t)| below the median."""
    d = np.abs(np.asarray(source_scores, dtype=np.float64) - float(target_mean))
    return d < np.median(d)


def distill(model: SourceModel, x: np.ndarray, y: np.ndarray, cfg: MddaConfig, *,
            seed: Optional[int] = None) -> nn.Module:
    """Stage 3: fine-tune a COPY of the classifier on the selected source samples, encoder frozen."""
    seed = cfg.seed if seed is None else seed
    torch.manual_seed(seed)
    classifier = copy.deepcopy(model.classifier).train()
    feats = features(model.encoder, x)
    opt = torch.optim.SGD(classifier.parameters(), lr=cfg.distill_lr, momentum=cfg.distill_momentum)
    batches = _Batches(feats.numpy(), y, cfg.batch, seed + 3)
    for _ in range(cfg.distill_iters):
        fb, yb = batches.next()
        loss = F.cross_entropy(classifier(fb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return classifier.eval()


def domain_weights(distances: Sequence[float]) -> np.ndarray:
    """MDDA's weights w_i = exp(-W_i^2/2) / sum_k exp(-W_k^2/2) (computed stably in log space)."""
    w = np.asarray(distances, dtype=np.float64)
    if w.ndim != 1 or len(w) == 0 or not np.all(np.isfinite(w)):
        raise ValueError(f"domain distances must be a non-empty list of finite numbers, got {distances}")
    logits = -0.5 * w ** 2
    logits -= logits.max()
    e = np.exp(logits)
    return e / e.sum()


class MddaModel(nn.Module):
    """Stage 4's classifier: weighted sum of the per-source (target encoder, classifier) logits."""

    def __init__(self, sizes: NetSizes, n_sources: int):
        super().__init__()
        self.sizes = sizes
        self.encoders = nn.ModuleList(Encoder(sizes) for _ in range(n_sources))
        self.classifiers = nn.ModuleList(make_classifier(sizes) for _ in range(n_sources))
        self.register_buffer("weights", torch.full((n_sources,), 1.0 / n_sources))

    def per_source_logits(self, x: torch.Tensor) -> torch.Tensor:
        """[S, N, C] logits of each source branch."""
        return torch.stack([c(e(x)) for e, c in zip(self.encoders, self.classifiers)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.weights.view(-1, 1, 1) * self.per_source_logits(x)).sum(0)


def save_model(model: MddaModel, path: Path, meta: dict, *, half: bool = True) -> None:
    """Atomically write state dict + config (loadable with torch.load(weights_only=True)).

    Floating tensors are stored as float16 by default (half the size; loading casts back to float32).
    """
    state = {k: (v.half() if half and v.is_floating_point() else v) for k, v in model.state_dict().items()}
    blob = {"state_dict": state,
            "config": {"sizes": model.sizes.to_dict(), "n_sources": len(model.encoders), **meta}}
    atomic_torch_save(blob, path)


def load_model(path: Path) -> MddaModel:
    """Load a checkpoint written by ``save_model``; DataError naming the file if it is not one."""
    path = Path(path)
    blob = safe_torch_load(path, what="MDDA model")
    try:
        cfg = blob["config"]
        model = MddaModel(NetSizes.from_dict(cfg["sizes"]), int(cfg["n_sources"]))
        model.load_state_dict(blob["state_dict"])
    except Exception as err:  # noqa: BLE001 - any corrupt/foreign file
        raise DataError(f"{path} is not an MDDA checkpoint ({type(err).__name__}: {err})") from None
    model.config = cfg
    return model.eval()


@dataclass
class SourceRun:
    """Everything MDDA learnt for one source."""

    name: str
    source_model: SourceModel
    adapted: AdaptResult
    classifier: nn.Module  # distilled
    critic_distance: float  # W_i = |mean D(f_s) - mean D(f_t)|
    n_distilled: int
    source_feats: torch.Tensor
    target_feats: torch.Tensor


def train_sources(sources: Dict[str, Domain], target_train_x: np.ndarray, cfg: MddaConfig, *,
                  log: Log = None) -> List[SourceRun]:
    """Stages 1-3 for every source (name -> Domain). The target's images are used without labels."""
    runs = []
    for k, (name, dom) in enumerate(sources.items()):
        seed = cfg.seed + 101 * (k + 1)
        if log:
            log(f"  source {name}: stage 1 pre-training ({cfg.pretrain_iters} it)")
        model = pretrain(dom.train_x, dom.train_y, cfg, seed=seed, log=log)
        if log:
            log(f"  source {name}: stage 2 WGAN-GP mapping ({cfg.adapt_iters} it)")
        adapted = adapt(model.encoder, dom.train_x, target_train_x, cfg, seed=seed, log=log)
        fs = features(model.encoder, dom.train_x)
        ft = features(adapted.target_encoder, target_train_x)
        ds = critic_scores(adapted.critic, fs)
        dt = critic_scores(adapted.critic, ft)
        w = abs(float(ds.mean()) - float(dt.mean()))
        keep = select_below_median(ds, float(dt.mean()))
        if log:
            log(f"  source {name}: stage 3 distillation on {int(keep.sum())}/{len(keep)} samples; "
                f"critic W = {w:.3f}")
        classifier = distill(model, dom.train_x[keep], dom.train_y[keep], cfg, seed=seed)
        runs.append(SourceRun(name, model, adapted, classifier, w, int(keep.sum()), fs, ft))
    return runs


def assemble(runs: Sequence[SourceRun], weights: Sequence[float], sizes: NetSizes, *,
             distilled: bool = True) -> MddaModel:
    """Stage 4: one MddaModel from the per-source target encoders and (distilled) classifiers."""
    model = MddaModel(sizes, len(runs))
    for k, run in enumerate(runs):
        model.encoders[k].load_state_dict(run.adapted.target_encoder.state_dict())
        clf = run.classifier if distilled else run.source_model.classifier
        model.classifiers[k].load_state_dict(clf.state_dict())
    model.weights.copy_(torch.as_tensor(np.asarray(weights), dtype=torch.float32))
    return model.eval()

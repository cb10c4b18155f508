"""Offline meta-training of ROAM on synthetic-motion clips of real pixels (see synth.py).

ROAM (CVPR 2020, arXiv 1907.12006), section 5 of REFERENCES.md: per clip, the meta-initialiser makes
one step on the first frame's 9 augmented patches (3 scales x 3 aspect ratios); then, step after
step, the model is scored on a random frame of the coming look-ahead window (the meta-loss) and the
recurrent optimiser updates it on the frames of that window. Random Filter Scaling is drawn per clip.
Adam trains the backbone, the initialiser (theta_0, lambda_0) and the optimiser together; gradients
are clipped.

Runs as `effdl-ros train roam` (CPU or GPU) or `python -m effdl_ros.tracking.train` (a GPU machine
without the CLI's extra dependencies).
"""
from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch

from effdl_ros.atomic_io import atomic_torch_save
from effdl_ros.resources import shared_data_dir
from effdl_ros.tracking.meta_optimizer import LSTMOptimizer, MetaInitializer, sample_filter_scales, store_scaled
from effdl_ros.tracking.roam import CONTEXT, RoamConfig, RoamNet, base_filter_for, filter_size, tracking_loss
from effdl_ros.tracking.synth import ClipSampler, TextureBank, window_box


@dataclass
class TrainSettings:
    iterations: int = 2000
    batch: int = 16
    steps: int = 3               # optimiser steps per clip
    lookahead: int = 4           # frames per look-ahead window
    search_size: int = 161
    channels: int = 32
    backbone: str = "hog_cn"     # "hog_cn" (hand-crafted, no weights) or "resnet18_layer1" (trained here)
    init_steps: int = 0          # learned-optimiser steps on the first frame after the initialiser's step
    calibrate_lr0: bool = True   # warm-start lambda_0 per tensor by a line search (calibrate_lr0) before training
    lr_backbone: float = 1e-4
    lr_init: float = 1e-4        # theta_0 compression weights; base filters get lr_init/10 (they are ~1e-3)
    lr_log_lr: float = 3e-2      # log lambda_0
    lr_optimizer: float = 1e-3
    seed: int = 0
    time_limit_s: float = math.inf


def _fsizes(anchor_wh: torch.Tensor, search_size: int, kmax: int) -> torch.Tensor:
    """Per clip (kh, kw) from its anchor (w, h) in window pixels: [B, 2] long."""
    return torch.tensor([filter_size((float(h), float(w)), search_size, kmax) for w, h in anchor_wh.tolist()],
                        dtype=torch.long)


def grad_of(net: RoamNet, feats, params, fsize, boxes, anchors, scales):
    """Detached gradient of the tracking loss wrt the stored (scaled) head parameters, and the loss [B]."""
    leaf = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    loss = tracking_loss(net, feats, leaf, fsize, boxes, anchors, scales)
    grads = torch.autograd.grad(loss.sum(), list(leaf.values()))
    return {k: g.detach() for k, g in zip(leaf, grads)}, loss.detach()


class MetaTrainer:
    def __init__(self, bank: TextureBank, settings: TrainSettings, device="cpu"):
        self.s = settings
        self.device = device
        torch.manual_seed(settings.seed)
        self.g = torch.Generator().manual_seed(settings.seed)
        cfg = RoamConfig(search_size=settings.search_size, channels=settings.channels,
                         base_filter=base_filter_for(settings.search_size), backbone=settings.backbone)
        self.net = RoamNet(cfg).to(device)
        self.init = MetaInitializer(self.net.init_params(self.g)).to(device)
        self.opt_net = LSTMOptimizer().to(device)
        self.frames = 1 + (settings.steps + 1) * settings.lookahead
        self.sampler = ClipSampler(bank, self.frames, settings.search_size, device, self.g)
        self.adam = torch.optim.Adam([g for g in [
            {"params": list(self.net.parameters()), "lr": settings.lr_backbone},
            {"params": [v for k, v in self.init.theta.items() if not k.endswith("_f")], "lr": settings.lr_init},
            {"params": [v for k, v in self.init.theta.items() if k.endswith("_f")], "lr": settings.lr_init / 10},
            {"params": list(self.init.log_lr.parameters()), "lr": settings.lr_log_lr},
            {"params": list(self.opt_net.parameters()), "lr": settings.lr_optimizer},
        ] if g["params"]])

    def _rand(self, *shape):
        return torch.rand(*shape, generator=self.g).to(self.device)

    def _randn(self, *shape):
        return torch.randn(*shape, generator=self.g).to(self.device)

    def _windows(self, gt, t_ref, t_cur, jitter=True):
        """Windows centred on the reference frame's box (+ estimation noise), as tracking would crop."""
        b, n = t_cur.shape
        ref = gt.gather(1, t_ref.unsqueeze(-1).expand(b, n, 4))
        cur = gt.gather(1, t_cur.unsqueeze(-1).expand(b, n, 4))
        size = (ref[..., 2] * ref[..., 3]).sqrt()
        noise = 0.08 if jitter else 0.0
        centre = ref[..., :2] + self._randn(b, n, 2) * noise * size.unsqueeze(-1)
        zoom = torch.exp(self._randn(b, n) * noise)
        side = size * CONTEXT * zoom
        S = self.s.search_size
        box = window_box(cur, centre, side, S)
        anchor = ref[..., 2:] * (S / side).unsqueeze(-1)
        return centre, side, box, anchor

    @torch.no_grad()
    def calibrate_lr0(self, candidates=tuple(10.0 ** (e / 2) for e in range(-14, 1)), rounds: int = 2,
                      margin: float = 0.1, max_lr: float = 1e-2) -> dict:
        """Warm start of lambda_0: per head tensor, the constant learning rate (from `candidates`)
        whose one first-frame step gives the lowest loss on the next frame of a batch of clips
        (coordinate descent over tensors, `rounds` passes), times `margin`, at most `max_lr`. Meta-training then refines it per
        coordinate. Returns {tensor name: chosen lr}. Needed because the log-lr moves slowly under Adam
        and the right magnitude depends on the features' scale (1e-6 suits the ResNet features)."""
        s, S, dev = self.s, self.s.search_size, self.device
        b = s.batch
        clip = self.sampler.sample(b)
        gt = self.sampler.gt(clip)
        kmax = self.net.max_filter
        g0 = gt[:, 0:1]
        side0 = (g0[..., 2] * g0[..., 3]).sqrt() * CONTEXT
        f0 = self.net.features(self.sampler.crops(clip, torch.zeros(b, 1, dtype=torch.long, device=dev),
                                                  g0[..., :2], side0).flatten(0, 1)).unflatten(0, (b, 1))
        box0 = window_box(g0, g0[..., :2], side0, S)
        fs = _fsizes(box0[:, 0, 2:], S, kmax)
        t1 = torch.ones(b, 1, dtype=torch.long, device=dev)
        c, side, box, anchor = self._windows(gt, t1 - 1, t1)
        f1 = self.net.features(self.sampler.crops(clip, t1, c, side).flatten(0, 1)).unflatten(0, (b, 1))
        fs1 = _fsizes(anchor[:, 0], S, kmax)
        theta = {k: v.detach() for k, v in self.init.initial(b).items()}
        with torch.enable_grad():
            grads, _ = grad_of(self.net, f0, theta, fs, box0, box0[..., 2:], None)
        lrs = {k: float(self.init.log_lr[k].detach().exp().mean()) for k in self.init.names}

        def loss_with(lr_map):
            th = {k: theta[k] - lr_map[k] * grads[k] for k in self.init.names}
            return float(tracking_loss(self.net, f1, th, fs1, box, anchor).mean())

        order = sorted(self.init.names, key=lambda k: (not k.endswith("_f"), not k.endswith("_cw"), k))
        for _ in range(rounds):        # filters first, then compressions, then biases
            for k in order:
                best = min(candidates, key=lambda c_: loss_with({**lrs, k: c_}))
                lrs[k] = best
        for k in self.init.names:      # one decade of margin: the learned optimiser repeats such steps
            lrs[k] = min(lrs[k] * margin, max_lr)
            self.init.log_lr[k].data.fill_(math.log(lrs[k]))
        return lrs

    def episode(self) -> tuple:
        s, S, dev = self.s, self.s.search_size, self.device
        b = s.batch
        clip = self.sampler.sample(b)
        gt = self.sampler.gt(clip)                                       # [B, T, 4]
        kmax = self.net.max_filter
        scales = sample_filter_scales(b, self.g, dev)

        # first frame: 9 augmented patches (3 scales x 3 aspect ratios)
        zs = torch.tensor([0.9, 1.0, 1.1], device=dev)
        ars = torch.tensor([0.85, 1.0, 1.0 / 0.85], device=dev)
        zz, aa = torch.meshgrid(zs, ars, indexing="ij")
        stretch = torch.stack([zz.flatten() * aa.flatten().sqrt(), zz.flatten() / aa.flatten().sqrt()], -1)
        stretch = stretch.unsqueeze(0).expand(b, 9, 2)
        g0 = gt[:, 0:1].expand(b, 9, 4)
        side0 = (g0[..., 2] * g0[..., 3]).sqrt() * CONTEXT
        with torch.no_grad():
            crops = self.sampler.crops(clip, torch.zeros(b, 9, dtype=torch.long, device=dev), g0[..., :2], side0,
                                       stretch)
            f0 = self.net.features(crops.flatten(0, 1)).unflatten(0, (b, 9))
        box0 = window_box(g0, g0[..., :2], side0, S, stretch)
        anchor0 = box0[..., 2:]
        fs = _fsizes(box0[:, 4, 2:], S, kmax)
        theta = store_scaled(self.init.initial(b), scales)
        grads, loss0 = grad_of(self.net, f0, theta, fs, box0, anchor0, scales)
        lr0 = {k: self.init.log_lr[k].exp() for k in self.init.names}
        theta = {k: theta[k] - lr0[k] * grads[k] for k in self.init.names}
        state = self.opt_net.init_state(theta, lr0)
        for _ in range(s.init_steps):          # more steps on the first frame's patches (cheap features)
            grads, lw = grad_of(self.net, f0, theta, fs, box0, anchor0, scales)
            theta, state = self.opt_net.step(theta, grads, lw, state, lr0)

        meta = 0.0
        first_future = None
        L = s.lookahead
        for j in range(s.steps + 1):
            lo = 1 + j * L
            # meta-loss on a random frame of this window, cropped around the previous frame's box
            tf = (lo + (self._rand(b) * L).long().clamp(max=L - 1)).view(b, 1)
            c, side, box, anchor = self._windows(gt, tf - 1, tf)
            feats = self.net.features(self.sampler.crops(clip, tf, c, side).flatten(0, 1)).unflatten(0, (b, 1))
            fs = _fsizes(anchor[:, 0], S, kmax)
            future = tracking_loss(self.net, feats, theta, fs, box, anchor, scales).mean()
            meta = meta + future
            if first_future is None:
                first_future = future.detach()
            if j == s.steps:
                break
            # recurrent update on the whole window (features without graph: gradients are detached)
            tw = (lo + torch.arange(L, device=dev)).view(1, L).expand(b, L)
            c, side, box, anchor = self._windows(gt, tw - 1, tw)
            with torch.no_grad():
                fw = self.net.features(self.sampler.crops(clip, tw, c, side).flatten(0, 1)).unflatten(0, (b, L))
            fs = _fsizes(anchor[:, -1], S, kmax)
            grads, lw = grad_of(self.net, fw, theta, fs, box, anchor, scales)
            theta, state = self.opt_net.step(theta, grads, lw, state, lr0)
        return meta / (s.steps + 1), loss0.mean(), first_future, future.detach()

    def train(self, progress: Optional[Callable] = None, checkpoint: Optional[Callable] = None,
              checkpoint_every: int = 200) -> dict:
        start = time.monotonic()
        if self.s.calibrate_lr0 and not getattr(self, "calibrated", None):
            self.calibrated = self.calibrate_lr0()
        history = []
        it = 0
        skipped = 0
        best = math.inf
        for it in range(1, self.s.iterations + 1):
            self.net.train()
            meta, l0, first, last = self.episode()
            self.adam.zero_grad(set_to_none=True)
            value = float(meta.detach())
            recent = sorted(r["meta"] for r in history[-50:])
            if not math.isfinite(value) or (len(recent) >= 20 and value > 20 * recent[len(recent) // 2]):
                skipped += 1       # an exploding clip: skip its update rather than wreck the model
                continue
            meta.backward()
            params = list(self.net.parameters()) + list(self.init.parameters()) + list(self.opt_net.parameters())
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            self.adam.step()
            row = {"it": it, "meta": value, "init_loss": float(l0), "after_init_step": float(first),
                   "after_updates": float(last), "skipped": skipped}
            history.append(row)
            if progress:
                progress(row)
            if checkpoint and it % checkpoint_every == 0:
                rolling = sum(r["meta"] for r in history[-checkpoint_every:]) / len(history[-checkpoint_every:])
                if rolling < best:      # keep the checkpoint with the lowest rolling meta-loss
                    best = rolling
                    checkpoint(self.state_dict(history, it))
            if time.monotonic() - start > self.s.time_limit_s:
                break
        return self.state_dict(history, it)

    def state_dict(self, history, it) -> dict:
        """Everything the tracker needs, as tensors and plain values (torch.load(weights_only=True))."""
        self.net.eval()
        sd = {f"net.{k}": v.detach().cpu() for k, v in self.net.state_dict().items()
              if k not in ("mean", "std")}
        sd.update({f"init.{k}": v.detach().cpu() for k, v in self.init.state_dict().items()})
        sd.update({f"opt.{k}": v.detach().cpu() for k, v in self.opt_net.state_dict().items()})
        tail = history[-50:]
        return {"state_dict": sd, "config": self.net.config.to_dict(),
                "train": {"iterations": it, "batch": self.s.batch, "steps": self.s.steps,
                          "init_steps": self.s.init_steps, "backbone": self.s.backbone,
                          "lookahead": self.s.lookahead, "seed": self.s.seed,
                          "final_meta_loss": sum(r["meta"] for r in tail) / max(1, len(tail)),
                          "final_init_loss": sum(r["init_loss"] for r in tail) / max(1, len(tail)),
                          "final_after_updates": sum(r["after_updates"] for r in tail) / max(1, len(tail))}}


def save_atomic(obj: dict, path: Path) -> None:
    """Temp file in the same folder, fsync, rename: a crash never leaves half a checkpoint."""
    atomic_torch_save(obj, path)


def default_image_paths(root: Optional[Path] = None) -> list:
    """CamVid TRAIN frames (never a tracking evaluation sequence)."""
    root = root or shared_data_dir() / "segmentation" / "camvid"
    return sorted((Path(root) / "train").glob("*.jpg")) + sorted((Path(root) / "train").glob("*.png"))


def load_digit_masks(sheet: Optional[Path]):
    """Real handwritten digits (OpenCV's sheet, 20x20) as object shapes; None when absent."""
    if sheet is None or not Path(sheet).is_file():
        return None
    from effdl_ros.data.digits import load_opencv_digits

    images, _ = load_opencv_digits(Path(sheet), 28)
    return images[::5]


def main(argv=None) -> int:
    """Stand-alone entry for a GPU machine: python -m effdl_ros.tracking.train --images DIR --out FILE."""
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=Path, required=True, help="folder of real training images (CamVid train)")
    p.add_argument("--digits", type=Path, default=None, help="OpenCV digits sheet (object shapes)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--iterations", type=int, default=2000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--time-limit", type=float, default=math.inf)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr-backbone", type=float, default=1e-4)
    p.add_argument("--lr-optimizer", type=float, default=1e-3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args(argv)
    from effdl_ros.tracking.synth import load_texture_bank

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = False
    paths = sorted(a.images.glob("*.jpg")) + sorted(a.images.glob("*.png"))
    bank = load_texture_bank(paths, load_digit_masks(a.digits), device=a.device)
    trainer = MetaTrainer(bank, TrainSettings(iterations=a.iterations, batch=a.batch, seed=a.seed,
                                              lr_backbone=a.lr_backbone, lr_optimizer=a.lr_optimizer,
                                              time_limit_s=a.time_limit), a.device)
    t0 = time.monotonic()

    def progress(row):
        if row["it"] % 25 == 0 or row["it"] == 1:
            print(f"it {row['it']} meta {row['meta']:.4f} init {row['init_loss']:.4f} "
                  f"after-init-step {row['after_init_step']:.4f} after-updates {row['after_updates']:.4f} "
                  f"t {time.monotonic() - t0:.0f}s", flush=True)

    result = trainer.train(progress, lambda ck: save_atomic(ck, a.out), checkpoint_every=100)
    save_atomic(result, a.out.with_name(a.out.stem + "_last.pt"))
    print("saved", a.out, result["train"], flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

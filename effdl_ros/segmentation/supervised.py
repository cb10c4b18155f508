"""A segmenter trained on labelled real frames (issue 17, deliverable 1), and its honest test.

The MADAN models are trained at 120x160 on rendered scenes, and even the supervised oracle loses 16
points from frames of a sequence it trained on to frames of other sequences. This trains the same
LR-ASPP-style net (network.TinySegNet, any width) on CamVid's labelled frames at a higher resolution,
with the augmentation a small real training set needs (scale, crop, flip, colour, blur), and scores it
leaving one whole sequence out (`holdout`): the frames of a sequence it never saw, as a robot's camera is.

Training is resumable: every `checkpoint_every` iterations the model, optimiser, iteration and random
state go (atomically) to `<out>.state`; a killed run started again with the same command goes on from
there (a different command or data refuses, naming the file).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from effdl_ros.atomic_io import atomic_torch_save, safe_torch_load
from effdl_ros.data.camvid import CLASSES, DUSK, DUSK_ADAPT_FRAMES, IGNORE_INDEX, pairs, sequence_of, time_split
from effdl_ros.errors import ConfigError, DataError
from effdl_ros.segmentation.network import TinySegNet, to_input
from effdl_ros.segmentation.train import _augment, _StageBar, class_weights


@dataclass(frozen=True)
class SupervisedPlan:
    height: int = 240            # training (and the model's scale-1) input size
    width: int = 320
    net_width: float = 1.0       # TinySegNet width multiplier
    batch: int = 8
    lr: float = 2e-3             # AdamW, cosine to 0 over `iters`
    iters: int = 6000
    checkpoint_every: int = 200


def split_by_sequence(root: Path, holdout: Optional[str], *, dusk_labels: bool = False) -> Tuple[List, List]:
    """Every labelled CamVid pair (train and val splits) outside `holdout`, and those inside it.

    holdout None or 'none': all frames train, none are held out (the model to ship). Holding out the dusk
    target (0001TP) follows issue 17's protocol: only its report frames (the last 22 in time) are scored,
    and its first 40 train only with `dusk_labels` (the dusk oracle: what labelling 40 frames of the
    robot's own camera buys); without it they are not used at all."""
    everything = [p for split in ("train", "val") if (Path(root) / split).is_dir() for p in pairs(Path(root), split)]
    if not everything:
        raise DataError(f"no labelled CamVid frames under {root} (train/, val/)")
    if dusk_labels and holdout != DUSK:
        raise ConfigError(f"--dusk-labels adds the dusk adaptation frames' labels: it needs --holdout {DUSK}")
    if holdout in (None, "", "none"):
        return everything, []
    train = [p for p in everything if sequence_of(p[0]) != holdout]
    held = [p for p in everything if sequence_of(p[0]) == holdout]
    if not held:
        seqs = sorted({sequence_of(p[0]) for p in everything})
        raise ConfigError(f"--holdout {holdout}: no such CamVid sequence here (have {', '.join(seqs)})")
    if holdout == DUSK:
        adapt, held = time_split(held, DUSK_ADAPT_FRAMES)
        train += adapt if dusk_labels else []
    return train, held


def strong_augment(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
    """Flip, scale 1-1.5 and crop (as every model here), then per-image colour (brightness, contrast,
    saturation) and, for a third of the batch, a Gaussian blur: a small real set must not teach the net
    one camera's exposure and sharpness. x in [-1, 1], [N, 3, H, W]."""
    from torchvision.transforms.functional import gaussian_blur

    x, y = _augment(x, y, gen)
    n = x.shape[0]

    def u(lo: float, hi: float) -> torch.Tensor:
        return (lo + (hi - lo) * torch.rand((n, 1, 1, 1), generator=gen)).to(x.device)

    grey = x.mean(1, keepdim=True)
    x = grey + (x - grey) * u(0.6, 1.4)                        # saturation
    mean = x.mean((1, 2, 3), keepdim=True)
    x = mean + (x - mean) * u(0.7, 1.3) + u(-0.25, 0.25)       # contrast, brightness
    blur = torch.rand(n, generator=gen) < 1 / 3
    if bool(blur.any()):
        sigma = float(0.5 + 1.0 * torch.rand((), generator=gen))
        x[blur.to(x.device)] = gaussian_blur(x[blur.to(x.device)], [5, 5], [sigma, sigma])
    return x.clamp(-1.0, 1.0), y


def _signature(plan: SupervisedPlan, n_frames: int, holdout: Optional[str], seed: int) -> Dict:
    return {"plan": asdict(plan), "frames": n_frames, "holdout": holdout or "none", "seed": seed}


def train_supervised(images: np.ndarray, labels: np.ndarray, plan: SupervisedPlan, *, seed: int = 0,
                     holdout: Optional[str] = None, state_path: Optional[Path] = None,
                     seconds: float = math.inf, log: Callable[[str], None] = print) -> Tuple[TinySegNet, Dict]:
    """Train on uint8 images [N, H, W, 3] and labels [N, H, W] (11 = ignore) at plan.height x plan.width.

    :param state_path: resume from / checkpoint to this file (None: no checkpoints).
    :param seconds: stop (with a checkpoint) after this long; the next run with the same arguments goes on.
    """
    sig = _signature(plan, len(images), holdout, seed)
    torch.manual_seed(seed)
    model = TinySegNet(len(CLASSES), plan.net_width)
    opt = torch.optim.AdamW(model.parameters(), lr=plan.lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    it, spent, loss_v = 0, 0.0, math.nan
    if state_path is not None and Path(state_path).is_file():
        blob = safe_torch_load(Path(state_path), what="segmenter training state")
        if not isinstance(blob, dict) or blob.get("signature") != sig:
            raise ConfigError(f"{state_path} holds the state of another training run (other data, plan or seed); "
                              "delete it or pass the run's own arguments")
        model.load_state_dict(blob["model"])
        opt.load_state_dict(blob["opt"])
        gen.set_state(blob["gen"])
        it, spent = int(blob["it"]), float(blob["seconds"])
        loss_v = float(blob.get("loss", math.nan))
        log(f"resuming from {state_path}: iteration {it} of {plan.iters}")
    x_all = torch.from_numpy(images)
    y_all = torch.from_numpy(labels)
    weights = class_weights(y_all, len(CLASSES))
    model.train()
    t0 = time.perf_counter()
    bar = _StageBar("segmenter")
    bar.update(it / plan.iters)

    def save_state() -> None:
        if state_path is not None:
            atomic_torch_save({"signature": sig, "model": model.state_dict(), "opt": opt.state_dict(),
                               "gen": gen.get_state(), "it": it, "seconds": spent + time.perf_counter() - t0,
                               "loss": loss_v},
                              Path(state_path))

    while it < plan.iters:
        if time.perf_counter() - t0 >= seconds:
            save_state()
            bar.close()
            log(f"time budget spent at iteration {it} of {plan.iters}: state in {state_path}; run again to go on")
            return model.eval(), {"iterations": it, "finished": False}
        for g in opt.param_groups:
            g["lr"] = plan.lr * 0.5 * (1.0 + math.cos(math.pi * it / plan.iters))
        idx = torch.randint(0, len(x_all), (plan.batch,), generator=gen)
        x, y = strong_augment(to_input(x_all[idx]), y_all[idx].long(), gen)
        loss = F.cross_entropy(model(x), y, weight=weights, ignore_index=IGNORE_INDEX)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        it += 1
        if it % 50 == 0:
            loss_v = float(loss.detach())
        if it % plan.checkpoint_every == 0:
            save_state()
        bar.update(it / plan.iters)
    bar.close()
    info = {"iterations": it, "finished": True, "seconds": round(spent + time.perf_counter() - t0, 1),
            "final_loss": round(loss_v, 4) if math.isfinite(loss_v) else None}
    save_state()
    log(f"[segmenter] {info}")
    return model.eval(), info


def sequences(items: Sequence[Tuple[Path, Path]]) -> Dict[str, int]:
    """Frames per CamVid sequence, for the model card."""
    out: Dict[str, int] = {}
    for ip, _ in items:
        out[sequence_of(ip)] = out.get(sequence_of(ip), 0) + 1
    return dict(sorted(out.items()))

"""MADAN for a segmenter that is already trained: the robot's case, on a CPU (issue 17, deliverable 3).

`train_all` trains every network from scratch at one resolution, which at 240x320 needs a GPU. A robot
already has a trained segmenter (models/seg_day.pt) and the labelled sources it came from. This adapts
that segmenter to the robot's camera with MADAN's two levels:

1. pixel level: the source->target generators (CycleGAN + dynamic semantic consistency, SAD, CCD;
   train.train_pixel_level) learn at a low resolution (60x80 by default: a dusk look is mostly
   exposure and colour), with the deployed segmenter as the DSC network;
2. each source frame is translated at full resolution by adding the generator's change, computed at the
   low resolution and upsampled (`residual_translate`), so edges, poles and signs stay sharp;
3. the deployed segmenter is fine-tuned on the translated, still-labelled sources with feature-level
   alignment to the unlabelled target frames (train.train_segmenter with `target_images`).

The generators are kept in a stage file (train.StageStore), so a run killed after the GAN stage goes
on from the fine-tuning.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from effdl_ros.segmentation import train as T
from effdl_ros.segmentation.network import TinySegNet, to_input


@dataclass(frozen=True)
class AdaptPlan:
    gan_height: int = 60          # the pixel-level stage's resolution
    gan_width: int = 80
    gan_seconds: float = 1500.0   # the GAN stage stops at this time or at gan_iters
    gan_iters: int = 100000
    finetune_iters: int = 600
    lr: float = 5e-4              # fine-tuning (and the dynamic-DSC retraining): AdamW, cosine to 0
    batch: int = 8

    def madan_plan(self) -> T.Plan:
        """train.py's Plan for both stages: small generators (ngf 16, 3 blocks), identity term on,
        feature-level alignment from the first fine-tuning step."""
        return T.Plan(height=self.gan_height, width=self.gan_width, ngf=16, n_blocks=3, ndf=16, gan_batch=4,
                      idt_weight=0.5, dynamic_iters=40, seg_batch=self.batch, seg_lr=self.lr, fa_start=0.0,
                      gan_iters=self.gan_iters)


@torch.no_grad()
def residual_translate(generator: nn.Module, images: np.ndarray, low_hw: Sequence[int], batch: int = 16
                       ) -> torch.Tensor:
    """Translated copies of uint8 images [N, H, W, 3] as float [N, 3, H, W] in [-1, 1]: x plus the
    generator's change G(x_low) - x_low, upsampled bilinearly from low_hw."""
    generator.eval()
    out = []
    for i in range(0, len(images), batch):
        x = to_input(torch.from_numpy(np.ascontiguousarray(images[i:i + batch])))
        low = F.interpolate(x, size=tuple(low_hw), mode="area")
        change = F.interpolate(generator(low) - low, size=x.shape[-2:], mode="bilinear", align_corners=False)
        out.append((x + change).clamp(-1.0, 1.0))
    return torch.cat(out, 0)


def _low(images: np.ndarray, hw: Sequence[int]) -> torch.Tensor:
    import cv2

    return torch.from_numpy(np.stack([cv2.resize(im, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
                                      for im in images]))


def adapt_segmenter(model: TinySegNet, sources: Sequence[Tuple[str, np.ndarray, np.ndarray]], target: np.ndarray,
                    plan: AdaptPlan, *, seed: int = 0, work_dir: Optional[Path] = None,
                    log: Callable[[str], None] = print) -> Tuple[TinySegNet, Dict]:
    """The adapted copy of `model` and what was done.

    :param sources: (name, uint8 images [N, H, W, 3], labels [N, H, W]) at the model's input size.
    :param target: unlabelled uint8 target frames at the model's input size.
    :param work_dir: keep the generators there; a rerun with the same arguments skips the GAN stage.
    """
    mp = plan.madan_plan()
    low = (plan.gan_height, plan.gan_width)
    names = [s[0] for s in sources]
    store = T.StageStore(work_dir, {"adapt": asdict(plan), "sources": names, "seed": seed,
                                    "data": _fingerprint(model, sources, target)}, log=log)
    done = store.load_generators("MADAN pixel-level", names)
    if done is not None:
        gens, ginfo = done
    else:
        low_src = [(n, _low(x, low), torch.from_numpy(np.stack([_nearest(y_, low) for y_ in y])))
                   for n, x, y in sources]
        gens, ginfo = T.train_pixel_level(low_src, _low(target, low), [model] * len(sources), mp, madan=True,
                                          device="cpu", seed=seed + 2,
                                          seconds=plan.gan_seconds if math.isfinite(plan.gan_seconds) else math.inf,
                                          log=log, name="MADAN pixel-level")
        store.save_generators("MADAN pixel-level", gens, names, ginfo, mp, seed)
    adapted = torch.cat([residual_translate(g, x, low) for g, (_, x, _) in zip(gens, sources)], 0)
    labels = torch.from_numpy(np.concatenate([y for _, _, y in sources], 0))
    tuned, info = T.train_segmenter(adapted, labels, mp, device="cpu", seed=seed + 1, iters=plan.finetune_iters,
                                    target_images=torch.from_numpy(np.ascontiguousarray(target)), init=model,
                                    log=log, name="fine-tune on adapted sources + feature alignment")
    info = {**info, **{f"pixel_{k}": v for k, v in ginfo.items()}}
    return tuned, info


def _nearest(label: np.ndarray, hw: Sequence[int]) -> np.ndarray:
    import cv2

    return cv2.resize(label, (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST)


def _fingerprint(model: nn.Module, sources, target: np.ndarray) -> str:
    """A digest of the starting weights and every frame: kept generators are reused only for the same
    model, sources and target, never for another recording that happens to have as many frames."""
    import hashlib

    h = hashlib.sha1()
    for v in model.state_dict().values():
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    for _, x, y in sources:
        h.update(np.ascontiguousarray(x).tobytes())
        h.update(np.ascontiguousarray(y).tobytes())
    h.update(np.ascontiguousarray(target).tobytes())
    return h.hexdigest()

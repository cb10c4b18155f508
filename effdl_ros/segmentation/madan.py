"""MADAN's networks and loss terms (Zhao et al., "Multi-source Domain Adaptation for Semantic
Segmentation", NeurIPS 2019, arXiv 1910.12181), re-implemented from the facts in REFERENCES.md sec. 4.

- CycleGAN ResNet generators (instance norm) and 3-layer PatchGAN discriminators with the LSGAN loss,
  one generator pair per source, the target discriminator shared between sources.
- DSC, dynamic semantic consistency: KL(softmax(seg(x_src)) || softmax(seg(G(x_src)))), batchmean,
  divided by C*H*W, with a segmenter that is retrained on adapted images between phases.
- SAD, sub-domain aggregation discriminator: tells adapted source 1 from adapted source 2; the
  generators are trained to fool it, so the adapted sources merge into one domain.
- CCD, cross-domain cycle discriminator: tells real source j from source i taken to the target and
  back into source j's style (F_j(G_i(x_i))).
- Feature-level alignment (ADDA-style) on the segmenter's score maps, with CE domain labels, the
  adversarial term applied only while the discriminator's running accuracy exceeds 60 %.
Sizes are far smaller than the paper's (ngf 64, 9 blocks, FCN8s-VGG16) so they train in minutes.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from effdl_ros.atomic_io import atomic_torch_save, safe_torch_load
from effdl_ros.errors import DataError


class _ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), nn.InstanceNorm2d(ch), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), nn.InstanceNorm2d(ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """CycleGAN generator: c7s1-ngf, two stride-2 downs, n_blocks residual blocks, two ups, tanh."""

    def __init__(self, ngf: int = 32, n_blocks: int = 6):
        super().__init__()
        layers: List[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
        ch = ngf
        for _ in range(2):
            layers += [nn.Conv2d(ch, ch * 2, 3, 2, 1), nn.InstanceNorm2d(ch * 2), nn.ReLU(True)]
            ch *= 2
        layers += [_ResBlock(ch) for _ in range(n_blocks)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 3, 2, 1, output_padding=1), nn.InstanceNorm2d(ch // 2),
                       nn.ReLU(True)]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, 3, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        y = self.net(x)
        return y[..., :h, :w] if y.shape[-2:] != (h, w) else y


class PatchDiscriminator(nn.Module):
    """3-layer PatchGAN: one real/fake score per overlapping patch (LSGAN targets 1 / 0)."""

    def __init__(self, ndf: int = 32, in_ch: int = 3):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_ch, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1), nn.InstanceNorm2d(ndf * 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1), nn.InstanceNorm2d(ndf * 4), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 4, ndf * 8, 4, 1, 1), nn.InstanceNorm2d(ndf * 8), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 8, 1, 4, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ScoreDiscriminator(nn.Module):
    """Feature-level discriminator on softmax score maps: per-location 2-way domain logits."""

    def __init__(self, num_classes: int, ndf: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(num_classes, ndf, 3, 1, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf, 3, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf, 3, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, 2, 1))

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        return self.net(scores)


def lsgan_loss(pred: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """Least-squares GAN loss: mean (D(x) - 1)^2 for real, mean D(x)^2 for fake."""
    return F.mse_loss(pred, torch.full_like(pred, 1.0 if target_is_real else 0.0))


def cycle_loss(reconstruction: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """L1 cycle-consistency between x and F(G(x))."""
    return F.l1_loss(reconstruction, original)


def dsc_loss(scores_source: torch.Tensor, scores_adapted: torch.Tensor) -> torch.Tensor:
    """DSC: KL(softmax(seg(x)) || softmax(seg(G(x)))), batchmean, divided by C*H*W.

    :param scores_source: segmenter logits on the source image [N, C, H, W] (treated as the target
        distribution, no gradient).
    :param scores_adapted: segmenter logits on the adapted image; the gradient reaches the generator.
    """
    n, c, h, w = scores_adapted.shape
    p = F.softmax(scores_source.detach(), dim=1)
    return F.kl_div(F.log_softmax(scores_adapted, dim=1), p, reduction="batchmean") / (c * h * w)


def domain_ce(logits: torch.Tensor, domain: int) -> torch.Tensor:
    """Cross-entropy of per-location 2-way domain logits against one domain label (0 src, 1 tgt)."""
    target = torch.full((logits.shape[0],) + tuple(logits.shape[2:]), domain, dtype=torch.long,
                        device=logits.device)
    return F.cross_entropy(logits, target)


class ImagePool:
    """CycleGAN's history of generated images (size 50): the discriminator sees old fakes too."""

    def __init__(self, size: int = 50, seed: int = 0):
        self.size, self.images, self.rng = size, [], random.Random(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size <= 0:
            return images
        out = []
        for img in images.detach():
            img = img.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(img)
                out.append(img)
            elif self.rng.random() < 0.5:
                j = self.rng.randrange(self.size)
                out.append(self.images[j].clone())
                self.images[j] = img
            else:
                out.append(img)
        return torch.cat(out, 0)


class RunningAccuracy:
    """Exponential running accuracy of the feature discriminator; gates the adversarial term."""

    def __init__(self, momentum: float = 0.9, threshold: float = 0.6):
        self.value, self.momentum, self.threshold = 0.5, momentum, threshold

    def update(self, acc: float) -> float:
        self.value = self.momentum * self.value + (1.0 - self.momentum) * float(acc)
        return self.value

    @property
    def gate_open(self) -> bool:
        return self.value > self.threshold


def save_generators(path: Path, generators: Sequence[nn.Module], sources: Sequence[str], *, ngf: int,
                    n_blocks: int, input_hw: Sequence[int], seed: int, info: Optional[Dict] = None,
                    half: bool = True) -> None:
    """The source -> target generators of one pixel-level run (float16 unless ``half`` is False),
    saved atomically; ``info`` (what the run did) is kept in the config.

    GAN training is the expensive stage (minutes of a GPU); with its generators kept, the adapted
    scenes can be re-made and the cheap segmenter stage retrained on a CPU.
    """
    if len(generators) != len(sources):
        raise ValueError(f"{len(generators)} generators for {len(sources)} sources")
    state = {s: {k: v.detach().cpu().half() if half and v.is_floating_point() else v.detach().cpu()
                 for k, v in g.state_dict().items()} for s, g in zip(sources, generators)}
    config = {"kind": "madan_generators", "sources": list(sources), "ngf": int(ngf), "n_blocks": int(n_blocks),
              "input_hw": [int(v) for v in input_hw], "seed": int(seed), "info": dict(info or {})}
    atomic_torch_save({"generators": state, "config": config}, path)


def load_generators(path: Path) -> "tuple[Dict[str, ResnetGenerator], Dict]":
    """{source: generator in eval mode} and the run's config; a bad file is one DataError naming it."""
    blob = safe_torch_load(path, what="generator file")
    cfg = blob.get("config") if isinstance(blob, dict) else None
    if not isinstance(cfg, dict) or cfg.get("kind") != "madan_generators" \
            or not isinstance(blob.get("generators"), dict):
        raise DataError(f"generator file {path} is not a MADAN generator file (no 'madan_generators' config)")
    out = {}
    for source, state in blob["generators"].items():
        g = ResnetGenerator(int(cfg["ngf"]), int(cfg["n_blocks"]))
        try:
            g.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        except Exception as err:  # noqa: BLE001
            raise DataError(f"generator file {path} does not match its config: {str(err).splitlines()[0]}") from None
        out[source] = g.eval()
    return out, cfg

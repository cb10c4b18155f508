"""Early-Bird tickets (You et al., "Drawing Early-Bird Tickets", ICLR 2020), REFERENCES.md section 2.

- Network slimming: after backward, add s * sign(gamma) to every BN weight's gradient (s = 1e-4).
- Per epoch, a GLOBAL threshold over |gamma| of the prunable BNs: the value at floor(total * ratio)
  of the sorted list; mask = |gamma| > threshold.
- A FIFO of the last 5 masks; distance = normalised Hamming distance; the ticket is drawn when the
  newest mask is within epsilon (0.1) of each of the 4 older ones.

Masks are taken at the END of each epoch (= the start of the next). At the start of epoch 0 every
gamma is 1, so the sorted threshold ties and the mask is meaningless; the paper's first masks are
likewise far apart and never trigger.
"""
from __future__ import annotations

from collections import deque
from typing import Deque, List, Optional, Sequence, Tuple

import torch
from torch import nn

from effdl_ros.training.resnet import GatedResNet


def prunable_bns(model: GatedResNet) -> List[Tuple[str, nn.BatchNorm2d]]:
    """The BNs whose channels prune.py can remove: each block's bn1 and bn2 (not the stem's)."""
    out = []
    for i, block in enumerate(model.blocks):
        out.append((f"blocks.{i}.bn1", block.bn1))
        out.append((f"blocks.{i}.bn2", block.bn2))
    return out


def add_slimming_grad(model: nn.Module, s: float = 1e-4) -> None:
    """Network slimming's L1 sub-gradient on every BN scale (call after backward, before step)."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d) and m.weight is not None and m.weight.grad is not None:
            m.weight.grad.add_(s * torch.sign(m.weight.detach()))


def bn_mask(model: GatedResNet, ratio: float) -> torch.Tensor:
    """Boolean mask over the concatenated prunable BN channels: |gamma| > global threshold."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"pruning ratio must be in [0, 1), got {ratio}")
    gammas = torch.cat([bn.weight.detach().abs().flatten() for _, bn in prunable_bns(model)])
    ordered, _ = torch.sort(gammas)
    threshold = ordered[int(gammas.numel() * ratio)] if ratio > 0 else ordered[0] - 1
    return gammas > threshold


def split_mask(model: GatedResNet, mask: torch.Tensor) -> List[torch.Tensor]:
    """The global mask cut back into one piece per prunable BN (same order as prunable_bns)."""
    sizes = [bn.num_features for _, bn in prunable_bns(model)]
    return list(torch.split(mask, sizes))


def mask_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Normalised Hamming distance: share of positions where the two masks differ (0..1)."""
    if a.shape != b.shape:
        raise ValueError(f"masks differ in size: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.numel() == 0:
        return 0.0
    return float((a.bool() != b.bool()).float().mean())


class EarlyBirdDetector:
    """Feed one mask per epoch; ``found`` turns true when the last ``fifo`` masks agree within eps."""

    def __init__(self, *, fifo: int = 5, epsilon: float = 0.1) -> None:
        if fifo < 2:
            raise ValueError("the FIFO must hold at least 2 masks")
        self.fifo, self.epsilon = fifo, epsilon
        self.masks: Deque[torch.Tensor] = deque(maxlen=fifo)
        self.found = False
        self.history: List[float] = []  # max distance of the newest mask to the older ones

    def update(self, mask: torch.Tensor) -> float:
        """Add the newest mask; returns its largest distance to the older masks in the FIFO (1 if none)."""
        self.masks.append(mask.clone())
        older = list(self.masks)[:-1]
        dist = max((mask_distance(mask, m) for m in older), default=1.0)
        self.history.append(dist)
        if len(self.masks) == self.fifo and dist <= self.epsilon:
            self.found = True
        return dist


def masks_for_ratios(model: GatedResNet, ratios: Sequence[float]) -> dict:
    return {r: bn_mask(model, r) for r in ratios}


def channel_share(mask: Optional[torch.Tensor]) -> float:
    return float(mask.float().mean()) if mask is not None and mask.numel() else 1.0

"""MDDA's networks (Zhao et al., AAAI 2020, arXiv 1911.11554), optionally narrowed for CPU training.

The original encoder is 3 x (conv5x5 -> BN -> ReLU) with 64/64/128 channels and max-pooling after the
first two, then FC 3072 -> ReLU -> dropout(keep 0.9) -> FC 2048; the classifier is one FC layer; the
Wasserstein critic is an MLP 3000-2000-1000-1 with leaky ReLU; input 28x28x3. ``NetSizes.paper()``
gives those sizes; ``NetSizes()`` (the default) keeps the same layer structure at reduced widths so the
whole benchmark trains on two CPU threads in minutes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Tuple

import torch
from torch import nn


@dataclass(frozen=True)
class NetSizes:
    conv: Tuple[int, int, int] = (16, 32, 32)
    fc: int = 256
    feature: int = 128
    critic: Tuple[int, ...] = (256, 128)  # hidden widths
    n_classes: int = 10

    @classmethod
    def paper(cls) -> "NetSizes":
        return cls(conv=(64, 64, 128), fc=3072, feature=2048, critic=(3000, 2000, 1000))

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "NetSizes":
        return cls(conv=tuple(d["conv"]), fc=int(d["fc"]), feature=int(d["feature"]),
                   critic=tuple(d["critic"]), n_classes=int(d["n_classes"]))


class Encoder(nn.Module):
    """28x28x3 image -> feature vector (MDDA's conv encoder)."""

    def __init__(self, sizes: NetSizes = NetSizes()):
        super().__init__()
        c1, c2, c3 = sizes.conv
        self.conv = nn.Sequential(
            nn.Conv2d(3, c1, 5, padding=2), nn.BatchNorm2d(c1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5, padding=2), nn.BatchNorm2d(c2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 5, padding=2), nn.BatchNorm2d(c3), nn.ReLU(inplace=True),
        )
        self.fc = nn.Sequential(
            nn.Flatten(), nn.Linear(c3 * 7 * 7, sizes.fc), nn.ReLU(inplace=True), nn.Dropout(0.1),
            nn.Linear(sizes.fc, sizes.feature),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x))


def make_classifier(sizes: NetSizes = NetSizes()) -> nn.Module:
    """One FC layer on the features (the paper's classifier)."""
    return nn.Linear(sizes.feature, sizes.n_classes)


def make_critic(sizes: NetSizes = NetSizes()) -> nn.Module:
    """Wasserstein critic: MLP with leaky ReLU, one unbounded output (no sigmoid)."""
    layers, width = [], sizes.feature
    for hidden in sizes.critic:
        layers += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
        width = hidden
    return nn.Sequential(*layers, nn.Linear(width, 1))


def encoder_macs(sizes: NetSizes = NetSizes()) -> int:
    """Multiply-accumulates of one encoder+classifier forward pass on one 28x28 image."""
    c1, c2, c3 = sizes.conv
    convs = 28 * 28 * c1 * 3 * 25 + 14 * 14 * c2 * c1 * 25 + 7 * 7 * c3 * c2 * 25
    fcs = c3 * 49 * sizes.fc + sizes.fc * sizes.feature + sizes.feature * sizes.n_classes
    return int(convs + fcs)

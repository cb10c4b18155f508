"""The DDI network for training: a CIFAR-style ResNet with MGL2S gates and exit classifiers.

Dual Dynamic Inference (Wang et al., IEEE JSTSP 14(4) 2020, arXiv 1907.04523): per input, a
*layer gate* may skip a whole residual block and *channel gates* may skip groups of a block's inner
channels (multi-grained layer-to-skip, MGL2S); exit classifiers at stage ends allow resource-dependent
early halting. Gates follow the same group's SLU/SkipNet design: global average pool of the block input
-> one linear layer -> hard 0/1 decisions, trained with a straight-through estimator (the forward uses
the hard decision, the backward the sigmoid's gradient) and a computation target in the loss.

This module computes the full graph and multiplies by the 0/1 gates, which is what training needs
(gradients through every gate). Inference that really skips work lives in effdl_ros/ddi/engine.py
and reproduces this module's eval outputs exactly.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from effdl_ros.errors import ConfigError


@dataclass
class DDIConfig:
    """Architecture of one DDI (or static, gated=False) network."""

    in_channels: int = 1
    num_classes: int = 10
    image_size: int = 28
    widths: Tuple[int, ...] = (16, 32, 64)
    blocks: Tuple[int, ...] = (2, 2, 2)
    groups: int = 4                 # channel groups per block that channel gates switch
    gated: bool = True              # False: a static ResNet (no gates), the baseline
    exit_channels: int = 32         # width of the conv in each intermediate exit head
    exits: bool = True              # False: only the final classifier
    stem_stride: int = 1            # 2 halves the resolution once, before the first stage
    exit_pool: int = 1              # intermediate exits pool to exit_pool x exit_pool (1 = global average)

    @property
    def stem_size(self) -> int:
        """Side of the feature map the first stage sees."""
        return (self.image_size - 1) // self.stem_stride + 1

    def to_dict(self) -> Dict:
        d = asdict(self)
        d["widths"] = list(self.widths)
        d["blocks"] = list(self.blocks)
        return d

    @classmethod
    def from_dict(cls, d: Dict) -> "DDIConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for key in ("widths", "blocks"):
            if key in known:
                known[key] = tuple(int(v) for v in known[key])
        return cls(**known)

    def validate(self) -> None:
        if len(self.widths) != len(self.blocks) or not self.widths:
            raise ConfigError(f"widths {self.widths} and blocks {self.blocks} must have the same length")
        if any(w % self.groups for w in self.widths):
            raise ConfigError(f"every width in {self.widths} must be divisible by groups={self.groups}")
        if any(b < 1 for b in self.blocks):
            raise ConfigError(f"every stage needs >= 1 block, got {self.blocks}")
        if self.exit_pool < 1:
            raise ConfigError(f"exit_pool must be >= 1, got {self.exit_pool}")


def straight_through(logits: torch.Tensor) -> torch.Tensor:
    """Hard 0/1 (logit > 0) in the forward, sigmoid gradient in the backward."""
    soft = torch.sigmoid(logits)
    hard = (logits > 0).to(soft.dtype)
    return hard + soft - soft.detach()


class GatedBlock(nn.Module):
    """BasicBlock with an optional layer gate (identity shortcut only) and channel-group gates."""

    def __init__(self, cin: int, cout: int, stride: int, groups: int, gated: bool) -> None:
        super().__init__()
        self.cin, self.cout, self.stride, self.groups = cin, cout, stride, groups
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        # A block whose shortcut is not the identity cannot be skipped as a whole (SkipNet does the same).
        self.layer_gated = gated and self.downsample is None
        self.gated = gated
        self.gate = None
        if gated:
            self.gate = nn.Linear(cin, groups + int(self.layer_gated))
            nn.init.normal_(self.gate.weight, std=0.01)
            nn.init.constant_(self.gate.bias, 1.0)      # start with everything on

    def gate_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.gate(x.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor, force_on: bool = False,
                keep: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (output, layer gate [B], channel gates [B, G]) - all-ones gates when ungated.

        keep [B] (0/1), layer-gated blocks only: 0 skips the block whatever its gate says, as the
        engine's budget halting does (a force-skipped block)."""
        b = x.shape[0]
        if self.gated and not force_on:
            logits = self.gate_logits(x)
            g = straight_through(logits)
            if self.layer_gated:
                layer, channels = g[:, 0], g[:, 1:]
            else:
                layer, channels = torch.ones(b, device=x.device), g
        else:
            layer = torch.ones(b, device=x.device)
            channels = torch.ones(b, self.groups, device=x.device)
        if keep is not None and self.layer_gated:
            layer = layer * keep.to(layer.dtype)
        h = F.relu(self.bn1(self.conv1(x)))
        h = h * channels.repeat_interleave(self.cout // self.groups, dim=1)[:, :, None, None]
        h = self.bn2(self.conv2(h))
        shortcut = x if self.downsample is None else self.downsample(x)
        out = F.relu(shortcut + layer[:, None, None, None] * h)
        return out, layer, channels


class ExitHead(nn.Module):
    """Intermediate exit: conv3x3 stride 2 + BN + ReLU + average pool to pool x pool + linear; the final
    exit is global average pool + linear. A pool grid > 1 keeps the coarse layout that an early, local
    feature map needs (where strokes are), at pool^2 x the linear layer's MACs."""

    def __init__(self, cin: int, num_classes: int, conv_channels: int, pool: int = 1) -> None:
        super().__init__()
        self.conv = None
        self.pool = pool
        if conv_channels > 0:
            self.conv = nn.Sequential(nn.Conv2d(cin, conv_channels, 3, 2, 1, bias=False),
                                      nn.BatchNorm2d(conv_channels), nn.ReLU(inplace=True))
            cin = conv_channels
        self.fc = nn.Linear(cin * pool * pool, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv is not None:
            x = self.conv(x)
        if self.pool == 1:
            return self.fc(x.mean(dim=(2, 3)))
        return self.fc(F.adaptive_avg_pool2d(x, self.pool).flatten(1))


class DDINet(nn.Module):
    def __init__(self, config: DDIConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        w0 = config.widths[0]
        self.stem = nn.Sequential(nn.Conv2d(config.in_channels, w0, 3, config.stem_stride, 1, bias=False),
                                  nn.BatchNorm2d(w0), nn.ReLU(inplace=True))
        stages: List[nn.ModuleList] = []
        cin = w0
        for s, (width, n) in enumerate(zip(config.widths, config.blocks)):
            blocks = []
            for i in range(n):
                stride = 2 if (s > 0 and i == 0) else 1
                blocks.append(GatedBlock(cin, width, stride, config.groups, config.gated))
                cin = width
            stages.append(nn.ModuleList(blocks))
        self.stages = nn.ModuleList(stages)
        last = len(config.widths) - 1
        heads = []
        for s, width in enumerate(config.widths):
            if s == last:
                heads.append(ExitHead(width, config.num_classes, 0))
            elif config.exits:
                heads.append(ExitHead(width, config.num_classes, config.exit_channels, config.exit_pool))
        self.heads = nn.ModuleList(heads)

    @property
    def num_exits(self) -> int:
        return len(self.heads)

    def exit_stages(self) -> List[int]:
        """Stage index after which each exit sits."""
        n = len(self.config.widths)
        return list(range(n)) if self.config.exits else [n - 1]

    def forward(self, x: torch.Tensor, force_on: bool = False,
                keep: Optional[torch.Tensor] = None) -> Dict[str, object]:
        """All exits' logits plus the gates used, for training and the equivalence tests.

        keep [B, n_blocks] (0/1): force-skip layer-gated blocks where 0 (budget halting, see engine)."""
        x = self.stem(x)
        exits: List[torch.Tensor] = []
        layers: List[torch.Tensor] = []
        channels: List[torch.Tensor] = []
        exit_at = set(self.exit_stages())
        head = 0
        j = 0
        for s, stage in enumerate(self.stages):
            for block in stage:
                x, layer, ch = block(x, force_on=force_on, keep=None if keep is None else keep[:, j])
                j += 1
                layers.append(layer)
                channels.append(ch)
            if s in exit_at:
                exits.append(self.heads[head](x))
                head += 1
        return {"exits": exits, "layers": layers, "channels": channels}

    def blocks(self) -> List[GatedBlock]:
        return [b for stage in self.stages for b in stage]


def block_macs(block: GatedBlock, h_in: int) -> Tuple[int, int, int, int]:
    """(conv1 MACs, conv2 MACs, shortcut MACs, gate MACs) of a block at full width, input h_in x h_in."""
    h_out = (h_in - 1) // block.stride + 1
    conv1 = block.cout * block.cin * 9 * h_out * h_out
    conv2 = block.cout * block.cout * 9 * h_out * h_out
    short = block.cout * block.cin * h_out * h_out if block.downsample is not None else 0
    gate = block.cin * block.gate.out_features if block.gate is not None else 0
    return conv1, conv2, short, gate


def expected_cost_fraction(model: DDINet, out: Dict[str, object]) -> torch.Tensor:
    """Per-sample executed share of the gateable block MACs (differentiable through the STE gates)."""
    size = model.config.stem_size
    total = 0.0
    cost = None
    for block, layer, ch in zip(model.blocks(), out["layers"], out["channels"]):
        c1, c2, _, _ = block_macs(block, size)
        size = (size - 1) // block.stride + 1
        frac = ch.mean(dim=1)
        term = layer * frac * (c1 + c2)
        cost = term if cost is None else cost + term
        total += c1 + c2
    return cost / total


__all__ = ["DDIConfig", "DDINet", "GatedBlock", "ExitHead", "straight_through", "block_macs",
           "expected_cost_fraction"]

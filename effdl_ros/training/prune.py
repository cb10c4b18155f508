"""Physical channel pruning of a GatedResNet from an Early-Bird mask: a smaller model, not a mask.

For each BasicBlock: bn1's kept channels become conv1's outputs and conv2's inputs; bn2's kept channels
become conv2's outputs, written back into those trunk channels (index_add) while the others carry the
shortcut alone. The parameter-free shortcut and the stem are untouched, as the original skips
downsample BNs (You et al., ICLR 2020; network slimming, Liu et al., ICCV 2017). Every layer keeps at
least its strongest channel, so no convolution becomes empty. Weights of kept channels are copied:
the pruned net can continue training from the ticket's weights.
"""
from __future__ import annotations

import copy
from typing import List

import torch

from effdl_ros.training.early_bird import prunable_bns, split_mask
from effdl_ros.training.resnet import GatedResNet, ResNetConfig


def _keep(mask: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    idx = mask.nonzero().flatten()
    if idx.numel() == 0:
        idx = gamma.detach().abs().argmax().view(1)
    return idx


def prune_resnet(model: GatedResNet, mask: torch.Tensor) -> GatedResNet:
    """A new, physically smaller GatedResNet keeping the channels where ``mask`` (global) is True."""
    pieces = split_mask(model, mask)
    bns = prunable_bns(model)
    mids: List[int] = []
    out_index: List[List[int]] = []
    keeps = []
    for i, block in enumerate(model.blocks):
        k1 = _keep(pieces[2 * i], bns[2 * i][1].weight)
        k2 = _keep(pieces[2 * i + 1], bns[2 * i + 1][1].weight)
        trunk = (block.out_index if block.out_index is not None
                 else torch.arange(block.out_ch))
        mids.append(int(k1.numel()))
        out_index.append([int(c) for c in trunk[k2]])
        keeps.append((k1, k2))
    cfg = ResNetConfig(**{**model.config.to_dict(), "mids": mids, "out_index": out_index})
    new = GatedResNet(cfg)
    with torch.no_grad():
        for name in ("stem", "stem_bn", "fc"):
            getattr(new, name).load_state_dict(getattr(model, name).state_dict())
        if model.gates is not None:
            new.gates.load_state_dict(model.gates.state_dict())
            new.lstm.load_state_dict(model.lstm.state_dict())
            new.gate_fc.load_state_dict(model.gate_fc.state_dict())
        for old_b, new_b, (k1, k2) in zip(model.blocks, new.blocks, keeps):
            new_b.conv1.weight.copy_(old_b.conv1.weight[k1])
            new_b.conv2.weight.copy_(old_b.conv2.weight[k2][:, k1])
            for old_bn, new_bn, k in ((old_b.bn1, new_b.bn1, k1), (old_b.bn2, new_b.bn2, k2)):
                new_bn.weight.copy_(old_bn.weight[k])
                new_bn.bias.copy_(old_bn.bias[k])
                new_bn.running_mean.copy_(old_bn.running_mean[k])
                new_bn.running_var.copy_(old_bn.running_var[k])
                new_bn.num_batches_tracked.copy_(old_bn.num_batches_tracked)
    return new


def reinitialised(model: GatedResNet, seed: int = 0) -> GatedResNet:
    """The same (pruned) architecture with fresh weights: EB 'from scratch'."""
    torch.manual_seed(seed)
    return GatedResNet(copy.deepcopy(model.config))

"""Adapt a segmenter to a new camera by re-estimating its batch-norm statistics (AdaBN).

Li et al., "Revisiting Batch Normalization for Practical Domain Adaptation" (2016): a network's
learned weights mostly carry over between domains, while each BatchNorm layer's running mean and
variance describe the training domain's activations. Replacing them with statistics of the target
camera's unlabelled frames is the cheapest adaptation there is: no labels, no gradients, no GANs,
seconds on a CPU. It is the simple baseline every heavier adaptation (MADAN) must beat, and the one a
robot can run on board. Weights and biases are left exactly as they were.
"""
from __future__ import annotations

from typing import Dict

import numpy as np
import torch
import torch.nn as nn

from effdl_ros.errors import ConfigError


def batchnorm_layers(model: nn.Module) -> Dict[str, nn.modules.batchnorm._BatchNorm]:
    return {name: m for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}


@torch.no_grad()
def adapt_batchnorm(model: nn.Module, images: np.ndarray, *, batch: int = 8) -> Dict[str, int]:
    """Replace every BatchNorm layer's running statistics with those of `images` (RGB uint8 [N, H, W, 3],
    already at the model's input size), in place; the model is returned to eval mode.

    The new statistics are the plain average over the batches (momentum None), not a decayed one that
    would favour the last frames."""
    from effdl_ros.segmentation.network import to_input

    layers = batchnorm_layers(model)
    if not layers:
        raise ConfigError("the model has no batch-norm layers, so there are no statistics to adapt")
    if len(images) == 0:
        raise ConfigError("AdaBN needs at least one target frame")
    saved = {name: m.momentum for name, m in layers.items()}
    for m in layers.values():
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: the plain mean over every batch seen
    model.train()
    try:
        for i in range(0, len(images), max(1, batch)):
            model(to_input(torch.from_numpy(np.ascontiguousarray(images[i:i + batch]))))
    finally:
        for name, m in layers.items():
            m.momentum = saved[name]
        model.eval()
    return {"frames": int(len(images)), "batchnorm_layers": len(layers), "batch": int(batch)}

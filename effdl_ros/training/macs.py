"""Count the multiply-accumulates that really ran, from the tensors each layer saw.

Forward hooks on Conv2d / Linear / LSTMCell read the actual input and output shapes, so a block run on
a sub-batch (SLU), a pruned layer (Early-Bird) or a dropped mini-batch (SMD: no forward at all) is
counted as what it executed, not as the dense model. Backward MACs follow the usual rule (e.g.
Sze et al., "Efficient Processing of DNNs", 2017): the weight gradient costs one forward's MACs when
the weight needs a gradient, the input gradient one more when the input needs one (not for the stem,
whose input is the image). Convolution MACs are also kept apart so PSG's bit widths can be modelled.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List

import torch
from torch import nn


@dataclass
class MacTally:
    forward: int = 0
    backward: int = 0
    conv_forward: int = 0        # part of `forward` done in Conv2d layers
    conv_weight_grad: int = 0    # part of `backward`: conv weight gradients
    conv_input_grad: int = 0     # part of `backward`: conv input gradients
    by_layer: Dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.forward + self.backward


def _conv_macs(module: nn.Conv2d, out: torch.Tensor) -> int:
    kh, kw = module.kernel_size
    return out.numel() * (module.in_channels // module.groups) * kh * kw


class MacCounter:
    """Attach to a model; every forward adds its executed MACs (and the backward it implies)."""

    def __init__(self, model: nn.Module, *, training: bool = True) -> None:
        self.tally = MacTally()
        self.training = training
        self.enabled = True
        self._handles: List = []
        for name, module in model.named_modules():
            if isinstance(module, (nn.Conv2d, nn.Linear, nn.LSTMCell)):
                self._handles.append(module.register_forward_hook(self._hook(name)))

    def _hook(self, name: str):
        def hook(module, inputs, output):
            if not self.enabled:
                return
            x = inputs[0]
            if isinstance(module, nn.Conv2d):
                macs = _conv_macs(module, output)
            elif isinstance(module, nn.Linear):
                macs = output.numel() * module.in_features
            else:  # LSTMCell: 4 gates x hidden x (input + hidden)
                macs = x.shape[0] * 4 * module.hidden_size * (module.input_size + module.hidden_size)
            if macs == 0:
                return
            t = self.tally
            t.forward += macs
            t.by_layer[name] = t.by_layer.get(name, 0) + macs
            conv = isinstance(module, nn.Conv2d)
            if conv:
                t.conv_forward += macs
            if self.training and torch.is_grad_enabled():
                w = getattr(module, "weight", None) if not isinstance(module, nn.LSTMCell) else module.weight_ih
                weight_grad = macs if w.requires_grad else 0
                input_grad = macs if x.requires_grad else 0
                t.backward += weight_grad + input_grad
                if conv:
                    t.conv_weight_grad += weight_grad
                    t.conv_input_grad += input_grad
        return hook

    def reset(self) -> MacTally:
        old, self.tally = self.tally, MacTally()
        return old

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def __enter__(self) -> "MacCounter":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def inference_macs(model: nn.Module, sample: torch.Tensor) -> int:
    """Forward MACs of one batch in eval mode, divided by the batch size (per-sample MACs)."""
    was_training = model.training
    model.eval()
    counter = MacCounter(model, training=False)
    try:
        with torch.no_grad():
            model(sample)
    finally:
        counter.remove()
        model.train(was_training)
    return counter.tally.forward // max(1, sample.shape[0])

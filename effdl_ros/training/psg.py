"""Predictive sign gradients (PSG), E2-Train (Wang et al., NeurIPS 2019, arXiv 1910.13349), section 1.

Inside every convolution (REFERENCES.md section 1, item 7):
- main branch: 8-bit inputs and per-filter 8-bit weights (symmetric min-max quantiser,
  delta = range / 2^b, round, straight-through); it gives the forward output and the input gradient;
- predictor branch: 4-bit input, 16-bit output gradient; its weight gradient predicts the sign;
- backward: where the predictor's weight gradient satisfies |g_pred| >= threshold (5e-5) use it, elsewhere
  the 8-bit branch's; then take the SIGN. Input ranges are running maxima (0.1*old + 0.9*new).

What is real and what is modelled: a CPU has no fast 4-bit or 8-bit convolution kernel in PyTorch, so
both branches run as fake-quantised float32 convolutions and PSG makes CPU training SLOWER, not
faster. Its saving is reported in MODELLED energy (``mac_energy_pj``), with the bit widths stated:
that is what the paper claims for low-precision hardware, where only the entries whose predicted
gradient is below threshold need the 8-bit weight gradient.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.grad import conv2d_input, conv2d_weight

# --- modelled energy per MAC --------------------------------------------------------------------
#: Horowitz, "Computing's energy problem", ISSCC 2014 (45 nm): 8-bit int multiply 0.2 pJ, 8-bit
#: int add 0.03 pJ, 32-bit float multiply 3.7 pJ, 32-bit float add 0.9 pJ.
INT8_MUL_PJ = 0.2
INT8_ADD_PJ = 0.03
FP32_MAC_PJ = 3.7 + 0.9


def mac_energy_pj(a_bits: int, b_bits: int) -> float:
    """Modelled energy of one MAC with operands of a_bits x b_bits.

    32 x 32 is a float32 MAC (Horowitz 2014). Narrower integer MACs scale from the 8-bit figures with
    the ASSUMPTION that an array multiplier's energy grows with the product of the operand widths and an
    adder's with its width (so 4x16 = 0.2 * 64/64 + 0.03 * 16/8 pJ). A model, not a measurement.
    """
    if a_bits >= 32 and b_bits >= 32:
        return FP32_MAC_PJ
    return INT8_MUL_PJ * (a_bits * b_bits) / 64.0 + INT8_ADD_PJ * max(a_bits, b_bits) / 8.0


@dataclass(frozen=True)
class PsgBits:
    """Bit widths of the PSG model (E2-Train's: 8-bit main, 4-bit input / 16-bit gradient predictor)."""

    main: int = 8
    predictor_input: int = 4
    predictor_grad: int = 16
    main_grad: int = 32  # the main branch's output gradient stays float32 here (not fixed by the paper)


@dataclass
class PsgStats:
    weight_grad_entries: int = 0   # conv weight-gradient entries computed
    predicted_entries: int = 0     # ... of which the predictor's sign was used

    @property
    def predicted_fraction(self) -> float:
        return self.predicted_entries / self.weight_grad_entries if self.weight_grad_entries else 0.0


def quantize(x: torch.Tensor, bits: int, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric min-max quantiser: delta = 2*scale / 2^bits, round, clamp to the signed range."""
    delta = (2.0 * scale / (2 ** bits)).clamp_min(1e-12)
    q = torch.round(x / delta).clamp(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return q * delta


def per_filter_scale(w: torch.Tensor) -> torch.Tensor:
    return w.detach().abs().amax(dim=(1, 2, 3), keepdim=True)


class _PsgConvFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, in_scale, module):
        w8 = quantize(weight, module.bits.main, per_filter_scale(weight))
        x8 = quantize(x, module.bits.main, in_scale)
        ctx.save_for_backward(x, w8, in_scale)
        ctx.module = module
        return F.conv2d(x8, w8, None, module.stride, module.padding, module.dilation, module.groups)

    @staticmethod
    def backward(ctx, grad_out):
        x, w8, in_scale = ctx.saved_tensors
        m = ctx.module
        args = (m.stride, m.padding, m.dilation, m.groups)
        grad_x = None
        if ctx.needs_input_grad[0]:  # input gradient: 8-bit branch only (straight-through on x)
            grad_x = conv2d_input(x.shape, w8, grad_out, *args)
        grad_w = None
        if ctx.needs_input_grad[1]:
            x4 = quantize(x, m.bits.predictor_input, in_scale)
            g16 = quantize(grad_out, m.bits.predictor_grad, grad_out.detach().abs().amax())
            g_pred = conv2d_weight(x4, w8.shape, g16, *args)
            use_pred = g_pred.abs() >= m.threshold
            x8 = quantize(x, m.bits.main, in_scale)
            g_main = conv2d_weight(x8, w8.shape, grad_out, *args)
            grad_w = torch.sign(torch.where(use_pred, g_pred, g_main))
            if m.stats is not None:
                m.stats.weight_grad_entries += use_pred.numel()
                m.stats.predicted_entries += int(use_pred.sum())
        return grad_x, grad_w, None, None


class PsgConv2d(nn.Conv2d):
    """A Conv2d whose training forward is 8-bit and whose weight gradient is a predicted sign."""

    def __init__(self, *args, threshold: float = 5e-5, bits: PsgBits = PsgBits(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.threshold = threshold
        self.bits = bits
        self.stats: PsgStats | None = None
        self.register_buffer("in_range", torch.zeros(()), persistent=False)  # keeps state-dict keys
        self.psg_enabled = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.psg_enabled and self.training and torch.is_grad_enabled()):
            return super().forward(x)
        with torch.no_grad():
            new = x.detach().abs().max()
            if float(self.in_range) == 0.0:
                self.in_range.copy_(new)
            else:
                self.in_range.mul_(0.1).add_(0.9 * new)  # running max, 0.1*old + 0.9*new
        out = _PsgConvFn.apply(x, self.weight, self.in_range.clone(), self)
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1)
        return out


def convert_to_psg(model: nn.Module, *, threshold: float = 5e-5, bits: PsgBits = PsgBits(),
                   stats: PsgStats | None = None, exclude: tuple = ("gates",)) -> PsgStats:
    """Swap every Conv2d of ``model`` for a PsgConv2d sharing the same weights (in place).

    Modules whose qualified name starts with one of ``exclude`` (the SLU gates) keep float convs.
    """
    stats = stats if stats is not None else PsgStats()
    for pname, parent in list(model.named_modules()):
        if any(pname.startswith(e) for e in exclude):
            continue
        for name, child in list(parent.named_children()):
            if type(child) is nn.Conv2d:
                new = PsgConv2d(child.in_channels, child.out_channels, child.kernel_size, child.stride,
                                child.padding, child.dilation, child.groups, child.bias is not None,
                                threshold=threshold, bits=bits)
                new.weight = child.weight
                if child.bias is not None:
                    new.bias = child.bias
                new.stats = stats
                setattr(parent, name, new)
            elif isinstance(child, PsgConv2d):
                child.stats, child.threshold, child.bits = stats, threshold, bits
    return stats


def set_psg(model: nn.Module, enabled: bool) -> None:
    for m in model.modules():
        if isinstance(m, PsgConv2d):
            m.psg_enabled = enabled


def sign_parameters(model: nn.Module):
    """The parameters whose gradients PSG replaces by a sign (the conv weights)."""
    return [m.weight for m in model.modules() if isinstance(m, PsgConv2d)]

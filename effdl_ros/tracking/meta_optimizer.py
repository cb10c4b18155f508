"""ROAM's meta-learned pieces: the meta-initialiser and the coordinate-wise recurrent optimiser.

ROAM (CVPR 2020, arXiv 1907.12006; REFERENCES.md section 5):
- meta-initialiser: learned initial head parameters theta_0 and per-parameter learning rates
  lambda_0; on the first frame ONE step theta_1 = theta_0 - lambda_0 * grad;
- recurrent optimiser: a 2-layer LSTM (hidden 20) shared by every coordinate; its input per parameter
  is [previous lr (as log(lr)/10), log|g|/10, sign g, parameter, loss]; theta <- theta - lr*g;
  ROAM's lr = sigmoid(Linear(h)) (bias -10) overshot here (a resized filter sums thousands of taps, so
  the stable lr is ~1e-6 and differs per tensor); ours is lr = lambda_0 * exp(3 tanh(Linear(h))), i.e.
  the LSTM scales the meta-initialiser's per-parameter lr by 0.05x..20x (x1 at the start);
- Random Filter Scaling: the stored filter is theta/s and the net runs with theta*s,
  s = exp(U(-r, r)), r = 1.6 (response) and 1.3 (regression), so the optimiser learns to cope with
  parameters of any magnitude.
Gradients fed to the optimiser are detached (first-order meta-gradients), which keeps meta-training
cheap; the learning rates still receive meta-gradients through theta - lr * g.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn

Params = Dict[str, torch.Tensor]
RFS_RANGE = {"r_f": 1.6, "g_f": 1.3}


class MetaInitializer(nn.Module):
    """theta_0 and log lambda_0 for every head parameter."""

    def __init__(self, init: Params, lr0: float = 1e-6):
        super().__init__()
        self.names = sorted(init)
        self.theta = nn.ParameterDict({k: nn.Parameter(v.clone()) for k, v in init.items()})
        self.log_lr = nn.ParameterDict({k: nn.Parameter(torch.full_like(v, math.log(lr0)))
                                        for k, v in init.items()})

    def initial(self, batch: int) -> Params:
        """theta_0 repeated for `batch` clips/trackers (differentiable)."""
        return {k: self.theta[k].unsqueeze(0).expand(batch, *self.theta[k].shape) for k in self.names}

    def first_step(self, params: Params, grads: Params) -> Params:
        return {k: params[k] - self.log_lr[k].exp() * grads[k] for k in self.names}


class LSTMOptimizer(nn.Module):
    """Coordinate-wise 2-layer LSTM that outputs one learning rate per parameter and step."""

    def __init__(self, hidden: int = 20, bias_init: float = 0.0):
        super().__init__()
        self.hidden = hidden
        self.cell1 = nn.LSTMCell(5, hidden)
        self.cell2 = nn.LSTMCell(hidden, hidden)
        self.out = nn.Linear(hidden, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.constant_(self.out.bias, bias_init)  # factor exp(3 tanh(0)) = 1: start at lambda_0

    def init_state(self, params: Params, lr0: Optional[Params] = None) -> dict:
        """Zero LSTM state per coordinate, and the 'previous lr' input (lambda_0 if given)."""
        state = {}
        for k, p in params.items():
            n = p.numel()
            z = p.new_zeros(n, self.hidden)
            prev = (lr0[k].expand_as(p).reshape(n).detach() if lr0 is not None
                    else p.new_full((n,), math.exp(-10.0)))
            state[k] = {"h1": z, "c1": z, "h2": z, "c2": z, "lr": prev}
        return state

    def step(self, params: Params, grads: Params, loss: torch.Tensor, state: dict,
             base_lr: Params) -> Tuple[Params, dict]:
        """One update: theta <- theta - lr * g with lr from the LSTM. grads/loss must be detached.

        loss: per-clip loss [B] (broadcast to that clip's coordinates); base_lr: lambda_0 per parameter
        (no batch dim).
        """
        # All coordinates of all tensors go through the LSTM in ONE call (same maths as one call per
        # tensor, far fewer small ops: this is the tracker's per-update hot path on a CPU).
        keys = list(params)
        sizes = [params[k].numel() for k in keys]
        cat = lambda f: torch.cat([f(k) for k in keys])  # noqa: E731
        g = cat(lambda k: grads[k].reshape(-1))
        p = cat(lambda k: params[k].detach().reshape(-1))
        lossv = cat(lambda k: loss.detach().reshape(-1, 1).expand(params[k].shape[0],
                                                                  params[k].numel() // params[k].shape[0]).reshape(-1))
        prev = cat(lambda k: state[k]["lr"].detach())
        base = cat(lambda k: base_lr[k].unsqueeze(0).expand_as(params[k]).reshape(-1))
        x = torch.stack([torch.log(prev + 1e-20) / 10.0, torch.log(g.abs() + 1e-12) / 10.0, torch.sign(g), p,
                         lossv], dim=1).float()
        h1, c1 = self.cell1(x, (cat(lambda k: state[k]["h1"]), cat(lambda k: state[k]["c1"])))
        h2, c2 = self.cell2(h1, (cat(lambda k: state[k]["h2"]), cat(lambda k: state[k]["c2"])))
        lr = base * torch.exp(3.0 * torch.tanh(self.out(h2))).reshape(-1)
        step = lr * g
        new_params, new_state = {}, {}
        parts = {name: t.split(sizes) for name, t in (("h1", h1), ("c1", c1), ("h2", h2), ("c2", c2), ("lr", lr),
                                                        ("step", step))}
        for i, k in enumerate(keys):
            new_params[k] = params[k] - parts["step"][i].reshape(params[k].shape)
            new_state[k] = {n: parts[n][i] for n in ("h1", "c1", "h2", "c2", "lr")}
        return new_params, new_state


def detach_state(state: dict) -> dict:
    return {k: {n: t.detach() for n, t in v.items()} for k, v in state.items()}


def sample_filter_scales(batch: int, generator: torch.Generator = None, device=None) -> Dict[str, torch.Tensor]:
    """Random Filter Scaling factors s = exp(U(-r, r)) per clip and filter."""
    out = {}
    for k, r in RFS_RANGE.items():
        u = torch.rand(batch, generator=generator) * 2 - 1
        out[k] = torch.exp(u * r).to(device)
    return out


def store_scaled(params: Params, scales: Dict[str, torch.Tensor]) -> Params:
    """theta -> theta / s for the scaled filters (what the optimiser sees and updates)."""
    return {k: (v / scales[k].view(-1, *([1] * (v.dim() - 1))) if k in scales else v) for k, v in params.items()}

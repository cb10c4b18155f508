"""WGAN-GP losses as MDDA uses them (Zhao et al., AAAI 2020; Gulrajani et al., NeurIPS 2017).

The critic D scores features; it is trained to score SOURCE features high and TARGET features low,
    critic loss  = E[D(f_t)] - E[D(f_s)] + lambda * E[(||grad D(x_hat)||_2 - 1)^2],  lambda = 10,
with x_hat uniformly interpolated between paired source and target features; the target encoder is
trained to make its features look like source ones, encoder loss = -E[D(f_t)].
E[D(f_s)] - E[D(f_t)] is the critic's estimate of the Wasserstein-1 distance between the two feature
distributions (MDDA's W_i, used both for distillation and for domain weighting).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

GP_WEIGHT = 10.0


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                     fake: torch.Tensor, *, weight: float = GP_WEIGHT,
                     alpha: Optional[torch.Tensor] = None) -> torch.Tensor:
    """weight * mean over the batch of (||dD/dx at x_hat||_2 - 1)^2, x_hat = a*real + (1-a)*fake.

    :param alpha: interpolation factors [N] (uniform random when None); given in tests.
    """
    n = min(real.shape[0], fake.shape[0])
    real, fake = real[:n].detach(), fake[:n].detach()
    if alpha is None:
        alpha = torch.rand(n, device=real.device, dtype=real.dtype)
    alpha = alpha.reshape(n, *([1] * (real.dim() - 1)))
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    scores = critic(x_hat)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    norms = grad.reshape(n, -1).norm(2, dim=1)
    return weight * ((norms - 1.0) ** 2).mean()


def critic_loss(d_source: torch.Tensor, d_target: torch.Tensor) -> torch.Tensor:
    """Critic's adversarial term (without the penalty): E[D(f_t)] - E[D(f_s)]."""
    return d_target.mean() - d_source.mean()


def encoder_loss(d_target: torch.Tensor) -> torch.Tensor:
    """Target encoder's term: -E[D(f_t)] (push target features to score like source ones)."""
    return -d_target.mean()


def wasserstein_estimate(d_source: torch.Tensor, d_target: torch.Tensor) -> float:
    """The critic's Wasserstein-1 estimate E[D(f_s)] - E[D(f_t)]."""
    return float(d_source.mean() - d_target.mean())

"""WGAN-GP terms, MDDA's domain-weight formula and its below-median distillation selection."""
import math

import numpy as np
import pytest
import torch

from effdl_ros.adaptation import wgan_gp
from effdl_ros.adaptation.mdda import domain_weights, select_below_median


def test_gradient_penalty_of_linear_critic_is_weight_times_norm_gap_squared():
    lin = torch.nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[2.0, 0.0, 0.0]]))  # ||grad|| = 2 everywhere
    real, fake = torch.randn(5, 3), torch.randn(5, 3)
    gp = wgan_gp.gradient_penalty(lin, real, fake)
    assert gp.item() == pytest.approx(10.0 * (2.0 - 1.0) ** 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.6, 0.8, 0.0]]))  # unit norm: no penalty
    assert wgan_gp.gradient_penalty(lin, real, fake).item() == pytest.approx(0.0, abs=1e-10)


def test_gradient_penalty_interpolates_with_given_alpha():
    def critic(x):  # D(x) = sum x^2, grad = 2x
        return (x ** 2).sum(1, keepdim=True)

    real = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    fake = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    alpha = torch.tensor([0.5, 0.25])
    # x_hat = [2, 0] -> grad norm 4; x_hat = [0, 0.75] -> grad norm 1.5
    expected = 10.0 * ((4.0 - 1.0) ** 2 + (1.5 - 1.0) ** 2) / 2
    gp = wgan_gp.gradient_penalty(critic, real, fake, alpha=alpha)
    assert gp.item() == pytest.approx(expected)
    assert wgan_gp.gradient_penalty(critic, real, fake, alpha=alpha, weight=1.0).item() == \
        pytest.approx(expected / 10.0)


def test_gradient_penalty_is_differentiable_wrt_critic():
    lin = torch.nn.Linear(2, 1)
    gp = wgan_gp.gradient_penalty(lin, torch.randn(4, 2), torch.randn(4, 2))
    gp.backward()
    assert lin.weight.grad is not None and torch.isfinite(lin.weight.grad).all()


def test_critic_and_encoder_loss_signs():
    ds, dt = torch.tensor([3.0, 5.0]), torch.tensor([1.0, 1.0])
    assert wgan_gp.critic_loss(ds, dt).item() == pytest.approx(1.0 - 4.0)
    assert wgan_gp.encoder_loss(dt).item() == pytest.approx(-1.0)
    assert wgan_gp.wasserstein_estimate(ds, dt) == pytest.approx(3.0)


def test_domain_weights_formula():
    w = domain_weights([0.0, 1.0, 2.0])
    e = np.array([1.0, math.exp(-0.5), math.exp(-2.0)])
    np.testing.assert_allclose(w, e / e.sum())
    np.testing.assert_allclose(domain_weights([0.7, 0.7]), [0.5, 0.5])


def test_domain_weights_stable_for_large_distances():
    w = domain_weights([40.0, 41.0])  # exp(-800) underflows without the log-space shift
    assert np.all(np.isfinite(w)) and w.sum() == pytest.approx(1.0)
    assert w[0] > 0.99


@pytest.mark.parametrize("bad", [[], [float("nan"), 1.0], [[1.0, 2.0]]])
def test_domain_weights_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        domain_weights(bad)


def test_distillation_selection_keeps_samples_closest_to_target_below_median():
    scores = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    # |s - 2.2| = 2.2, 1.2, 0.2, 0.8, 1.8, 2.8 -> median 1.5 -> keep 1.2, 0.2, 0.8
    mask = select_below_median(scores, 2.2)
    assert mask.tolist() == [False, True, True, True, False, False]


def test_distillation_selection_uses_absolute_distance():
    scores = np.array([-10.0, -0.1, 0.1, 10.0])
    mask = select_below_median(scores, 0.0)
    assert mask.tolist() == [False, True, True, False]

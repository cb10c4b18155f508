"""MADAN's loss terms on tiny tensors: DSC's KL term, cycle, LSGAN, domain CE, pool, running gate."""
import math

import pytest
import torch
import torch.nn.functional as F

from effdl_ros.segmentation import madan as M


def test_dsc_is_zero_for_identical_scores_and_matches_hand_value():
    a = torch.randn(2, 3, 4, 5)
    assert float(M.dsc_loss(a, a)) == pytest.approx(0.0, abs=1e-7)
    # One pixel, two classes: p = softmax([0, 0]) = (.5, .5), q = softmax([log 3, 0]) = (.75, .25)
    src = torch.zeros(1, 2, 1, 1)
    adapted = torch.tensor([math.log(3.0), 0.0]).view(1, 2, 1, 1)
    kl = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert float(M.dsc_loss(src, adapted)) == pytest.approx(kl / 2, rel=1e-5)  # / (C*H*W) = / 2


def test_dsc_gradient_reaches_only_the_adapted_branch():
    src = torch.randn(1, 4, 3, 3, requires_grad=True)
    adapted = torch.randn(1, 4, 3, 3, requires_grad=True)
    M.dsc_loss(src, adapted).backward()
    assert src.grad is None
    assert adapted.grad is not None and adapted.grad.abs().sum() > 0


def test_cycle_and_lsgan_values():
    x = torch.zeros(1, 3, 2, 2)
    assert float(M.cycle_loss(x + 0.5, x)) == pytest.approx(0.5)
    pred = torch.full((1, 1, 2, 2), 0.25)
    assert float(M.lsgan_loss(pred, True)) == pytest.approx(0.75 ** 2)
    assert float(M.lsgan_loss(pred, False)) == pytest.approx(0.25 ** 2)


def test_domain_ce_matches_cross_entropy():
    logits = torch.randn(2, 2, 3, 3)
    ref = F.cross_entropy(logits, torch.ones(2, 3, 3, dtype=torch.long))
    assert float(M.domain_ce(logits, 1)) == pytest.approx(float(ref))


def test_networks_keep_image_size():
    g = M.ResnetGenerator(ngf=4, n_blocks=1)
    x = torch.randn(2, 3, 24, 32)
    y = g(x)
    assert y.shape == x.shape and float(y.detach().abs().max()) <= 1.0
    assert M.PatchDiscriminator(ndf=4)(x).shape[1] == 1
    assert M.ScoreDiscriminator(11, ndf=4)(torch.randn(1, 11, 8, 8)).shape[1] == 2


def test_image_pool_returns_same_batch_size_and_stores_history():
    pool = M.ImagePool(size=3, seed=0)
    first = pool.query(torch.zeros(2, 3, 4, 4))
    assert first.shape[0] == 2
    for _ in range(10):
        out = pool.query(torch.ones(2, 3, 4, 4))
        assert out.shape == (2, 3, 4, 4)
    assert len(pool.images) == 3


def test_running_accuracy_gate_opens_above_sixty_percent():
    acc = M.RunningAccuracy(momentum=0.5, threshold=0.6)
    assert not acc.gate_open
    for _ in range(5):
        acc.update(1.0)
    assert acc.gate_open
    for _ in range(5):
        acc.update(0.0)
    assert not acc.gate_open

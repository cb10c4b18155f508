"""Early-Bird: mask distance, ticket detection, physical pruning."""
import pytest
import torch

from effdl_ros.training.early_bird import EarlyBirdDetector, add_slimming_grad, bn_mask, mask_distance, prunable_bns
from effdl_ros.training.macs import inference_macs
from effdl_ros.training.prune import prune_resnet, reinitialised
from effdl_ros.training.resnet import ResNetConfig, build, count_parameters

torch.set_num_threads(1)


def model_with_random_bns(seed=0, gates=False):
    torch.manual_seed(seed)
    m = build(ResNetConfig(blocks=(2, 2, 2), widths=(4, 8, 16), gates=gates))
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.weight.data.uniform_(0.05, 1.0)
            mod.bias.data.uniform_(-0.2, 0.2)
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
    return m.eval()


def test_distance_of_identical_masks_is_0_and_of_complementary_masks_is_1():
    a = torch.rand(100) > 0.5
    assert mask_distance(a, a.clone()) == 0.0
    assert mask_distance(a, ~a) == 1.0
    assert mask_distance(torch.tensor([1, 1, 0, 0]).bool(), torch.tensor([1, 0, 0, 0]).bool()) == 0.25
    with pytest.raises(ValueError):
        mask_distance(a, a[:10])


def test_detector_fires_only_when_the_last_five_masks_agree():
    det = EarlyBirdDetector(fifo=5, epsilon=0.1)
    g = torch.Generator().manual_seed(0)
    for _ in range(6):  # random masks: far apart
        det.update(torch.rand(200, generator=g) > 0.5)
    assert not det.found
    stable = torch.rand(200, generator=g) > 0.5
    for i in range(4):
        det.update(stable)
        assert not det.found  # the FIFO still holds older, different masks
    det.update(stable)
    assert det.found and det.history[-1] == 0.0


def test_global_threshold_keeps_the_right_share():
    m = model_with_random_bns()
    total = sum(bn.num_features for _, bn in prunable_bns(m))
    mask = bn_mask(m, 0.5)
    assert mask.numel() == total
    assert abs(mask.float().mean().item() - 0.5) < 0.02


def test_pruned_model_is_smaller_with_the_same_output_shape():
    m = model_with_random_bns()
    x = torch.randn(3, 1, 12, 12)
    pruned = prune_resnet(m, bn_mask(m, 0.5)).eval()
    assert count_parameters(pruned) < 0.7 * count_parameters(m)
    assert pruned(x).shape == m(x).shape == (3, 10)
    assert inference_macs(pruned, x) < inference_macs(m, x)
    again = prune_resnet(pruned, bn_mask(pruned, 0.5))  # pruning a pruned net works too
    assert count_parameters(again) < count_parameters(pruned)
    assert reinitialised(pruned).config.mids == pruned.config.mids


def test_keeping_every_channel_reproduces_the_model_exactly():
    for gates in (False, True):
        m = model_with_random_bns(gates=gates)
        x = torch.randn(4, 1, 12, 12)
        keep_all = torch.ones_like(bn_mask(m, 0.5))
        assert torch.allclose(prune_resnet(m, keep_all).eval()(x), m(x), atol=1e-6)


def test_pruning_keeps_a_channel_even_when_a_layer_is_masked_out():
    m = model_with_random_bns()
    mask = torch.zeros_like(bn_mask(m, 0.5))
    pruned = prune_resnet(m, mask).eval()
    assert all(b.conv1.out_channels == 1 and b.conv2.out_channels == 1 for b in pruned.blocks)
    assert pruned(torch.randn(2, 1, 12, 12)).shape == (2, 10)


def test_slimming_adds_l1_subgradient():
    m = model_with_random_bns()
    bn = m.blocks[0].bn1
    bn.weight.grad = torch.zeros_like(bn.weight)
    add_slimming_grad(m, 1e-2)
    assert torch.allclose(bn.weight.grad, 1e-2 * torch.sign(bn.weight.detach()))

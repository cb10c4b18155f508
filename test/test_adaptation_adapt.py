"""A short WGAN-GP adaptation run (MDDA stage 2) lowers the critic's distance on toy data."""
import numpy as np
import torch

from effdl_ros.adaptation import mdda
from effdl_ros.adaptation.ot_distance import feature_distance


def _toy():
    rng = np.random.default_rng(0)
    src = rng.normal(0.0, 1.0, size=(512, 4)).astype(np.float32)
    tgt = rng.normal(0.0, 1.0, size=(512, 4)).astype(np.float32) + np.float32(3.0)
    return src, tgt


def _critic():
    return torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.LeakyReLU(0.2), torch.nn.Linear(32, 1))


def _critic_only_w(source_enc, target_enc, src, tgt, cfg, seed):
    """Train a FRESH critic with the encoders frozen; its final W estimate."""
    res = mdda.adapt(source_enc, src, tgt, cfg, critic=_critic(), target_encoder=target_enc,
                     iters=150, encoder_lr=0.0, seed=seed)
    return float(np.mean(res.history[-30:]))


def test_short_adaptation_lowers_critic_distance():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    src, tgt = _toy()
    source_enc = torch.nn.Linear(4, 4)
    with torch.no_grad():
        source_enc.weight.copy_(torch.eye(4))
        source_enc.bias.zero_()
    cfg = mdda.MddaConfig(batch=64, critic_lr=5e-3, critic_steps=2)
    import copy

    before = _critic_only_w(source_enc, copy.deepcopy(source_enc), src, tgt, cfg, seed=1)
    res = mdda.adapt(source_enc, src, tgt, cfg, critic=_critic(), iters=250, encoder_lr=5e-3, seed=2)
    after = _critic_only_w(source_enc, res.target_encoder, src, tgt, cfg, seed=3)
    assert before > 2.0  # the toy shift is 3 per axis: the critic sees it
    assert after < 0.3 * before, (before, after)
    with torch.no_grad():
        fs = source_enc(torch.as_tensor(src)).numpy()
        ft0 = torch.as_tensor(tgt).numpy()
        ft1 = res.target_encoder(torch.as_tensor(tgt)).numpy()
    # exact OT agrees that the target moved towards the source
    d0 = feature_distance(fs, ft0, method="emd", n=200, normalise=False)
    d1 = feature_distance(fs, ft1, method="emd", n=200, normalise=False)
    assert d1 < 0.5 * d0, (d0, d1)
    # the source encoder is frozen
    assert torch.equal(source_enc.weight, torch.eye(4))


def test_ot_distance_zero_for_identical_and_grows_with_shift():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(100, 3))
    assert feature_distance(x, x, method="emd", normalise=False) < 1e-9
    near = feature_distance(x, x + 0.5, method="emd", normalise=False)
    far = feature_distance(x, x + 2.0, method="emd", normalise=False)
    assert abs(far - 2.0 * np.sqrt(3)) < 1e-6 and near < far
    s_near = feature_distance(x, x + 0.5, method="sliced", normalise=False)
    s_far = feature_distance(x, x + 2.0, method="sliced", normalise=False)
    assert 0 < s_near < s_far

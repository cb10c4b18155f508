"""DDI training additions: budget truncation masks match what the engine's halting does."""
import numpy as np
import torch

from effdl_ros.ddi.engine import DDIEngine, DDISettings
from effdl_ros.ddi.model import DDIConfig, DDINet
from effdl_ros.ddi.train import truncation_mask


def test_truncation_mask_skips_a_suffix_of_blocks_for_the_drawn_share():
    keep, truncated = truncation_mask(np.random.default_rng(0), 4000, 6, 0.3)
    assert keep.shape == (4000, 6) and truncated.dtype == torch.bool
    assert 0.27 < float(truncated.float().mean()) < 0.33
    assert torch.all(keep[~truncated] == 1)
    # a truncated row is ones then zeros (a suffix is skipped); every cut point 0..5 occurs
    rows = keep[truncated]
    assert torch.all(rows[:, 1:] <= rows[:, :-1])
    assert set(rows.sum(1).int().tolist()) == set(range(6))
    none, _ = truncation_mask(np.random.default_rng(1), 100, 6, 0.0)
    assert torch.all(none == 1)


def test_forward_with_keep_equals_engine_forced_skips():
    torch.manual_seed(0)
    m = DDINet(DDIConfig(widths=(8, 8, 16), blocks=(3, 2, 2), image_size=12)).eval()
    e = DDIEngine(m)
    x = torch.randn(1, 1, 12, 12)
    r = e.run(x, DDISettings(mac_ceiling=e.min_macs))       # tightest budget: every skippable block forced
    last = e.costs.block_exit.index(r.exit_index)
    assert r.exit_index >= 0 and r.forced == [j for j in range(last + 1) if e.costs.skippable[j]]
    keep = torch.ones(1, 7)
    keep[0, r.forced] = 0
    with torch.no_grad():
        ref = m(x, keep=keep)["exits"][r.exit_index][0]
    assert torch.allclose(r.logits, ref, atol=1e-4)


def test_exported_task_loads_the_same_items(tmp_path, monkeypatch):
    from effdl_ros.ddi.data import export_task, load_task

    ref = load_task("sklearn", max_train=300, max_test=50)
    export_task("sklearn", tmp_path / "sklearn.npz", max_train=300, max_test=50)
    monkeypatch.setenv("EFFDL_DDI_CACHE", str(tmp_path))
    got = load_task("sklearn", max_train=300, max_test=50)
    assert np.array_equal(got.x_train, ref.x_train) and np.array_equal(got.y_test, ref.y_test)
    assert got.mean == ref.mean and got.classes == ref.classes

"""The compact segmenter, its safe checkpoints, MACs and the budget -> input-scale mapping."""
import pytest
import torch

from effdl_ros.energy.budget import Budget
from effdl_ros.errors import DataError
from effdl_ros.segmentation.network import TinySegNet, config_for, count_macs, load_checkpoint, save_checkpoint
from effdl_ros.segmentation.settings import settings_for_budget


def test_output_has_input_size_and_class_count():
    net = TinySegNet(11, width=0.25).eval()
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 40, 56)).shape == (1, 11, 40, 56)


def test_checkpoint_round_trip_and_bad_files(tmp_path):
    net = TinySegNet(11, width=0.25).eval()
    path = tmp_path / "m.pt"
    save_checkpoint(path, net, config_for(11, 0.25, (32, 48)))
    loaded, cfg = load_checkpoint(path)
    assert cfg["input_hw"] == [32, 48]
    x = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        assert torch.allclose(loaded(x), net(x))
    assert not list(tmp_path.glob("*.tmp"))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="bad.pt"):
        load_checkpoint(bad)
    with pytest.raises(DataError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    wrong = tmp_path / "wrong.pt"
    save_checkpoint(wrong, TinySegNet(11, width=0.5), config_for(11, 0.25, (32, 48)))
    with pytest.raises(DataError, match="does not match"):
        load_checkpoint(wrong)


def test_macs_scale_with_input_area():
    net = TinySegNet(11, width=0.25)
    full, half = count_macs(net, (64, 96)), count_macs(net, (32, 48))
    assert 3.5 < full / half < 4.5


def test_calibrate_counts_every_scale_and_times_the_full_one():
    from effdl_ros.segmentation.settings import SCALES, ScaleCalibration, calibrate

    net = TinySegNet(11, width=0.25).eval()
    c = calibrate(net, {"input_hw": (48, 64)}, repeats=1)
    assert set(c.macs) == set(SCALES) and c.full_ms > 0
    assert c.macs[0.5] < c.macs[0.75] < c.macs[1.0]
    deadline = Budget(latency_deadline_ms=10.0)
    assert settings_for_budget(deadline, ScaleCalibration(full_ms=20.0)).input_scale == 0.625  # half the time
    assert settings_for_budget(deadline, ScaleCalibration(full_ms=5.0)).input_scale == 1.0     # fast machine
    assert settings_for_budget(deadline, c) == settings_for_budget(deadline, full_ms=c.full_ms)


def test_budget_maps_onto_input_scale():
    assert settings_for_budget(None).input_scale == 1.0
    # no stale case: the node's default fraction arrives as a (stale) budget and maps like any other
    assert settings_for_budget(Budget(compute_fraction=0.6, stale=True)).input_scale == 0.75
    assert settings_for_budget(Budget(compute_fraction=1.0)).input_scale == 1.0
    assert settings_for_budget(Budget(compute_fraction=0.6)).input_scale == 0.75   # 0.5625 <= 0.6
    assert settings_for_budget(Budget(compute_fraction=0.01)).input_scale == 0.5   # floor of the ladder
    s = settings_for_budget(Budget(latency_deadline_ms=10.0), full_ms=20.0)       # half the time
    assert s.input_scale == 0.625 and "deadline" in s.reason
    e = settings_for_budget(Budget(energy_per_item_j=0.3), full_energy_j=1.0)
    assert e.input_scale == 0.5

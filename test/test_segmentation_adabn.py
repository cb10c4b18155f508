"""AdaBN (`train adabn`): batch-norm statistics re-estimated on a camera's unlabelled frames."""
import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn

from effdl_ros.errors import ConfigError
from effdl_ros.segmentation.adabn import adapt_batchnorm, batchnorm_layers
from effdl_ros.segmentation.network import TinySegNet, config_for, load_checkpoint, save_checkpoint, to_input


def test_statistics_become_the_target_frames_and_nothing_else_changes():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
    model[1].running_mean.fill_(5.0)  # the "source" statistics
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (6, 8, 10, 3), dtype=np.uint8)
    info = adapt_batchnorm(model, frames, batch=3)
    assert info == {"frames": 6, "batchnorm_layers": 1, "batch": 3}
    with torch.no_grad():
        acts = [model[0](to_input(torch.from_numpy(frames[i:i + 3]))) for i in (0, 3)]
    expect_mean = torch.stack([a.mean((0, 2, 3)) for a in acts]).mean(0)
    expect_var = torch.stack([a.var((0, 2, 3), unbiased=True) for a in acts]).mean(0)
    assert torch.allclose(model[1].running_mean, expect_mean, atol=1e-5)
    assert torch.allclose(model[1].running_var, expect_var, atol=1e-4)
    assert model[1].momentum == 0.1 and not model.training  # restored, ready to serve
    for k, v in weights.items():
        assert torch.equal(model.state_dict()[k], v), k


def test_a_shift_in_exposure_is_absorbed_by_the_statistics():
    """The same scene twice as dark: after AdaBN on dark frames the first layer's normalised output of a
    dark frame matches what the source model produced for the bright one."""
    torch.manual_seed(1)
    model = TinySegNet(11, 0.25)
    rng = np.random.default_rng(1)
    bright = rng.integers(100, 256, (8, 32, 48, 3), dtype=np.uint8)
    dark = (bright // 2).astype(np.uint8)
    adapt_batchnorm(model, bright)
    source_out = model.stem(to_input(torch.from_numpy(bright))).detach()
    shifted = model.stem(to_input(torch.from_numpy(dark))).detach()
    adapt_batchnorm(model, dark)
    adapted = model.stem(to_input(torch.from_numpy(dark))).detach()
    assert (adapted - source_out).abs().mean() < 0.5 * (shifted - source_out).abs().mean()


def test_refuses_what_it_cannot_adapt():
    with pytest.raises(ConfigError, match="no batch-norm"):
        adapt_batchnorm(nn.Conv2d(3, 3, 1), np.zeros((1, 4, 4, 3), np.uint8))
    with pytest.raises(ConfigError, match="at least one"):
        adapt_batchnorm(TinySegNet(11, 0.25), np.zeros((0, 32, 48, 3), np.uint8))
    assert len(batchnorm_layers(TinySegNet(11, 0.25))) > 5


def test_cli_adapts_to_a_folder_writes_model_and_card_and_the_node_loader_takes_it(tmp_path):
    import json

    from effdl_ros.cli.segmentation import _standalone

    torch.set_num_threads(1)
    base = tmp_path / "base.pt"
    save_checkpoint(base, TinySegNet(11, 0.25), config_for(11, 0.25, (32, 48)), half=True)  # as shipped
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(5):
        cv2.imwrite(str(frames / f"{i:03d}.png"), np.full((60, 80, 3), 30 * i, np.uint8))
    out, report = tmp_path / "adapted.pt", tmp_path / "a.json"
    assert _standalone(["train", "adabn", "--model", str(base), "--target", str(frames), "--out", str(out),
                        "--threads", "1", "--json", str(report)]) == 0
    assert json.loads(report.read_text())["frames"] == 5
    model, cfg = load_checkpoint(out, model_dir=tmp_path)
    assert cfg["adapted_by"] == "adabn" and cfg["adapted_from"] == "base.pt" and tuple(cfg["input_hw"]) == (32, 48)
    card = (tmp_path / "adapted.md").read_text()
    assert "base.pt" in card and "5 target frames" in card and "no label was read" in card
    before, _ = load_checkpoint(base)
    assert not torch.equal(model.stem[1].running_mean, before.stem[1].running_mean)
    assert torch.equal(model.stem[0].weight, before.stem[0].weight)
    # writing over the model being adapted is refused in one sentence
    assert _standalone(["train", "adabn", "--model", str(base), "--target", str(frames), "--out", str(base)]) == 2

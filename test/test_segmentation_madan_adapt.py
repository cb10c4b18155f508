"""MADAN on a trained segmenter (`train madan-adapt`): residual translation, resumable stages, the CLI."""
import cv2
import numpy as np
import torch
import torch.nn as nn

from effdl_ros.segmentation.madan_adapt import AdaptPlan, adapt_segmenter, residual_translate
from effdl_ros.segmentation.network import TinySegNet, config_for, load_checkpoint, save_checkpoint, to_input


class _AddConstant(nn.Module):
    def __init__(self, c: float):
        super().__init__()
        self.c = c

    def forward(self, x):
        return x + self.c


def test_residual_translation_keeps_full_resolution_detail_and_adds_the_low_resolution_change():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 64, 96, 3), dtype=np.uint8)  # pure detail: lost by any downsampling
    x = to_input(torch.from_numpy(images))
    same = residual_translate(_AddConstant(0.0), images, (16, 24))
    assert same.shape == (3, 3, 64, 96) and torch.allclose(same, x, atol=1e-6)
    darker = residual_translate(_AddConstant(-0.25), images, (16, 24))
    assert torch.allclose(darker, (x - 0.25).clamp(-1, 1), atol=1e-5)


def _sources(rng, n=4, hw=(64, 96)):
    return [(name, rng.integers(0, 256, (n, *hw, 3), dtype=np.uint8),
             rng.integers(0, 11, (n, *hw), dtype=np.uint8)) for name in ("a", "b")]


def test_one_tiny_adaptation_runs_on_cpu_leaves_the_base_model_alone_and_resumes_after_the_gan_stage(tmp_path):
    torch.set_num_threads(1)
    rng = np.random.default_rng(1)
    torch.manual_seed(0)
    base = TinySegNet(11, 0.25).eval()
    before = {k: v.clone() for k, v in base.state_dict().items()}
    target = rng.integers(0, 256, (4, 64, 96, 3), dtype=np.uint8)
    plan = AdaptPlan(gan_height=32, gan_width=48, gan_iters=2, finetune_iters=2, batch=2)
    logs, sources = [], _sources(rng)
    tuned, info = adapt_segmenter(base, sources, target, plan, work_dir=tmp_path, log=logs.append)
    assert info["pixel_iterations"] == 2 and info["pixel_madan"] and info["iterations"] == 2
    assert "fa_iterations_gated" in info                       # feature alignment was part of fine-tuning
    assert all(torch.equal(v, base.state_dict()[k]) for k, v in before.items())
    assert any(not torch.equal(a, b) for a, b in zip(tuned.parameters(), base.parameters()))
    logs.clear()
    adapt_segmenter(base, sources, target, plan, work_dir=tmp_path, log=logs.append)
    assert any("resumed" in m for m in logs)                    # the GAN stage was not trained again
    logs.clear()
    adapt_segmenter(base, sources, 255 - target, plan, work_dir=tmp_path, log=logs.append)
    assert not any("resumed" in m for m in logs)                # another recording: nothing is reused


def _camvid_like(root, names):
    (root / "train").mkdir(parents=True)
    (root / "trainannot").mkdir()
    for i, name in enumerate(names):
        cv2.imwrite(str(root / "train" / f"{name}.png"), np.full((32, 48, 3), 20 * i, np.uint8))
        cv2.imwrite(str(root / "trainannot" / f"{name}.png"), np.full((32, 48), i % 11, np.uint8))
    return root


def test_cli_adapts_a_checkpoint_to_a_folder_and_writes_a_card_the_loader_takes(tmp_path):
    from effdl_ros.cli.segmentation import _standalone

    torch.set_num_threads(1)
    root = _camvid_like(tmp_path / "camvid", ["0006R0_f00930", "0006R0_f00960", "0016E5_00390", "0016E5_00420"])
    base = tmp_path / "base.pt"
    save_checkpoint(base, TinySegNet(11, 0.25), config_for(11, 0.25, (64, 96)), half=True)
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        cv2.imwrite(str(frames / f"{i:03d}.png"), np.full((60, 80, 3), 40 * i, np.uint8))
    out = tmp_path / "adapted.pt"
    args = ["train", "madan-adapt", "--model", str(base), "--target", str(frames), "--camvid-root", str(root),
            "--out", str(out), "--gan-hw", "32x48", "--gan-seconds", "1", "--finetune-iters", "2"]
    assert _standalone(args) == 0
    model, cfg = load_checkpoint(out, model_dir=tmp_path)
    assert cfg["adapted_by"] == "madan-adapt" and tuple(cfg["input_hw"]) == (64, 96)
    card = (tmp_path / "adapted.md").read_text()
    assert "camvid:0006R0 (2 frames)" in card and "no label was read" in card and "base.pt" in card
    assert not (tmp_path / ".adapted.stages").exists()         # the stage folder goes once the model is written
    assert _standalone(args[:-6] + ["--out", str(base)]) == 2   # writing over the input is refused
    assert _standalone(args[:-1] + ["0"]) == 2                  # --finetune-iters 0: one sentence, no run
    small = [("16x24" if a == "32x48" else a) for a in args]
    assert _standalone(small) == 2                              # too small for the patch discriminators

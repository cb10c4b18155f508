"""Evaluation on real CamVid frames and the benchmark's rows (skip where ../shared/data is absent)."""
import json

import pytest
import torch

from effdl_ros.bench.segmentation import folder_pairs, run_segmentation_benchmark, summary
from effdl_ros.data.camvid import default_root
from effdl_ros.errors import DataError
from effdl_ros.segmentation.network import TinySegNet, config_for, save_checkpoint
from effdl_ros.segmentation.train import checkpoint_names

ROOT = default_root()
needs_camvid = pytest.mark.skipif(not (ROOT / "val").is_dir(), reason=f"CamVid data {ROOT} absent")


@needs_camvid
def test_benchmark_rows_on_two_val_frames(tmp_path):
    torch.set_num_threads(1)
    for k, name in enumerate(checkpoint_names(["sunny", "dusk"]).values()):
        torch.manual_seed(k)
        save_checkpoint(tmp_path / name, TinySegNet(11, 0.25), config_for(11, 0.25, (32, 48)), half=True)
    rows = run_segmentation_benchmark(tmp_path, ROOT, max_frames=2)
    roles = [r["role"] for r in rows]
    assert roles.count("madan") == 1 and roles.count("oracle") == 1 and roles.count("best_single") == 1
    assert roles.count("source_only") == 2 and roles.count("source_merged") == 1
    for r in rows:
        assert 0.0 <= r["miou"] <= 1.0 and 0.0 <= r["pixel_acc"] <= 1.0 and r["ms_per_frame"] > 0
        assert set(r) >= {"method", "miou", "pixel_acc", "ms_per_frame", "checkpoint"}
    s = summary(rows)
    assert "madan_minus_best_single_points" in s and "gap_closed" in s


@needs_camvid
def test_eval_cli_writes_the_json_keys(tmp_path):
    from effdl_ros.cli.segmentation import _standalone

    save_checkpoint(tmp_path / "m.pt", TinySegNet(11, 0.25), config_for(11, 0.25, (32, 48)))
    out = tmp_path / "r.json"
    code = _standalone(["eval", "segmentation", "--images", str(ROOT / "val"), "--labels", str(ROOT / "valannot"),
                        "--model", str(tmp_path / "m.pt"), "--max-frames", "2", "--threads", "1", "--json", str(out)])
    assert code == 0
    r = json.loads(out.read_text())
    assert set(r) >= {"miou", "per_class", "pixel_acc", "ms_per_frame"} and len(r["per_class"]) == 11


def test_eval_cli_bad_input_is_one_sentence(tmp_path, capsys):
    from effdl_ros.cli.segmentation import _standalone

    (tmp_path / "imgs").mkdir()
    code = _standalone(["eval", "segmentation", "--images", str(tmp_path / "imgs"), "--labels",
                        str(tmp_path / "nolabels"), "--model", str(tmp_path / "m.pt")])
    assert code == 2
    err = capsys.readouterr().err
    assert "nolabels" in err and "Traceback" not in err
    with pytest.raises(DataError, match="missing"):
        (tmp_path / "labels").mkdir()
        (tmp_path / "imgs" / "a.png").write_bytes(b"x")
        folder_pairs(tmp_path / "imgs", tmp_path / "labels")


def test_train_cli_rejects_unknown_target_and_single_source(capsys):
    from effdl_ros.cli.segmentation import _standalone

    assert _standalone(["train", "madan", "--target", "cityscapes"]) == 2
    assert _standalone(["train", "madan", "--sources", "sunny"]) == 2
    assert _standalone(["train", "madan", "--sources", "sunny,foggy"]) == 2
    assert _standalone(["train", "madan", "--gan-batch", "0"]) == 2
    err = capsys.readouterr().err
    assert "cityscapes" in err and "foggy" in err and "--gan-batch" in err and "Traceback" not in err


def test_train_plan_takes_the_gan_batch_and_budget_over_the_preset():
    import argparse

    from effdl_ros.cli.segmentation import _configure_train, _plan

    p = argparse.ArgumentParser()
    _configure_train(p)
    plan = _plan(p.parse_args(["--preset", "gpu-fast", "--gan-batch", "32", "--time-budget", "455"]))
    assert plan.gan_batch == 32 and plan.seconds == 455.0 and plan.amp  # the rest stays the preset's
    assert _plan(p.parse_args(["--preset", "gpu-fast"])).gan_batch == 16
    small = _plan(p.parse_args(["--preset", "cpu-small"]))  # the CPU-scale comparison's sizes
    assert (small.height, small.width, small.ngf, small.n_blocks, small.n_source) == (48, 64, 16, 2, 500)


@needs_camvid
def test_scale_sweep_counts_fewer_macs_at_smaller_scales():
    from effdl_ros.bench.segmentation import scale_sweep
    from effdl_ros.data.camvid import pairs

    torch.set_num_threads(1)
    cfg = config_for(11, 0.25, (32, 48))
    rows = scale_sweep(TinySegNet(11, 0.25).eval(), cfg, pairs(ROOT, "val")[:1], [1.0, 0.5], repeats=1)
    assert [r["scale"] for r in rows] == [1.0, 0.5]
    assert rows[0]["macs_fraction"] == 1.0 and rows[1]["macs_fraction"] < 0.35
    assert rows[1]["input_hw"] == [16, 24]

"""Short training runs on CPU: the segmenter learns rendered scenes; MADAN's full pixel-level loop runs."""
import torch

from effdl_ros.segmentation.network import TinySegNet, to_input
from effdl_ros.segmentation.scenes import render_domain
from effdl_ros.segmentation.train import PRESETS, class_weights, train_pixel_level, train_segmenter


def _data(name, n=8, seed=0):
    imgs, labs = render_domain(name, n, seed=seed, height=32, width=48)
    return torch.from_numpy(imgs), torch.from_numpy(labs)


def _ce(model, imgs, labs):
    with torch.no_grad():
        return float(torch.nn.functional.cross_entropy(model(to_input(imgs)), labs.long(), ignore_index=11))


def test_segmenter_training_lowers_the_loss():
    torch.set_num_threads(1)
    imgs, labs = _data("sunny")
    plan = PRESETS["tiny"]
    from dataclasses import replace
    plan = replace(plan, seg_width=0.25, seg_batch=8, seg_lr=5e-3)
    init = TinySegNet(11, 0.25).eval()
    before = _ce(init, imgs, labs)
    model, info = train_segmenter(imgs, labs, plan, device="cpu", seed=0, iters=40, init=init, log=lambda m: None)
    assert info["iterations"] == 40
    assert _ce(model, imgs, labs) < 0.7 * before


def test_class_weights_favour_rare_classes_and_skip_absent_ones():
    labs = torch.tensor([0] * 90 + [1] * 10 + [11] * 5)
    w = class_weights(labs, 3)
    assert w[1] > w[0] > 0 and w[2] == 0


def test_madan_pixel_level_runs_with_sad_ccd_and_dynamic_dsc():
    torch.set_num_threads(1)
    from dataclasses import replace
    plan = replace(PRESETS["tiny"], sad_start=0.0, ccd_start=0.0, dynamic_at=0.5, dynamic_iters=1, seg_batch=2)
    s1, s2 = _data("sunny", 4), _data("dusk", 4, seed=1)
    target = _data("dusk", 4, seed=2)[0]
    seg = TinySegNet(11, plan.seg_width).eval()
    logs = []
    gens, info = train_pixel_level([("sunny", *s1), ("dusk", *s2)], target, [seg, seg], plan, madan=True,
                                   device="cpu", seed=0, iters=2, log=logs.append)
    assert len(gens) == 2 and info["sad_on"] and info["ccd_on"] and info["dynamic_dsc"]
    with torch.no_grad():
        out = gens[0](to_input(s1[0][:1]))
    assert out.shape == (1, 3, 32, 48)
    assert any("dynamic-dsc" in line for line in logs)


def test_warm_up_runs_every_loop_once_without_training_anything_kept():
    torch.set_num_threads(1)
    from dataclasses import replace

    from effdl_ros.segmentation.train import warm_up
    plan = replace(PRESETS["tiny"], seg_batch=2)
    s1, s2 = _data("sunny", 2), _data("dusk", 2, seed=1)
    logs = []
    took = warm_up([("sunny", *s1), ("dusk", *s2)], _data("dusk", 2, seed=2)[0], plan, device="cpu", seed=0,
                   log=logs.append)
    assert took > 0 and logs and logs[0].startswith("warm-up")


def test_networks_give_each_sample_the_same_output_in_one_batched_call():
    # The pixel-level loop feeds every input of a network in ONE call (fewer kernel launches); that is
    # exact only while no layer mixes samples (instance norm, eval-mode batch norm).
    from effdl_ros.segmentation import madan as M
    torch.manual_seed(0)
    a, b = torch.randn(2, 3, 32, 48), torch.randn(3, 3, 32, 48)
    for net in (M.ResnetGenerator(8, 1), M.PatchDiscriminator(8), TinySegNet(11, 0.25).eval()):
        with torch.no_grad():
            together = net(torch.cat([a, b]))
            apart = torch.cat([net(a), net(b)])
        assert torch.allclose(together, apart, atol=1e-5), type(net).__name__


def test_parallel_run_checks_its_arguments_and_round_trips_the_plan(tmp_path):
    import json
    import math

    import pytest

    from effdl_ros.errors import ConfigError
    from effdl_ros.segmentation.parallel import _plan_from, train_all_parallel
    plan = PRESETS["gpu-fast"]
    with pytest.raises(ConfigError, match="variant"):
        train_all_parallel(["sunny", "dusk"], tmp_path, tmp_path, plan, device="cpu", variants=["nosuch"])
    with pytest.raises(ConfigError, match="two sources"):
        train_all_parallel(["sunny"], tmp_path, tmp_path, plan, device="cpu")
    from dataclasses import asdict
    d = json.loads(json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                               for k, v in asdict(plan).items()}))
    assert _plan_from(d) == plan and math.isinf(_plan_from(d).seconds)


def test_generators_round_trip_and_a_bad_file_is_one_sentence(tmp_path):
    import pytest

    from effdl_ros.errors import DataError
    from effdl_ros.segmentation.madan import ResnetGenerator, load_generators, save_generators
    from effdl_ros.segmentation.train import generators_path

    torch.manual_seed(0)
    gens = [ResnetGenerator(8, 1).eval(), ResnetGenerator(8, 1).eval()]
    path = generators_path(tmp_path / "madan_multi.pt")
    assert path.name == "madan_multi_generators.pt"
    save_generators(path, gens, ["sunny", "dusk"], ngf=8, n_blocks=1, input_hw=(32, 48), seed=3)
    loaded, cfg = load_generators(path)
    assert list(loaded) == ["sunny", "dusk"] and cfg["seed"] == 3 and cfg["input_hw"] == [32, 48]
    x = to_input(_data("sunny", 2)[0])
    with torch.no_grad():  # float16 storage: the translations agree to half precision
        assert torch.allclose(loaded["dusk"](x), gens[1](x), atol=2e-2)
        assert not torch.allclose(loaded["sunny"](x), gens[1](x), atol=2e-2)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="madan_multi_generators.pt"):
        load_generators(path)
    torch.save({"state_dict": {}, "config": {}}, tmp_path / "seg.pt")  # a segmenter file, not generators
    with pytest.raises(DataError, match="not a MADAN generator file"):
        load_generators(tmp_path / "seg.pt")


def test_train_all_keeps_the_generators_of_every_adapted_checkpoint(tmp_path):
    """A tiny sequential run with save_generators: the single-source and MADAN generators lie beside
    their checkpoints and re-make the adapted scenes."""
    import numpy as np
    import pytest

    from effdl_ros.data.camvid import default_root
    from effdl_ros.segmentation.madan import load_generators
    from effdl_ros.segmentation.train import train_all

    if not (default_root() / "train").is_dir():
        pytest.skip("CamVid (../shared/data/segmentation/camvid) is not here")
    torch.set_num_threads(1)
    res = train_all(["sunny", "dusk"], default_root(), tmp_path, PRESETS["tiny"], device="cpu", seed=0,
                    log=lambda m: None, save_generators=True)
    assert set(res) >= {"madan", "single:sunny", "single:dusk"}
    names = sorted(p.name for p in tmp_path.glob("*_generators.pt"))
    assert names == ["madan_multi_generators.pt", "madan_single_dusk_generators.pt",
                     "madan_single_sunny_generators.pt"]
    gens, cfg = load_generators(tmp_path / "madan_multi_generators.pt")
    assert cfg["sources"] == ["sunny", "dusk"] and cfg["ngf"] == PRESETS["tiny"].ngf
    x = to_input(torch.from_numpy(np.zeros((1, 48, 64, 3), np.uint8)))
    with torch.no_grad():
        assert gens["dusk"](x).shape == (1, 3, 48, 64)

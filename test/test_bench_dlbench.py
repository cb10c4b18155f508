"""DLBench workloads: shapes, a real training step, the timing arithmetic, the command and its JSON."""

import pytest
import torch

from effdl_ros.bench import compare, dlbench
from effdl_ros.cli.main import main
from effdl_ros.errors import ConfigError


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_fcn5_has_the_stated_layers():
    model = dlbench.build_fcn5()
    sizes = [(m.in_features, m.out_features) for m in model if isinstance(m, torch.nn.Linear)]
    assert sizes == [(784, 2048), (2048, 4096), (4096, 1024), (1024, 10)]
    assert sum(p.numel() for p in model.parameters()) == 14_205_962
    assert sum(isinstance(m, torch.nn.Sigmoid) for m in model) == 3


def test_resnet56_depth():
    model = dlbench.build_resnet(56)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) == 1 + 2 * 27  # stem + two per block, 27 blocks; + the FC layer = 56 layers
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ConfigError):
        dlbench.build_resnet(55)


@pytest.mark.parametrize("name", dlbench.WORKLOADS)
def test_each_workload_trains(name):
    """One timed run really updates the weights (the step is a training step, not a no-op)."""
    w = dlbench.make_workload(name, 2, pool_size=2)
    before = [p.detach().clone() for p in w.model.parameters()]
    r = dlbench.time_workload(w, warmup=0, repeats=1, steps=1)
    changed = sum(not torch.equal(a, b) for a, b in zip(before, w.model.parameters()))
    assert changed >= len(before) // 2
    assert r.median_ms > 0 and r.batch == 2 and r.threads == 1 and r.params == sum(p.numel() for p in before)


def test_infer_mode_leaves_weights():
    w = dlbench.make_workload("cnn", 2, pool_size=1)
    before = [p.detach().clone() for p in w.model.parameters()]
    dlbench.time_workload(w, mode="infer", warmup=0, repeats=1, steps=1)
    assert all(torch.equal(a, b) for a, b in zip(before, w.model.parameters()))


def test_timing_median_and_spread_with_a_fake_clock():
    # repeats take 10, 30, 20 ms for 2 mini-batches each -> 5, 15, 10 ms per mini-batch
    ticks = iter([0.0, 0.010, 1.0, 1.030, 2.0, 2.020])
    w = dlbench.make_workload("fcn5", 1, pool_size=1)
    r = dlbench.time_workload(w, warmup=1, repeats=3, steps=2, clock=lambda: next(ticks))
    assert r.repeats_ms == pytest.approx([5.0, 15.0, 10.0])
    assert (r.median_ms, r.q1_ms, r.q3_ms, r.min_ms, r.max_ms) == pytest.approx((10, 7.5, 12.5, 5, 15))
    assert r.samples_per_s == pytest.approx(100.0)


def test_parse_batches_and_errors():
    assert dlbench.parse_batches(["32,64", "fcn5:8"]) == {"*": [32, 64], "fcn5": [8]}
    plan = dlbench.Plan(batches=dlbench.parse_batches(["fcn5:8"]))
    assert plan.batches_for("fcn5") == [8] and plan.batches_for("lstm") == [dlbench.DEFAULT_BATCH["lstm"]]
    for bad in (["vgg:8"], ["fcn5:x"], ["0"]):
        with pytest.raises(ConfigError):
            dlbench.parse_batches(bad)
    with pytest.raises(ConfigError):
        dlbench.parse_int_list("1,a", "--threads")


def test_thread_speedups():
    rows = [{"workload": "cnn", "mode": "train", "batch": 8, "threads": 1, "median_ms": 10.0},
            {"workload": "cnn", "mode": "train", "batch": 8, "threads": 2, "median_ms": 6.25}]
    assert dlbench.thread_speedups(rows) == {("cnn", "train", 8): {1: 1.0, 2: 1.6}}


def test_command_writes_a_run_that_compare_reads(tmp_path, capsys):
    out = tmp_path / "run.json"
    code = main(["bench", "dlbench", "--workloads", "fcn5,lstm", "--batch", "2", "--threads", "1",
                 "--repeats", "2", "--steps", "1", "--warmup", "0", "--mode", "both", "--json", str(out)])
    assert code == 0
    run = compare.load_run(out)
    keys = sorted((r["workload"], r["mode"]) for r in run["results"])
    assert keys == [("fcn5", "infer"), ("fcn5", "train"), ("lstm", "infer"), ("lstm", "train")]
    assert run["environment"]["torch"] == torch.__version__
    assert all(len(r["repeats_ms"]) == 2 for r in run["results"])
    text = capsys.readouterr().out
    assert "fcn5" in text and "ms/batch" in text
    # the same run against itself: every ratio is exactly 1
    assert main(["bench", "compare", str(out), str(out)]) == 0
    assert "1.000" in capsys.readouterr().out


def test_cuda_unavailable_is_a_clear_error(capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present here")
    assert main(["bench", "dlbench", "--workloads", "fcn5", "--device", "cuda", "--repeats", "1"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_energy_per_sample_from_a_meter():
    class FakeMeter:
        name = "fake"

        def __init__(self):
            self.e = 0.0

        def read(self):
            self.e += 0.5  # each read adds 0.5 J: one repeat spans two reads -> 0.5 J per repeat
            return type("R", (), {"energy_j": self.e})()

    w = dlbench.make_workload("cnn", 4, pool_size=1)
    r = dlbench.time_workload(w, warmup=0, repeats=2, steps=2, meter=FakeMeter())
    assert r.energy_per_sample_j == pytest.approx(0.5 / (2 * 4)) and r.energy_meter == "fake"
    assert dlbench.time_workload(w, warmup=0, repeats=1, steps=1).energy_per_sample_j is None


def test_workload_names():
    assert dlbench.expand_workloads("dlbench") == list(dlbench.WORKLOADS)
    assert dlbench.expand_workloads("fcn5,own,fcn5")[:2] == ["fcn5", "ddi"]
    with pytest.raises(ConfigError, match="unknown workload 'vgg'"):
        dlbench.expand_workloads("vgg")


@pytest.mark.parametrize("name", ["ddi", "e2resnet", "segnet", "roam"])
def test_own_networks_train(name):
    from effdl_ros.bench import own_models

    try:
        w = own_models.make_own_workload(name, 1, pool_size=1)
    except ConfigError as err:  # another capability's module is absent or changed its constructor
        pytest.skip(str(err))
    before = [p.detach().clone() for p in w.model.parameters()]
    r = dlbench.time_workload(w, warmup=0, repeats=1, steps=1)
    assert r.median_ms > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, w.model.parameters()))


def test_unbuildable_own_network_is_skipped(monkeypatch):
    from effdl_ros.bench import own_models

    def broken():
        raise ImportError("no module named effdl_ros.ddi")

    monkeypatch.setitem(own_models.BUILDERS, "ddi", broken)
    skipped = []
    run = dlbench.run_plan(dlbench.Plan(workloads=["ddi"], repeats=1, steps=1, warmup=0),
                           on_skip=lambda n, why: skipped.append(n))
    assert run["results"] == [] and "ddi" in run["skipped"] and skipped == ["ddi"]

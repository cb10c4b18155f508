"""Budgeted training (issue 21): the matched schedule spends the method's MACs, lr ends at zero, and
the fine-tuning bench's stream never shows a test item to training."""
import numpy as np
import pytest
import torch

from effdl_ros.errors import ConfigError
from effdl_ros.training.budgeted import budgeted_fit, linear_decay, macs_for_energy
from effdl_ros.training.e2train import E2TrainConfig, E2Trainer, modelled_energy_j
from effdl_ros.training.resnet import ResNetConfig, build

torch.set_num_threads(1)


def tiny(gates=False):
    torch.manual_seed(0)
    return build(ResNetConfig(blocks=(2, 2, 2), widths=(4, 8, 8), gates=gates, gate_bias=3.0,
                              gate_unit="batch"))


def data(n=96, size=8):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 1, size, size, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_linear_decay_starts_at_one_falls_linearly_and_ends_at_zero():
    assert linear_decay(0, 40) == 1.0
    assert linear_decay(10, 40) == pytest.approx(0.75)
    assert linear_decay(40, 40) == 0.0
    steps = [linear_decay(i, 40) for i in range(41)]
    assert all(a > b for a, b in zip(steps, steps[1:]))
    with pytest.raises(ConfigError):
        linear_decay(0, 0)


def test_budget_matched_run_executes_the_methods_macs_within_two_percent_and_ends_at_lr_zero():
    x, y = data()
    # the method: E2-Train with SMD and SLU, 6 epochs; its executed MACs are the budget
    method = E2Trainer(tiny(gates=True), E2TrainConfig(epochs=6, batch_size=16, smd_rate=0.5, slu=True,
                                                       slu_target=0.5, seed=2))
    method.fit(x, y)
    spent = method.counter.tally.total
    method.close()
    assert spent > 0
    model = tiny()
    r = budgeted_fit(model, x, y, target_macs=spent, config=E2TrainConfig(batch_size=16, seed=2))
    assert abs(r.executed_train_macs - spent) / spent <= 0.02
    assert r.final_lr_scale == 0.0
    # and the same modelled energy (fp32 MACs on both sides)
    assert r.modelled_energy_j == pytest.approx(modelled_energy_j(method.counter.tally), rel=0.02)


def test_energy_budget_converts_to_fp32_macs_and_matches():
    x, y = data()
    target_j = 4e-4
    r = budgeted_fit(tiny(), x, y, target_macs=macs_for_energy(target_j),
                     config=E2TrainConfig(batch_size=16))
    assert abs(r.modelled_energy_j - target_j) / target_j <= 0.02


def test_budget_must_be_positive():
    x, y = data()
    with pytest.raises(ConfigError):
        budgeted_fit(tiny(), x, y, target_macs=0)


def test_finetune_stream_never_shows_test_items_to_training(monkeypatch):
    from effdl_ros.bench import finetune as ft

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 20)
    images = rng.integers(0, 256, size=(200, 28, 28)).astype(np.uint8)
    task = ft.make_task(30, seed=1, images=images, labels=labels)
    test = set(task.test_idx.tolist())
    assert not test & set(task.stream_idx.tolist())
    assert not test & set(task.pretrain_idx.tolist())
    assert len(task.stream_idx) == 30
    # every tensor any method feeds the model while fine-tuning is a stream item, never a test item
    test_rows = {bytes(r.numpy().tobytes()) for r in torch.cat([task.x_test_new, task.x_test_old])}
    stream_rows = {bytes(r.numpy().tobytes()) for r in task.x_stream}
    seen = []
    monkeypatch.setattr(ft, "_score", lambda *a, **k: {"new_domain_acc": 0.0, "old_domain_acc": 0.0})
    model = build(ResNetConfig(blocks=(1, 1, 1), widths=(4, 8, 8), stem_stride=2, gates=True,
                               gate_bias=3.0, gate_unit="batch"))
    model.register_forward_pre_hook(lambda m, inp: seen.extend(bytes(r.numpy().tobytes()) for r in inp[0]))
    settings = ft.FinetuneSettings(batch_size=8, max_head_epochs=2)
    for name in ("last layer only", "plain (budget-matched)", "E2-Train SMD+SLU+PSG"):
        _, fn, kw = ft.METHODS[name]
        fn(model, task, 2e-4, settings, 0, **kw)
    # the MAC probe feeds two stream items too; what matters: nothing from the test set
    assert seen and not set(seen) & test_rows
    assert set(seen) <= stream_rows


@pytest.mark.parametrize("argv, words", [
    (["bench", "finetune", "--budgets", "0"], "--budgets"),
    (["bench", "finetune", "--stream", "5"], "--stream"),
    (["bench", "e2train", "--data", "sklearn", "--epochs", "sklearn=1", "--seeds", "a"], "--seeds"),
    (["bench", "e2train", "--data", "sklearn", "--epochs", "sklearn=1", "--variants", "SMD,nope"], "--variants"),
])
def test_bad_equal_cost_arguments_are_one_sentence(argv, words, capsys):
    from effdl_ros.cli.main import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("effdl-ros: error:") and words in err and "Traceback" not in err

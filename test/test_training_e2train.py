"""E2-Train: SMD drops at its rate, gated-off blocks do not run, MACs count what ran, PSG signs."""
import math

import pytest
import torch

from effdl_ros.energy.budget import Budget
from effdl_ros.training.e2train import E2TrainConfig, E2Trainer, evaluate, modelled_energy_j
from effdl_ros.training.knobs import TrainerKnobs, knobs_from_budget
from effdl_ros.training.macs import MacCounter, MacTally
from effdl_ros.training.psg import PsgConv2d, convert_to_psg, mac_energy_pj, quantize
from effdl_ros.training.resnet import ResNetConfig, build

torch.set_num_threads(1)


def tiny(gates=False, bias=2.0):
    torch.manual_seed(0)
    return build(ResNetConfig(blocks=(2, 2, 2), widths=(4, 8, 8), gates=gates, gate_bias=bias))


def batch(n=8, size=8):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 1, size, size, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_smd_drops_at_the_set_rate():
    trainer = E2Trainer(tiny(), E2TrainConfig(smd_rate=0.3, seed=3))
    n = 4000
    drops = sum(trainer.drop() for _ in range(n))
    # binomial sd = sqrt(0.3 * 0.7 / 4000) ~ 0.0072; 5 sd
    assert abs(drops / n - 0.3) < 0.036


def test_dropped_batch_runs_no_forward_and_no_macs():
    model = tiny()
    calls = []
    model.stem.register_forward_hook(lambda *a: calls.append(1))
    trainer = E2Trainer(model, E2TrainConfig(smd_rate=0.999999, seed=0))
    x, y = batch()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for _ in range(20):
        assert not trainer.step(x, y).executed
    assert calls == [] and trainer.counter.tally.total == 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def _block_calls(model):
    calls = [0] * len(model.blocks)
    for i, b in enumerate(model.blocks):
        b.register_forward_hook(lambda m, inp, out, i=i: calls.__setitem__(i, calls[i] + inp[0].shape[0]))
    return calls


def test_gated_off_blocks_are_not_executed_forward_or_backward():
    model = tiny(gates=True)
    torch.nn.init.constant_(model.gate_fc.bias, -30.0)  # every gate closed
    calls = _block_calls(model)
    x, y = batch()
    model.train()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    assert calls[0] == 8 and calls[1:] == [0] * (len(calls) - 1)  # block 0 always runs
    for b in model.blocks[1:]:
        assert b.conv1.weight.grad is None and b.conv2.weight.grad is None
    assert model.blocks[0].conv1.weight.grad is not None


def test_open_gates_run_every_sample_and_partial_gates_run_a_sub_batch():
    model = tiny(gates=True)
    torch.nn.init.constant_(model.gate_fc.bias, 30.0)
    calls = _block_calls(model)
    x, _ = batch()
    model.eval()
    model(x)
    assert calls == [8] * len(calls)
    torch.nn.init.constant_(model.gate_fc.bias, 0.0)  # p ~ 0.5: Bernoulli in training
    model.train()
    torch.manual_seed(0)
    rows_full = [0] * len(calls)
    calls[:] = rows_full
    model(torch.randn(64, 1, 8, 8))
    assert calls[0] == 64 and all(0 < c < 64 for c in calls[1:])
    assert model.last_block_rows[1:] == calls[1:]


def test_executed_macs_fall_with_closed_gates():
    x, y = batch()
    counts = []
    for bias in (30.0, -30.0):
        model = tiny(gates=True, bias=bias)
        counter = MacCounter(model)
        model.train()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        counts.append(counter.tally.total)
    assert counts[1] < 0.5 * counts[0]


def test_slu_regulariser_pushes_the_fired_share_toward_the_target():
    model = tiny(gates=True, bias=3.0)
    cfg = E2TrainConfig(slu=True, slu_target=0.2, slu_beta=1.0, lr=0.05, batch_size=16, epochs=6)
    trainer = E2Trainer(model, cfg)
    g = torch.Generator().manual_seed(0)
    xs, ys = torch.randn(96, 1, 8, 8, generator=g), torch.randint(0, 10, (96,), generator=g)
    first = trainer.step(xs[:16], ys[:16]).fired_fraction
    trainer.fit(xs, ys)
    assert first > 0.8
    assert trainer.stats.mean_fired < first
    last = trainer.step(xs[:16], ys[:16]).fired_fraction
    assert last < 0.6


def test_psg_weight_gradients_are_signs_and_input_gradients_flow():
    model = tiny()
    stats = convert_to_psg(model, threshold=5e-5)
    assert any(isinstance(m, PsgConv2d) for m in model.modules())
    x, y = batch()
    x.requires_grad_(True)
    model.train()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    for m in model.modules():
        if isinstance(m, PsgConv2d):
            assert set(m.weight.grad.unique().tolist()) <= {-1.0, 0.0, 1.0}
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert 0.0 < stats.predicted_fraction <= 1.0


def test_quantiser_levels_and_psg_energy_model():
    x = torch.linspace(-1, 1, 1001)
    assert len(quantize(x, 4, torch.tensor(1.0)).unique()) <= 16
    assert len(quantize(x, 8, torch.tensor(1.0)).unique()) <= 256
    assert mac_energy_pj(4, 16) < mac_energy_pj(8, 32) < mac_energy_pj(32, 32)
    tally = MacTally(forward=100, backward=200, conv_forward=90, conv_weight_grad=90, conv_input_grad=90)
    assert modelled_energy_j(tally, psg=True, psg_predicted_fraction=0.9) < modelled_energy_j(tally)


def test_fit_trains_and_counts_iterations():
    model = tiny()
    g = torch.Generator().manual_seed(0)
    xs, ys = torch.randn(64, 1, 8, 8, generator=g), torch.randint(0, 3, (64,), generator=g)
    trainer = E2Trainer(model, E2TrainConfig(epochs=3, batch_size=16, smd_rate=0.5, lr=0.05))
    st = trainer.fit(xs, ys)
    assert st.iterations == 12 and 0 < st.executed_iterations < 12
    acc, fired = evaluate(model, xs, ys)
    assert 0.0 <= acc <= 1.0 and fired == 1.0


def test_budget_maps_onto_knobs():
    d = TrainerKnobs(smd_rate=0.5, slu_target=0.5, steps_per_second=2.0)
    assert knobs_from_budget(Budget(compute_fraction=0.0), d).paused
    # no stale case: the node's default fraction arrives as a (stale) budget and maps like any other
    assert knobs_from_budget(Budget(stale=True, compute_fraction=0.1), d) == knobs_from_budget(
        Budget(compute_fraction=0.1), d)
    lo = knobs_from_budget(Budget(compute_fraction=0.2), d)
    mid = knobs_from_budget(Budget(compute_fraction=0.5), d)
    hi = knobs_from_budget(Budget(compute_fraction=1.0), d)
    assert lo.smd_rate == mid.smd_rate == 0.5 and hi.smd_rate == 0.0
    assert lo.slu_target < mid.slu_target <= hi.slu_target == 1.0
    assert lo.psg and not hi.psg
    # expected executed share ~ (1 - smd) * slu tracks the fraction where it can
    assert math.isclose((1 - mid.smd_rate) * mid.slu_target, 0.5)
    limited = knobs_from_budget(Budget(compute_fraction=1.0, power_w=1.0), d, joules_per_step=2.0)
    assert math.isclose(limited.steps_per_second, 0.5)
    assert knobs_from_budget(Budget(power_w=0.0), d).paused
    assert not knobs_from_budget(Budget(compute_fraction=float("nan")), d).paused


def test_calibrate_step_counts_a_dense_step_and_prices_it():
    from effdl_ros.energy.cost_model import Profile
    from effdl_ros.training.knobs import calibrate_step

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 4))
    c = calibrate_step(model, torch.zeros(8, 1, 4, 4), Profile("p", pj_per_mac=10.0, pj_per_byte=0.0, efficiency=0.5))
    assert c.dense_macs == 3 * 8 * 16 * 4                    # forward x3 (forward + backward)
    assert c.joules == pytest.approx(c.dense_macs * 20e-12)
    assert model.training                                    # left as it was


def test_gated_forward_equals_the_dense_net_when_every_gate_fires_and_skips_exactly():
    model = tiny(gates=True, bias=30.0).eval()
    x, _ = batch()
    dense = model.__class__(model.config)
    dense.load_state_dict(model.state_dict())
    dense.force_full = True
    dense.eval()
    assert torch.allclose(model(x), dense(x), atol=1e-5)
    # one sample's gates closed: its output is the shortcut path, the others' are unchanged
    torch.nn.init.constant_(model.gate_fc.bias, 0.0)
    model.eval_gates = "hard"
    out = model(x)
    for i in range(x.shape[0]):
        assert torch.allclose(out[i:i + 1], model(x[i:i + 1]), atol=1e-5)


def tiny_batch_gated(bias):
    torch.manual_seed(0)
    return build(ResNetConfig(blocks=(2, 2, 2), widths=(4, 8, 8), gates=True, gate_bias=bias,
                              gate_unit="batch"))


def test_batch_gates_skip_a_block_for_the_whole_batch_forward_and_backward():
    model = tiny_batch_gated(0.0)
    torch.nn.init.zeros_(model.gate_fc.weight)  # p = 0.5 exactly: some blocks run, some do not
    calls = _block_calls(model)
    x, y = batch(16)
    model.train()
    for seed in range(20):  # a draw where some gated blocks run and some do not (P = 15/16 each)
        calls[:] = [0] * len(calls)
        torch.manual_seed(seed)
        model.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        if 0 in calls[1:] and 16 in calls[1:]:
            break
    assert calls[0] == 16 and set(calls[1:]) <= {0, 16} and 0 in calls[1:] and 16 in calls[1:]
    assert model.last_block_rows == calls
    for c, b in zip(calls[1:], model.blocks[1:]):
        assert (b.conv1.weight.grad is None) == (c == 0)
    masks = model.last_masks
    assert masks.shape == (16, len(model.blocks) - 1)
    assert torch.equal(masks, masks[:1].expand_as(masks))  # one decision per batch
    assert masks[0].tolist() == [float(c > 0) for c in calls[1:]]


def test_batch_gate_straight_through_gradient_equals_the_explicit_product():
    from effdl_ros.training.resnet import _FiredStraightThrough

    g = torch.Generator().manual_seed(0)
    out0, res0 = torch.randn(4, 3, 5, 5, generator=g), torch.randn(4, 3, 5, 5, generator=g)
    w = torch.randn(4, 3, 5, 5, generator=g)
    grads = []
    for explicit in (True, False):
        out, res = out0.clone().requires_grad_(), res0.clone().requires_grad_()
        p = torch.tensor([0.3], requires_grad=True)
        if explicit:
            m = 1.0 - p.detach() + p
            h = res + m * (out - res)
        else:
            h = _FiredStraightThrough.apply(out, res, p)
        assert torch.allclose(h, out0)
        (h * w).sum().backward()
        grads.append((out.grad, res.grad if res.grad is not None else torch.zeros_like(res0), p.grad))
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-5)


def test_batch_gated_net_with_open_gates_equals_the_dense_net():
    model = tiny_batch_gated(30.0).eval()
    dense = model.__class__(model.config)
    dense.load_state_dict(model.state_dict())
    dense.force_full = True
    dense.eval()
    x, _ = batch()
    assert torch.allclose(model(x), dense(x), atol=1e-5)


def test_interleaved_training_gives_each_variant_the_same_run_as_alone():
    from effdl_ros.bench.training import interleaved_fit
    from effdl_ros.training.experiments import Data

    g = torch.Generator().manual_seed(0)
    xs, ys = torch.randn(64, 1, 8, 8, generator=g), torch.randint(0, 10, (64,), generator=g)
    data = Data("toy", 8, xs, ys, xs, ys)
    cfgs = {"full": E2TrainConfig(epochs=2, batch_size=16, lr=0.05),
            "SMD": E2TrainConfig(epochs=2, batch_size=16, lr=0.05, smd_rate=0.5)}
    alone = {}
    for k, c in cfgs.items():
        t = E2Trainer(tiny(), c)
        t.fit(xs, ys)
        alone[k] = (t.model.state_dict(), t.stats.executed_iterations, t.counter.tally.total)
    trainers = {k: E2Trainer(tiny(), c) for k, c in cfgs.items()}
    wall = interleaved_fit(trainers, data)
    for k, t in trainers.items():
        sd, n_exec, macs = alone[k]
        assert wall[k] > 0 and t.stats.executed_iterations == n_exec and t.counter.tally.total == macs
        assert all(torch.equal(sd[n], v) for n, v in t.model.state_dict().items())
    assert trainers["SMD"].counter.tally.total < trainers["full"].counter.tally.total


def test_logit_regulariser_revives_dead_batch_gates_where_the_prob_regulariser_cannot():
    g = torch.Generator().manual_seed(0)
    xs, ys = torch.randn(64, 1, 8, 8, generator=g), torch.randint(0, 10, (64,), generator=g)
    final = {}
    for reg in ("logit", "prob"):
        model = tiny_batch_gated(-8.0)  # p ~ 3e-4: every gate practically dead
        cfg = E2TrainConfig(slu=True, slu_target=0.5, slu_beta=1.0, slu_reg=reg, lr=0.1,
                            batch_size=16, epochs=10)
        trainer = E2Trainer(model, cfg)
        torch.manual_seed(0)
        trainer.fit(xs, ys)
        model.train()
        model(xs)
        final[reg] = float(model.last_probs.detach().mean())
    assert final["logit"] > 0.2       # pushed back up to the target
    assert final["prob"] < 0.01       # the push through sigmoid vanished: gates stay dead

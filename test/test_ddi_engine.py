"""DDI engine: real skipping, exact MAC counts, equivalence with the training graph, hard budget."""
import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from effdl_ros.ddi.engine import DDIEngine, DDISettings
from effdl_ros.ddi.model import DDIConfig, DDINet
from effdl_ros.energy.cost_model import count_macs


def _random_model(seed: int, gate_bias_mean: float = 0.0, **cfg) -> DDINet:
    """A DDINet with random BN statistics and random gates (so gates really switch)."""
    torch.manual_seed(seed)
    m = DDINet(DDIConfig(**{"widths": (8, 16, 16), "blocks": (2, 2, 1), "image_size": 16, **cfg}))
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
        for b in m.blocks():
            if b.gate is not None:
                b.gate.weight.normal_(0, 0.5)
                b.gate.bias.normal_(gate_bias_mean, 1.0)
    return m.eval()


@pytest.fixture(scope="module")
def model():
    return _random_model(0)


@pytest.fixture(scope="module")
def engine(model):
    return DDIEngine(model)


def test_gates_off_equals_static_network(model, engine):
    x = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        ref = model(x, force_on=True)["exits"][-1]
    for i in range(4):
        r = engine.run(x[i], DDISettings(use_gates=False))
        assert r.exit_index == len(engine.heads) - 1
        assert r.blocks_run == engine.blocks_total
        assert torch.allclose(r.logits, ref[i], atol=1e-4)
        assert r.macs == engine.full_macs


def test_skipping_engine_matches_masked_training_graph(model, engine):
    x = torch.randn(16, 1, 16, 16)
    with torch.no_grad():
        out = model(x)
    layer_offs = 0
    for i in range(16):
        r = engine.run(x[i])
        assert torch.allclose(r.logits, out["exits"][-1][i], atol=1e-4)
        layer_offs += engine.blocks_total - r.blocks_run
        expected_blocks = sum(round(float(layer[i])) for layer in out["layers"])
        assert r.blocks_run == expected_blocks
    assert layer_offs > 0, "random gates should switch some blocks off"


def test_executed_macs_equal_torch_counter_and_fall_when_gates_skip(engine):
    torch.manual_seed(1)
    counted = []
    for i in range(6):
        x = torch.randn(1, 1, 16, 16)
        ceiling = [math.inf, 0.5 * engine.full_macs, engine.costs.cumulative_worst[0]][i % 3]
        s = DDISettings(mac_ceiling=ceiling)
        r = engine.run(x, s)
        assert count_macs(lambda t: engine.run(t, s), x) == r.macs
        counted.append(r.macs)
    assert min(counted) < engine.full_macs
    closed = _random_model(2, gate_bias_mean=-8.0)   # every gate off: only stem, shortcuts, gates, head
    e2 = DDIEngine(closed)
    x = torch.randn(1, 1, 16, 16)
    r = e2.run(x)
    assert r.blocks_run == sum(1 for b in closed.blocks() if not b.layer_gated)
    assert count_macs(lambda t: e2.run(t), x) == r.macs < 0.3 * e2.full_macs


def test_batch_routes_each_sample(engine):
    x = torch.randn(5, 1, 16, 16)
    batch = engine.run_batch(x, DDISettings(mac_ceiling=0.7 * engine.full_macs))
    for i, r in enumerate(batch):
        single = engine.run(x[i], DDISettings(mac_ceiling=0.7 * engine.full_macs))
        assert r.macs == single.macs and torch.equal(r.logits, single.logits)


def test_budget_below_first_exit_runs_nothing(engine):
    r = engine.run(torch.randn(1, 1, 16, 16), DDISettings(mac_ceiling=engine.min_macs - 1))
    assert r.skipped and r.macs == 0 and r.exit_index == -1
    r = engine.run(torch.randn(1, 1, 16, 16), DDISettings(mac_ceiling=engine.min_macs))
    assert r.exit_index == 0 and r.macs <= engine.min_macs and r.forced
    r = engine.run(torch.randn(1, 1, 16, 16), DDISettings(mac_ceiling=float("nan")))
    assert r.skipped and r.macs == 0


_ENGINES = {}


def _engine_for(seed: int) -> DDIEngine:
    if seed not in _ENGINES:
        _ENGINES[seed] = DDIEngine(_random_model(seed, gate_bias_mean=0.5))
    return _ENGINES[seed]


@settings(max_examples=120, deadline=None)
@given(seed=st.integers(0, 3), fraction=st.floats(0.0, 1.3, allow_nan=False),
       input_seed=st.integers(0, 10_000), confidence=st.one_of(st.none(), st.floats(0.0, 1.0)),
       use_gates=st.booleans(), share=st.sampled_from([0.0, 0.25, 0.5, 1.0]))
def test_budget_is_never_exceeded(seed, fraction, input_seed, confidence, use_gates, share):
    engine = _engine_for(seed)
    g = torch.Generator().manual_seed(input_seed)
    x = torch.randn(1, 1, 16, 16, generator=g) * (1 + 3 * torch.rand(1, generator=g))
    ceiling = fraction * engine.full_macs
    r = engine.run(x, DDISettings(mac_ceiling=ceiling, confidence=confidence, use_gates=use_gates,
                                  continue_share=share))
    assert r.macs <= ceiling
    table = engine.cost_table(use_gates, share)
    planned = table.plan_exit(ceiling)
    assert r.skipped == (ceiling < table.min_cost)
    if not use_gates:
        assert not r.forced
    if planned < 0:
        pass
    elif confidence is None:
        # adaptive halting is never shallower than the static worst-case plan
        assert r.exit_index >= planned
    else:
        assert r.exit_index >= 0


def test_stride_two_stem_counts_and_matches():
    m = _random_model(5, stem_stride=2, image_size=15, widths=(8, 8, 16))
    e = DDIEngine(m)
    x = torch.randn(3, 1, 15, 15)
    with torch.no_grad():
        ref = m(x)["exits"]
    for i in range(3):
        r = e.run(x[i])
        assert torch.allclose(r.logits, ref[-1][i], atol=1e-4)
        assert count_macs(lambda t: e.run(t), x[i: i + 1]) == r.macs
        r0 = e.run(x[i], DDISettings(mac_ceiling=e.costs.cumulative_worst[0]))
        keep = torch.ones(1, e.blocks_total)
        keep[0, r0.forced] = 0
        with torch.no_grad():
            ref0 = m(x[i: i + 1], keep=keep)["exits"]
        assert r0.exit_index >= 0 and torch.allclose(r0.logits, ref0[r0.exit_index][0], atol=1e-4)


def test_block_halting_force_skips_and_matches_the_masked_graph():
    """Budgets between the cheapest exit and a stage's worst case: the engine force-skips skippable
    blocks (gates not evaluated), spends at most the ceiling, and its logits equal the training graph
    with those blocks skipped (keep = 0), so the training-time truncation simulates the same thing."""
    m = _random_model(7, gate_bias_mean=2.0, blocks=(3, 3, 2))   # gates mostly on: the budget decides
    e = DDIEngine(m)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(12, 1, 16, 16, generator=g)
    lo, hi = e.min_macs, e.costs.cumulative_worst[0]
    assert lo < hi
    forced_any = 0
    for i in range(12):
        ceiling = lo + (hi - lo) * i / 11
        for conf in (None, 0.5):
            r = e.run(x[i], DDISettings(mac_ceiling=ceiling, confidence=conf))
            assert 0 < r.macs <= ceiling and r.exit_index >= 0
            assert count_macs(lambda t: e.run(t, DDISettings(mac_ceiling=ceiling, confidence=conf)),
                              x[i: i + 1]) == r.macs
            assert all(e.costs.skippable[j] for j in r.forced)
            keep = torch.ones(1, e.blocks_total)
            keep[0, r.forced] = 0
            with torch.no_grad():
                ref = m(x[i: i + 1], keep=keep)
            assert torch.allclose(r.logits, ref["exits"][r.exit_index][0], atol=1e-4)
            assert r.blocks_run == sum(round(float(v[0])) for j, v in enumerate(ref["layers"]) if _reached(e, j, r))
            forced_any += len(r.forced)
    assert forced_any > 0


def _reached(engine, j, result) -> bool:
    """Whether the forward got to block j before halting at result.exit_index."""
    last = [k for k in range(engine.blocks_total) if engine.costs.block_exit[k] == result.exit_index][0]
    return j <= last


def test_reserves_are_the_cheapest_way_to_an_exit(engine):
    t = engine.costs
    n = engine.blocks_total
    assert t.reserve_after[n - 1] == t.head[-1]
    for j in range(n):
        own = 0 if t.skippable[j] else t.block_worst[j]
        assert t.reserve_before[j] == own + t.reserve_after[j]
        if t.block_exit[j] >= 0:
            assert t.reserve_after[j] <= t.head[t.block_exit[j]]
    assert t.min_cost <= t.cumulative_worst[0]
    assert engine.cost_table(False).min_cost == engine.cost_table(False).cumulative_worst[0]


def test_exit_pool_grid_heads_count_and_match():
    m = _random_model(9, exit_pool=2, widths=(8, 8, 16))
    e = DDIEngine(m)
    assert e.heads[0].pool == 2 and e.heads[-1].pool == 1
    x = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        ref = m(x)["exits"]
    for i in range(4):
        s = DDISettings(confidence=0.0)                  # halts at the first exit it reaches
        r = e.run(x[i], s)
        assert r.exit_index == 0 and torch.allclose(r.logits, ref[0][i], atol=1e-4)
        assert count_macs(lambda t: e.run(t, s), x[i: i + 1]) == r.macs

"""MDDA end to end on tiny nets (stages 1-4), checkpoint round trip, CLI error handling."""
import sys

import numpy as np
import pytest
import torch

from effdl_ros.adaptation import mdda
from effdl_ros.adaptation.domains import build_domains
from effdl_ros.adaptation.nets import NetSizes
from effdl_ros.cli.main import main
from effdl_ros.errors import DataError

TINY = NetSizes(conv=(4, 8, 8), fc=32, feature=16, critic=(16, 8))


@pytest.fixture(scope="module")
def tiny_runs():
    torch.set_num_threads(1)
    doms = build_domains(["sklearn", "sklearn-inv", "sklearn-blur"], max_per_domain=400)
    tgt = doms.pop("sklearn-blur")
    cfg = mdda.MddaConfig(sizes=TINY, batch=32, pretrain_iters=60, adapt_iters=10, distill_iters=5)
    return doms, tgt, cfg, mdda.train_sources(doms, tgt.train_x, cfg)


def test_stages_produce_one_branch_per_source(tiny_runs):
    doms, tgt, cfg, runs = tiny_runs
    assert [r.name for r in runs] == list(doms)
    for run, dom in zip(runs, doms.values()):
        # stage 1 learnt its own source (chance is 10 %)
        assert mdda.accuracy(mdda.predict_logits(run.source_model, dom.test_x), dom.test_y) > 0.3
        # stage 2 gave a separate target encoder; stage 3 kept half of the source samples
        assert run.adapted.target_encoder is not run.source_model.encoder
        assert run.n_distilled == len(dom.train_y) // 2 or abs(run.n_distilled - len(dom.train_y) / 2) <= 1
        assert len(run.adapted.history) == cfg.adapt_iters and run.critic_distance >= 0
        # stage 3 changed only a copy of the classifier
        assert run.classifier is not run.source_model.classifier


def test_stage4_is_weighted_sum_of_branch_logits(tiny_runs):
    _doms, tgt, cfg, runs = tiny_runs
    w = mdda.domain_weights([r.critic_distance for r in runs])
    model = mdda.assemble(runs, w, cfg.sizes)
    x = torch.as_tensor(tgt.test_x[:8])
    with torch.no_grad():
        branches = torch.stack([run.classifier(run.adapted.target_encoder(x)) for run in runs])
        np.testing.assert_allclose(model(x).numpy(),
                                   (torch.as_tensor(w, dtype=torch.float32).view(-1, 1, 1) * branches).sum(0).numpy(),
                                   rtol=1e-5, atol=1e-5)


def test_checkpoint_round_trip_and_corrupt_file(tiny_runs, tmp_path):
    _doms, tgt, cfg, runs = tiny_runs
    model = mdda.assemble(runs, [0.2, 0.8], cfg.sizes)
    path = tmp_path / "m.pt"
    mdda.save_model(model, path, {"sources": ["a", "b"]})
    loaded = mdda.load_model(path)
    x = torch.as_tensor(tgt.test_x[:4])
    with torch.no_grad():
        # stored as float16, loaded back as float32
        torch.testing.assert_close(loaded(x), model(x), rtol=2e-2, atol=2e-2)
    assert loaded.encoders[0].fc[1].weight.dtype == torch.float32
    assert torch.load(path, weights_only=True)["state_dict"]["weights"].dtype == torch.float16
    assert loaded.config["sources"] == ["a", "b"]
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temp file left
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="bad.pt"):
        mdda.load_model(bad)
    with pytest.raises(DataError, match="does not exist"):
        mdda.load_model(tmp_path / "missing.pt")


def test_cli_rejects_target_among_sources(capsys):
    assert main(["train", "mdda", "--sources", "mnist5k,sklearn", "--target", "mnist"]) == 2
    assert "also one of --sources" in capsys.readouterr().err


def test_cli_rejects_unknown_domain(capsys):
    assert main(["bench", "adaptation", "--sources", "svhn", "--target", "mnistm"]) == 2
    assert "unknown digit domain 'svhn'" in capsys.readouterr().err


def test_bench_says_when_segmentation_part_is_missing(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "effdl_ros.bench.segmentation", None)  # import fails
    import effdl_ros.bench as bench_package  # an earlier import left the attribute set

    monkeypatch.delattr(bench_package, "segmentation", raising=False)
    out = tmp_path / "b.json"
    assert main(["bench", "adaptation", "--task", "segmentation", "--json", str(out)]) == 0
    assert "segmentation part missing" in capsys.readouterr().out
    import json

    assert "missing" in json.loads(out.read_text())["segmentation"]


TINY_CLI = ["--sources", "sklearn,sklearn-inv", "--target", "sklearn-blur", "--pretrain-iters", "3",
            "--adapt-iters", "2", "--max-per-domain", "100", "--threads", "1"]


def test_cli_train_writes_a_loadable_checkpoint(tmp_path, capsys):
    out = tmp_path / "mdda.pt"
    assert main(["train", "mdda", *TINY_CLI, "--weighting", "emd", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "target test accuracy" in text and f"wrote {out}" in text
    model = mdda.load_model(out)
    assert model.config["sources"] == ["sklearn", "sklearn-inv"] and model.config["weighting"] == "emd"
    assert float(model.weights.float().sum()) == pytest.approx(1.0, abs=1e-3)


def test_cli_bench_digits_rows_and_json(tmp_path, capsys):
    import json

    out = tmp_path / "bench.json"
    assert main(["bench", "adaptation", *TINY_CLI, "--json", str(out)]) == 0
    assert "MDDA digits benchmark" in capsys.readouterr().out
    data = json.loads(out.read_text())["digits"]
    kinds = {r["kind"] for r in data["rows"]}
    assert kinds == {"source-only", "single-source", "best-single-source", "multi-source", "oracle"}
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in data["rows"])
    assert set(data["distances"]) == {"sklearn", "sklearn-inv"}
    assert data["goal"]["met"] == (data["goal"]["margin_points"] >= 3.0)


def test_equal_cost_rows_get_mddas_training_iterations(tmp_path, capsys, monkeypatch):
    import json

    seen = {"pretrain": [], "adapt": []}
    real_pretrain, real_adapt = mdda.pretrain, mdda.adapt
    monkeypatch.setattr(mdda, "pretrain", lambda x, y, cfg, **kw: seen["pretrain"].append(cfg.pretrain_iters)
                        or real_pretrain(x, y, cfg, **kw))
    monkeypatch.setattr(mdda, "adapt", lambda enc, sx, tx, cfg, **kw: seen["adapt"].append(kw.get("iters") or
                                                                                         cfg.adapt_iters)
                        or real_adapt(enc, sx, tx, cfg, **kw))
    out = tmp_path / "bench.json"
    assert main(["bench", "adaptation", *TINY_CLI, "--equal-cost", "--json", str(out)]) == 0
    data = json.loads(out.read_text())["digits"]
    equal = [r for r in data["rows"] if r["kind"] == "equal-cost"]
    assert [r["method"].split(" (")[0] for r in equal] == ["equal cost: all sources merged",
                                                          "equal cost: merged, then adapted as one source"]
    # two sources at 3 + 2 iterations each: MDDA trains 2 x 3 and 2 x 2; the baseline gets 6 and 4 in one net
    assert sum(seen["pretrain"][:2]) == 6 and 6 in seen["pretrain"] and seen["adapt"] == [2, 2, 4]
    best = max(r["accuracy"] for r in equal)
    assert data["goal"]["margin_over_equal_cost_points"] == pytest.approx(
        100 * (data["goal"]["multi_source"] - best), abs=0.01)
    assert "strongest equal-cost baseline" in capsys.readouterr().out

"""The static frontier DDI is compared with (issue 21): best accuracy at no more MACs."""
from effdl_ros.bench.ddi_frontier import frontier_at


def pts():
    return [{"label": "a", "mean_macs": 1e6, "accuracy": 0.90, "accuracy_std": 0.01},
            {"label": "b", "mean_macs": 2e6, "accuracy": 0.95, "accuracy_std": 0.002},
            {"label": "c", "mean_macs": 3e6, "accuracy": 0.93, "accuracy_std": 0.0},   # dominated by b
            {"label": "d", "mean_macs": 4e6, "accuracy": 0.97, "accuracy_std": 0.0}]


def test_step_frontier_is_the_best_static_net_that_costs_no_more():
    assert frontier_at(pts(), 0.5e6) is None
    assert frontier_at(pts(), 1.5e6)["label"] == "a"
    assert frontier_at(pts(), 3.5e6)["label"] == "b"          # c is cheaper but worse than b
    assert frontier_at(pts(), 9e6)["accuracy"] == 0.97


def test_interpolated_frontier_skips_dominated_points():
    f = frontier_at(pts(), 3e6, interpolate=True)             # halfway b -> d (c is off the frontier)
    assert abs(f["accuracy"] - 0.96) < 1e-12
    assert f["accuracy_std"] == 0.002


def test_bench_ddi_compares_ddi_with_a_trained_static_family(tmp_path, capsys):
    import json
    import shutil

    from effdl_ros.cli.main import main

    models, family = tmp_path / "models", tmp_path / "family"
    common = ["--data", "sklearn", "--epochs", "1", "--max-train", "256", "--exit-channels", "4",
              "--threads", "1", "--blocks", "1,1,1"]
    assert main(["train", "ddi", *common, "--widths", "4,8,8", "--static", "--no-exits",
                 "--out", str(models / "ddi_sklearn_static.pt")]) == 0
    assert main(["train", "ddi", *common, "--widths", "4,8,8", "--out", str(models / "ddi_sklearn.pt")]) == 0
    for seed in (0, 1):
        assert main(["train", "ddi", *common, "--widths", "4,4,4", "--static", "--no-exits", "--seed", str(seed),
                     "--out", str(family / f"ddi_sklearn_w4_s{seed}.pt")]) == 0
    out, png = tmp_path / "b.json", tmp_path / "f.png"
    assert main(["bench", "ddi", "--data", "sklearn", "--models", str(models), "--family", str(family),
                 "--max-test", "40", "--fractions", "1,0.3", "--json", str(out), "--frontier-plot", str(png)]) == 0
    assert "DDI above the static frontier at:" in capsys.readouterr().out
    fr = json.loads(out.read_text())["tasks"][0]["frontier"]
    labels = {p["label"]: p for p in fr["family"]}
    assert labels["ddi_sklearn_w4"]["seeds"] == 2 and "ddi_sklearn_static" in labels
    assert labels["ddi_sklearn_w4"]["mean_macs"] < labels["ddi_sklearn_static"]["mean_macs"]
    for e in fr["ddi_vs_frontier"]:
        if e["frontier_step"] is not None:
            assert e["above_frontier"] == (e["margin_points_vs_interpolated"] > 0)
    assert png.stat().st_size > 0
    shutil.rmtree(family)

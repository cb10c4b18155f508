"""`effdl-ros train ddi` and `effdl-ros bench ddi` end to end on tiny real data (scikit-learn digits)."""
import json

from effdl_ros.cli.main import main


def test_train_then_bench_side_by_side(tmp_path, capsys):
    models = tmp_path / "models"
    common = ["--data", "sklearn", "--epochs", "1", "--max-train", "256", "--widths", "4,8,8",
              "--blocks", "1,1,1", "--exit-channels", "4", "--threads", "1"]
    static = str(models / "ddi_sklearn_static.pt")
    assert main(["train", "ddi", *common, "--static", "--no-exits", "--out", static]) == 0
    assert main(["train", "ddi", *common, "--out", str(models / "ddi_sklearn.pt"), "--truncate-prob", "0.5",
                 "--teacher", static, "--distill", "0.5"]) == 0
    card = (models / "ddi_sklearn.md").read_text()
    assert "effdl-ros train ddi" in card and "worst-case cumulative MACs per exit" in card
    assert "--truncate-prob 0.5" in card and "--distill 0.5" in card
    out = tmp_path / "bench.json"
    assert main(["bench", "ddi", "--data", "sklearn", "--models", str(models), "--max-test", "40",
                 "--fractions", "1,0.5", "--confidence", "0.9", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "static (all layers)" in table and "DDI budget 0.5" in table
    res = json.loads(out.read_text())
    rows = {r["config"]: r for r in res["tasks"][0]["rows"]}
    assert set(rows) >= {"static (all layers)", "DDI budget 1", "DDI budget 0.5", "DDI budget 0.5 + conf 0.9"}
    for r in rows.values():
        assert r["ceiling_violations"] == 0 and 0.0 <= r["accuracy"] <= 1.0 and r["median_ms"] > 0
        assert r["speedup_mean"] > 0 and 0 <= r["mean_blocks_run"] <= 3
        if r["mac_ceiling"] is not None:
            assert r["max_macs"] <= r["mac_ceiling"]
    assert rows["DDI budget 0.5"]["mean_macs"] < rows["DDI budget 1"]["mean_macs"]


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    assert main(["bench", "ddi", "--data", "sklearn", "--models", str(tmp_path)]) == 2
    assert "is absent" in capsys.readouterr().err
    assert main(["train", "ddi", "--data", "nope", "--out", str(tmp_path / "x.pt")]) == 2
    assert "unknown DDI data set" in capsys.readouterr().err
    assert main(["train", "ddi", "--data", "sklearn", "--distill", "0.5", "--out", str(tmp_path / "x.pt")]) == 2
    assert "--teacher" in capsys.readouterr().err

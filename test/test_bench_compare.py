"""`bench compare` on two hand-made runs: exact ratios, spread, unmatched records, bad files."""
import json

import pytest

from effdl_ros.bench import compare
from effdl_ros.cli.main import main
from effdl_ros.errors import DataError


def row(workload, threads, median, q1, q3, device="cpu", batch=64):
    return {"workload": workload, "mode": "train", "device": device, "threads": threads, "batch": batch,
            "median_ms": median, "q1_ms": q1, "q3_ms": q3}


@pytest.fixture
def runs(tmp_path):
    host = {"environment": {"in_container": False, "cpu": "x"},
            "results": [row("fcn5", 1, 10.0, 9.0, 11.0), row("cnn", 1, 20.0, 19.0, 21.0),
                        row("lstm", 1, 5.0, 4.0, 6.0)]}
    container = {"environment": {"in_container": True, "cpu": "x"},
                 "results": [row("fcn5", 1, 12.0, 11.0, 13.0), row("cnn", 1, 20.4, 19.0, 22.0),
                             row("resnet56", 1, 50.0, 49.0, 51.0)]}
    a, b = tmp_path / "host.json", tmp_path / "container.json"
    a.write_text(json.dumps(host))
    b.write_text(json.dumps(container))
    return a, b


def test_ratios_and_spread(runs):
    a, b = runs
    ratios, only_a, only_b = compare.compare_runs(compare.load_run(a), compare.load_run(b))
    by = {r.key[0]: r for r in ratios}
    assert set(by) == {"fcn5", "cnn"}
    assert by["fcn5"].ratio == pytest.approx(1.2)
    assert (by["fcn5"].low, by["fcn5"].high) == pytest.approx((11 / 11, 13 / 9))
    assert by["fcn5"].distinguishable is False  # 1.0 lies on the interval's edge
    assert by["cnn"].ratio == pytest.approx(1.02) and not by["cnn"].distinguishable
    assert [k[0] for k in only_a] == ["lstm"] and [k[0] for k in only_b] == ["resnet56"]
    assert compare.geometric_mean([1.2, 1.02]) == pytest.approx((1.2 * 1.02) ** 0.5)


def test_clear_slowdown_is_distinguishable(tmp_path):
    a = {"results": [row("fcn5", 2, 10.0, 9.8, 10.2)]}
    b = {"results": [row("fcn5", 2, 15.0, 14.5, 15.5)]}
    (r,), _, _ = compare.compare_runs(a, b)
    assert r.distinguishable and r.low == pytest.approx(14.5 / 10.2)


def test_cpu_vs_gpu_pairing():
    a = {"results": [row("cnn", 1, 40.0, 40.0, 40.0, device="cpu")]}
    b = {"results": [row("cnn", 1, 4.0, 4.0, 4.0, device="cuda")]}
    assert compare.compare_runs(a, b)[0] == []
    (r,), _, _ = compare.compare_runs(a, b, match_device=False)
    assert r.ratio == pytest.approx(0.1)


def test_command_output(runs, capsys, tmp_path):
    a, b = runs
    out = tmp_path / "ratios.json"
    assert main(["bench", "compare", str(a), str(b), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "1.200" in text and "only in A: lstm" in text and "only in B: resnet56" in text
    assert "container" in text and "host" in text
    saved = json.loads(out.read_text())
    assert {tuple(r["key"])[0]: round(r["ratio"], 6) for r in saved["ratios"]} == {"fcn5": 1.2, "cnn": 1.02}


def test_bad_files(tmp_path, capsys):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"results": [row("fcn5", 1, 1.0, 1.0, 1.0)]}))
    broken = tmp_path / "broken.json"
    broken.write_text('{"results": [\n  {"workload": "fcn5",\n  oops}\n]}')
    with pytest.raises(DataError, match=r"broken.json line 3"):
        compare.load_run(broken)
    lacking = tmp_path / "lacking.json"
    lacking.write_text(json.dumps({"results": [{"workload": "fcn5"}]}))
    with pytest.raises(DataError, match="result 0 lacks mode"):
        compare.load_run(lacking)
    with pytest.raises(DataError, match="no 'results' list"):
        (tmp_path / "x.json").write_text("[]")
        compare.load_run(tmp_path / "x.json")
    assert main(["bench", "compare", str(good), str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err

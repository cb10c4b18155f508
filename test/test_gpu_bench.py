"""`effdl-ros bench gpu`: refuses a missing GPU in one sentence; runs on the CPU (few items) and writes JSON."""
import json
import math

import pytest
import torch

from effdl_ros.bench.gpu import summarise_demo
from effdl_ros.cli.main import main


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: nothing to refuse")
def test_bench_gpu_without_a_gpu_says_so_in_one_sentence(capsys):
    assert main(["bench", "gpu", "--device", "cuda", "--demo-frames", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--device asks for cuda, but torch sees no CUDA device" in err and len(err.splitlines()) == 1


def test_bench_gpu_on_the_cpu_gives_every_level_with_its_energy_source(tmp_path, capsys):
    out = tmp_path / "gpu.json"
    assert main(["bench", "gpu", "--device", "cpu", "--nodes", "ddi,segmentation", "--items", "3",
                 "--seg-frames", "1", "--demo-frames", "0", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert [r["level"] for r in rows if r["node"] == "ddi"] == [f"compute {f:g}" for f in (1.0, 0.5, 0.3, 0.2, 0.1)]
    assert len([r for r in rows if r["node"] == "segmentation"]) == 5
    for r in rows:
        assert r["device"] == "cpu" and not r["fp16"] and r["ms"] > 0 and r["j"] > 0
        assert r["source"] in ("measured", "modelled") and r["meter"]
        if r["source"] == "modelled":
            assert r["j"] == pytest.approx(r["modelled_j"])
    seg = [r for r in rows if r["node"] == "segmentation"]
    assert seg[-1]["macs"] < seg[0]["macs"] and seg[0]["mac_share"] == 1.0   # the knob cuts the work
    assert "compute 0.1" in capsys.readouterr().out


def test_demo_summary_keeps_only_frames_under_a_budget_and_averages_per_node():
    records = [
        {"budget_w": {"total": math.inf}, "energy_j": {"/ddi": 9.0}, "power_w": {"/ddi": 9.0},
         "energy_source": {"/ddi": "measured"}},
        {"budget_w": {"total": 2.0, "/ddi": 1.0}, "energy_j": {"/ddi": 0.1}, "power_w": {"/ddi": 0.8},
         "energy_source": {"/ddi": "measured"}},
        {"budget_w": {"total": 2.0, "/ddi": 1.0}, "energy_j": {"/ddi": 0.3}, "power_w": {"/ddi": 1.2},
         "energy_source": {"/ddi": "measured"}},
    ]
    s = summarise_demo(records, device="cuda:0", calibrated_w=3.3)
    assert s["frames_under_budget"] == 2 and s["total_budget_w"] == 2.0 and s["total_power_w"] == pytest.approx(1.0)
    assert s["nodes"]["/ddi"] == {"j_per_item": pytest.approx(0.2), "power_w": pytest.approx(1.0),
                                  "budget_w": 1.0, "source": "measured"}

"""bench budget-loop: the scoring and the pipeline it writes (the run itself is a benchmark, not a test)."""
import math

import yaml

from effdl_ros.bench.budget_loop import MODEL_NODES, _Cumulative, figures, write_pipeline


def period(t, total, used, alloc, calibrated=1.0, fraction=0.6):
    per = used / len(MODEL_NODES)
    return {"t": t, "total_w": total, "graph_w": used, "calibrated_w": calibrated, "fraction": fraction,
            "allocation": {n: alloc for n in MODEL_NODES}, "power": {n: per for n in MODEL_NODES}}


def test_figures_score_each_phase_from_its_third_period():
    ps = [period(0, 10.0, 3.0, 1.0, calibrated=None, fraction=None)]            # calibration: not scored
    ps += [period(1 + k, 0.6, 0.3 if k < 2 else 0.6 * (1.05 if k % 2 else 0.97), 0.2) for k in range(12)]
    ps += [period(13 + k, 0.3, 0.6 if k < 2 else 0.3, 0.05 * (1.2 if k == 6 else 1.0), fraction=0.3)
           for k in range(12)]
    f = figures(ps, min_shares={"/tracker": 0.2})
    first, second = f["phases"]
    assert first["fraction"] == 0.6 and first["scored_periods"] == 10 and first["within_band"] == 1.0
    assert first["goal_met"] and first["starved"] == []
    assert math.isclose(second["max_alloc_change"]["/ddi"], 0.2, rel_tol=1e-9)   # the one jump
    assert second["starved"] == ["/tracker"]            # 0.05 W < 20 % of 0.3 W
    assert not second["goal_met"]


def test_cumulative_interpolates_and_pipeline_sets_the_schedule(tmp_path):
    c = _Cumulative()
    for t, v in ((0.0, 0.0), (1.0, 2.0), (3.0, 4.0)):
        c.add(t, v)
    assert c.at(0.5) == 1.0 and c.at(2.0) == 3.0 and math.isnan(c.at(4.0))
    src = tmp_path / "p.yaml"
    src.write_text(yaml.safe_dump({"nodes": [], "parameters": {"/energy_monitor": {"ros__parameters": {"kp": 0.0}}}}))
    out = write_pipeline(tmp_path / "out.yaml", source_config=str(src), fps=5, calibrate_s=20, step_after_s=35,
                         estimate="cpu_time")
    params = yaml.safe_load(out.read_text())["parameters"]
    mon = params["/energy_monitor"]["ros__parameters"]
    assert mon["calibrate_s"] == 20 and mon["schedule_after_s"] == [35.0] and mon["schedule_fractions"] == [0.3]
    assert mon["kp"] == 0.0 and params["/source"]["ros__parameters"]["rate_hz"] == 5.0
    assert params["/tracker"]["ros__parameters"]["energy_estimate"] == "cpu_time"

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

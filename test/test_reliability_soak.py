"""The 60-second soak the issue asks for (slow): the self-contained graph at twice its input rate keeps
its memory flat after warm-up, its queues bounded, and every node's p99 callback time within the frame
period."""
import math

import pytest
import torch


@pytest.mark.slow
def test_sixty_second_soak_at_twice_the_input_rate(tmp_path):
    from effdl_ros.graph.soak import run_soak, write_soak_pipeline

    torch.set_num_threads(1)
    config = write_soak_pipeline(tmp_path / "soak.yaml", tmp_path)
    report = run_soak(config, rate_factor=2.0, duration_s=60.0, warmup_s=15.0)
    assert report.frames_published >= 0.8 * 60 * report.driven_hz
    assert report.rss_growth_pct < 5.0, report.rss_samples
    assert report.queues_bounded
    period_ms = 1000.0 / report.driven_hz
    for node in report.nodes:
        assert not node.drops, (node.name, node.drops)
        if node.image_callbacks:
            assert node.p99_ms < period_ms, (node.name, node.p99_ms)
            assert node.frames_lost_in_queue <= 0.05 * report.frames_published
        assert math.isnan(node.p99_ms) or node.p99_ms < node.deadline_ms


def test_soak_refuses_a_graph_without_a_source(tmp_path):
    from effdl_ros.errors import ConfigError
    from effdl_ros.graph.soak import run_soak

    config = tmp_path / "p.yaml"
    config.write_text("nodes:\n  - {executable: synthetic_load, name: load}\n")
    with pytest.raises(ConfigError, match="p.yaml has no source"):
        run_soak(config, duration_s=1.0)

"""Faults: kill -9 during checkpoint writes leaves a loadable model; a supervised node killed with
SIGKILL is restarted with back-off while the others keep running, the monitor marks it stale and gives
its share to the live nodes, and the restarted node reports again and follows the latched budget."""
import math
import shutil

import pytest

from effdl_ros.graph.savekill import run_save_kill


def test_kill_during_checkpoint_writes_always_leaves_a_loadable_model(tmp_path):
    result = run_save_kill(10, tmp_path, method="atomic", max_delay_s=0.1, seed=3)
    assert result.trials == 10
    assert result.mid_write >= 3, "too few kills landed mid-write for the trial to mean anything"
    assert result.loadable == 10, result.errors


def test_the_same_kills_break_a_plain_torch_save(tmp_path):
    """The baseline shows the trial has teeth: writing onto the path itself loses the model."""
    result = run_save_kill(10, tmp_path, method="naive", max_delay_s=0.1, seed=3)
    assert result.unloadable >= 1


@pytest.mark.skipif(shutil.which("true") is None, reason="needs a POSIX host")
def test_supervisor_restarts_a_killed_node_and_the_graph_recovers(tmp_path):
    pytest.importorskip("cyclonedds", reason="the dds backend (cyclonedds) is absent")
    from effdl_ros.graph.respawn import kill_rounds, write_respawn_pipeline

    config = write_respawn_pipeline(tmp_path / "p.yaml")
    result = kill_rounds(config, only=["load_a"], timeout_s=25.0, log=lambda m: None)
    (kill,) = result.kills
    assert kill.node == "/load_a"
    assert kill.restarted and kill.restart_s >= 2.0  # respawn_delay 2.5 s: it waited, it did not spin
    assert kill.others_alive
    assert not math.isnan(kill.stale_s) and kill.redistributed, kill.diagnostics
    assert kill.rejoin_s < 20.0 and kill.budget_s < 20.0

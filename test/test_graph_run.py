"""`effdl-ros run` as a process manager sees it: every stop signal stops the whole graph (dds, a
process per node), a killed supervisor takes its nodes with it, and a broken pipeline file is
refused with one sentence and exit code 2 before any node starts, on every backend."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from effdl_ros.cli.main import main

LIGHT = ("nodes:\n  - {executable: energy_monitor, name: energy_monitor, respawn: true}\n"
         "  - {executable: synthetic_load, name: load, respawn: true}\n")


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            return "\nState:\tZ" in handle.read()  # a zombie has stopped running
    except FileNotFoundError:
        return True


def _start_graph(tmp_path):
    config = tmp_path / "light.yaml"
    config.write_text(LIGHT)
    proc = subprocess.Popen([sys.executable, "-m", "effdl_ros.cli.main", "run", str(config), "--backend", "dds"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pids, lines, deadline = [], [], time.monotonic() + 90
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(r"started \S+ \(pid (\d+)\)", line)
        if match:
            pids.append(int(match.group(1)))
        if line.startswith("graph ready"):
            return proc, pids, lines
    proc.kill()
    pytest.fail("the graph never said 'graph ready':\n" + "".join(lines))


def _wait_gone(pids, seconds=15.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not all(_gone(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if not _gone(p)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to see the node processes")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_stop_signal_stops_every_node_and_exits_0(tmp_path, signum):
    proc, pids, _ = _start_graph(tmp_path)
    assert len(pids) == 2
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert f"{signal.Signals(signum).name} received" in out
    assert _wait_gone(pids, 1.0) == []  # the supervisor waited for them before it exited
    assert "Traceback" not in out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to see the node processes")
def test_nodes_die_with_a_killed_supervisor(tmp_path):
    proc, pids, _ = _start_graph(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert _wait_gone(pids) == []


def _pipeline(tmp_path, text):
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    return str(path)


BROKEN = [
    ("wrong type", "nodes:\n  - {executable: energy_monitor}\nparameters:\n"
     "  /energy_monitor: {ros__parameters: {total_power_w: ten}}\n",
     ["/energy_monitor", "total_power_w", "DOUBLE", "STRING"]),
    ("unknown parameter", "nodes:\n  - {executable: tracker}\nparameters:\n"
     "  /tracker: {ros__parameters: {modle_path: models/roam_r18l1.pt}}\n",
     ["/tracker", "unknown parameter 'modle_path'", "model_path"]),
    ("unknown executable", "nodes:\n  - {executable: energy_monitor}\n  - {executable: segmentaton}\n",
     ["/segmentaton", "unknown executable 'segmentaton'", "known: ", "ddi, energy_monitor"]),
    ("bad remapping", "nodes:\n  - {executable: tracker, remappings: {image: 'my camera'}}\n",
     ["/tracker", "remapping image:=my camera", "invalid topic name"]),
    ("missing model file", "nodes:\n  - {executable: ddi}\nparameters:\n"
     "  /ddi: {ros__parameters: {model_path: models/nope.pt}}\n",
     ["/ddi", "model_path", "models/nope.pt", "not a file"]),
    ("out of range", "nodes:\n  - {executable: segmentation}\nparameters:\n"
     "  /segmentation: {ros__parameters: {default_compute_fraction: 1.5}}\n",
     ["/segmentation", "default_compute_fraction", "[0, 1]"]),
    ("parameters of no node", "nodes:\n  - {executable: segmentation}\nparameters:\n"
     "  /segmentaton: {ros__parameters: {threads: 1}}\n",
     ["/segmentaton", "not a node of this file"]),
]


@pytest.mark.parametrize("command", [["run", "--backend", "dds"], ["run", "--backend", "inproc"],
                                     ["replay", "samples/vtest", "--config"], ["demo", "--no-live", "--config"]])
@pytest.mark.parametrize("case,text,words", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_pipeline_refused_before_any_node_starts(tmp_path, capsys, command, case, text, words):
    path = _pipeline(tmp_path, text)
    argv = command[:1] + [path] + command[1:] if command[0] == "run" else command + [path]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert "started" not in out and "ready" not in out
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert path in lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_bad_remap_on_the_command_line(tmp_path, capsys):
    path = _pipeline(tmp_path, "nodes:\n  - {executable: energy_monitor}\n")
    assert main(["run", path, "--backend", "inproc", "--remap", "image=/camera"]) == 2
    assert "from:=to" in capsys.readouterr().err


def test_node_failing_at_start_up_stops_the_graph_without_respawn(tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    path = _pipeline(tmp_path, "nodes:\n  - {executable: energy_monitor, respawn: true}\n"
                               "  - {executable: ddi, respawn: true}\nparameters:\n"
                               f"  /ddi: {{ros__parameters: {{model_path: {corrupt}}}}}\n")
    proc = subprocess.run([sys.executable, "-m", "effdl_ros.cli.main", "run", path, "--backend", "dds"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "restarting" not in proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("effdl-ros: error: node /ddi cannot start:") and "corrupt.pt" in last

"""Proof of life on real ROS 2: `ros2 launch effdl_ros pipeline.launch.py` with a small graph.

The test types what a user would: `ros2 launch effdl_ros pipeline.launch.py config:=...` (the
launch file from the colcon install space, nodes on the rclpy backend), then, while it runs, the
ros2 command line must see the nodes, the topics and data on them (`topic echo`, `topic hz`), and
`ros2 param set` must reach the node's set-callback: a good value is taken, a bad one refused with
the node's reason. On Ctrl-C (SIGINT) the launch and every node must exit cleanly.

Why not launch_pytest / launch_testing: Jazzy's plugins (launch 3.4) do not load under pytest >= 8.4
(`FixtureFunctionDefinition`, and the removed `path` hook argument), so this drives the `ros2 launch`
command itself, which works with any pytest. Run with `-p no:launch_testing -p no:launch_ros`
(README). Runs only where real rclpy imports and effdl_ros is built with colcon (source the
workspace's install/setup.bash); skips with a reason elsewhere.
"""
import importlib.util
import os
import random
import re
import shutil
import signal
import subprocess
import time

import pytest

pytestmark = pytest.mark.ros2

if importlib.util.find_spec("rclpy") is None or shutil.which("ros2") is None:
    pytest.skip("real ROS 2 (rclpy, the ros2 command) is not here: source a ROS 2 setup.bash",
                allow_module_level=True)


def _share():
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        return get_package_share_directory("effdl_ros")
    except PackageNotFoundError:
        return None


if _share() is None:
    pytest.skip("effdl_ros is not in the ament index: build it with colcon and source its "
                "install/setup.bash", allow_module_level=True)

DOMAIN = str(random.Random(os.getpid() ^ time.time_ns()).randint(100, 200))
NODES = ("/source", "/synthetic_load", "/energy_monitor", "/observer")
TIMEOUT = 60.0


def _config(folder) -> str:
    """A four-node graph: frames -> image; a load that reports energy; the monitor; an observer."""
    import cv2
    import numpy as np

    frames = folder / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        cv2.imwrite(str(frames / f"{i:04d}.png"), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    path = folder / "pipeline.yaml"
    path.write_text(f"""
nodes:
  - {{executable: source, name: source}}
  - {{executable: synthetic_load, name: synthetic_load}}
  - {{executable: energy_monitor, name: energy_monitor}}
  - {{executable: observer, name: observer}}
parameters:
  /source:
    ros__parameters: {{input: "{frames}", rate_hz: 10.0, loop: true}}
  /synthetic_load:
    ros__parameters: {{item_rate_hz: 20.0}}
  /energy_monitor:
    ros__parameters: {{total_power_w: 5.0, rate_hz: 2.0}}
""")
    return str(path)


def _ros2(*args, timeout=30.0):
    env = dict(os.environ, ROS_DOMAIN_ID=DOMAIN)
    result = subprocess.run(["ros2", *args], env=env, capture_output=True, text=True, timeout=timeout)
    return result.stdout + result.stderr


def _until(fn, ok, timeout=TIMEOUT):
    end = time.monotonic() + timeout
    while True:
        out = fn()
        if ok(out) or time.monotonic() > end:
            return out
        time.sleep(0.5)


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """`ros2 launch effdl_ros pipeline.launch.py config:=<four-node graph>`, stopped with SIGINT."""
    folder = tmp_path_factory.mktemp("launch")
    config = _config(folder)
    log = open(folder / "launch.log", "w+")
    env = dict(os.environ, ROS_DOMAIN_ID=DOMAIN)
    proc = subprocess.Popen(["ros2", "launch", "effdl_ros", "pipeline.launch.py", f"config:={config}"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    launched.log = log
    yield proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    log.close()
    _ros2("daemon", "stop")  # `ros2 param`/`topic hz` start one for this domain: leave none behind


def _log():
    launched.log.flush()
    launched.log.seek(0)
    return launched.log.read()


def test_graph_seen_by_ros2_cli(launched):
    out = _until(lambda: _ros2("node", "list", "--no-daemon", "--spin-time", "2"),
                 lambda o: all(n in o.split() for n in NODES))
    assert all(n in out.split() for n in NODES), out + _log()[-3000:]
    topics = _ros2("topic", "list", "--no-daemon", "--spin-time", "2", "-t")
    for topic, typ in (("/image", "sensor_msgs/msg/Image"),
                       ("/energy/budget", "effdl_ros/msg/ResourceBudgetArray"),
                       ("/energy/reports", "effdl_ros/msg/EnergyReport"),
                       ("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray")):
        assert re.search(rf"^{re.escape(topic)} \[{re.escape(typ)}\]$", topics, re.M), topics
    # a late joiner gets the latched budget; our own message type decodes in the ros2 CLI
    budget = _ros2("topic", "echo", "--once", "--no-daemon", "--qos-durability", "transient_local",
                   "--qos-reliability", "reliable", "/energy/budget",
                   "effdl_ros/msg/ResourceBudgetArray", timeout=TIMEOUT)
    assert "budgets:" in budget and "target_node: /synthetic_load" in budget, budget


def test_image_rate_measured_by_ros2_topic_hz(launched):
    env = dict(os.environ, ROS_DOMAIN_ID=DOMAIN)
    proc = subprocess.Popen(["ros2", "topic", "hz", "/image"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(8.0)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    rates = [float(r) for r in re.findall(r"average rate: ([0-9.]+)", out)]
    assert rates, out
    assert 5.0 < rates[-1] < 15.0, out  # source publishes at rate_hz 10


def test_ros2_param_set_reaches_the_set_callback(launched):
    refused = _ros2("param", "set", "/source", "rate_hz", "2000.0")
    assert "Setting parameter failed" in refused and "rate_hz must be in (0, 1000]" in refused, refused
    taken = _ros2("param", "set", "/source", "rate_hz", "12.5")
    assert "Set parameter successful" in taken, taken
    assert "12.5" in _ros2("param", "get", "/source", "rate_hz")
    wrong_type = _ros2("param", "set", "/source", "rate_hz", "fast")
    assert "Setting parameter failed" in wrong_type, wrong_type


def test_ctrl_c_stops_launch_and_nodes_cleanly(launched):
    """Last: Ctrl-C ends every node with exit code 0. A terminal sends SIGINT to its whole
    foreground process group, so each node gets it twice: directly and forwarded by launch."""
    assert launched.poll() is None, _log()[-3000:]
    os.killpg(launched.pid, signal.SIGINT)
    assert launched.wait(30) == 0, _log()[-3000:]
    log = _log()
    for node in ("source", "synthetic_load", "energy_monitor", "observer"):
        assert re.search(rf"\[INFO\] \[{node}-\d+\]: process has finished cleanly", log), log[-3000:]
    assert "Traceback" not in log, log[-3000:]


def _node_modules():
    import pkgutil

    import effdl_ros.nodes

    return sorted(m.name for m in pkgutil.iter_modules(effdl_ros.nodes.__path__)
                  if not m.name.startswith("_"))


def test_every_node_module_has_an_installed_executable():
    from ament_index_python.packages import get_package_prefix

    installed = sorted(os.listdir(os.path.join(get_package_prefix("effdl_ros"), "lib", "effdl_ros")))
    assert installed == _node_modules()


@pytest.mark.parametrize("node", _node_modules())
def test_ros2_run_starts_each_node(node, tmp_path):
    """`ros2 run effdl_ros <node>` with its defaults: in `ros2 node list`, then Ctrl-C exits 0."""
    env = dict(os.environ, ROS_DOMAIN_ID=DOMAIN)
    env.pop("EFFDL_ROS_BACKEND", None)  # as a ROS user has it: rclpy imports, so rclpy is chosen
    with open(tmp_path / "run.log", "w+") as log:
        proc = subprocess.Popen(["ros2", "run", "effdl_ros", node], env=env, stdout=log, cwd=tmp_path,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            seen = _until(lambda: _ros2("node", "list", "--no-daemon", "--spin-time", "1"),
                          lambda o: f"/{node}" in o.split() or proc.poll() is not None)
            running = proc.poll() is None
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
            try:
                rc = proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                rc = proc.wait(5)
        log.seek(0)
        text = log.read()
    assert running and f"/{node}" in seen.split(), text[-3000:]
    assert rc == 0 and "Traceback" not in text, text[-3000:]

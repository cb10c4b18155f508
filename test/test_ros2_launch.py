"""Proof of life on real ROS 2: `ros2 launch effdl_ros pipeline.launch.py` with a small graph.

launch_pytest starts launch/pipeline.launch.py from the colcon install space (nodes on the rclpy
backend); while it runs, the ros2 command line, as a user would type it, must see the nodes, the
topics and data on them, and `ros2 param set` must reach the node's set-callback: a good value is
taken, a bad one refused with the node's reason.

Runs only where real rclpy and launch_pytest import and effdl_ros is built with colcon (source the
workspace's install/setup.bash); skips with a reason elsewhere.
"""
import importlib.util
import os
import random
import re
import subprocess
import time

import pytest

pytestmark = pytest.mark.ros2

if importlib.util.find_spec("rclpy") is None or importlib.util.find_spec("launch_pytest") is None:
    pytest.skip("real ROS 2 (rclpy, launch_pytest) does not import here: source a ROS 2 setup.bash",
                allow_module_level=True)


def _share():
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        return get_package_share_directory("effdl_ros")
    except PackageNotFoundError:
        return None


SHARE = _share()
if SHARE is None:
    pytest.skip("effdl_ros is not in the ament index: build it with colcon and source its "
                "install/setup.bash", allow_module_level=True)

import launch_pytest  # noqa: E402
from launch import LaunchDescription  # noqa: E402
from launch.actions import IncludeLaunchDescription, SetEnvironmentVariable  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

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


@launch_pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    config = _config(tmp_path_factory.mktemp("launch"))
    return LaunchDescription([
        SetEnvironmentVariable("ROS_DOMAIN_ID", DOMAIN),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(os.path.join(SHARE, "launch", "pipeline.launch.py")),
            launch_arguments={"config": config}.items()),
        launch_pytest.actions.ReadyToTest(),
    ])


@pytest.mark.launch(fixture=pipeline)
def test_graph_seen_by_ros2_cli(launch_context):
    out = _until(lambda: _ros2("node", "list", "--no-daemon", "--spin-time", "2"),
                 lambda o: all(n in o.split() for n in NODES))
    assert all(n in out.split() for n in NODES), out
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
    assert "budgets:" in budget and "node: synthetic_load" in budget, budget


@pytest.mark.launch(fixture=pipeline)
def test_image_rate_measured_by_ros2_topic_hz(launch_context):
    env = dict(os.environ, ROS_DOMAIN_ID=DOMAIN)
    proc = subprocess.Popen(["ros2", "topic", "hz", "--qos-reliability", "best_effort", "/image"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(8.0)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    rates = [float(r) for r in re.findall(r"average rate: ([0-9.]+)", out)]
    assert rates, out
    assert 5.0 < rates[-1] < 15.0, out  # source publishes at rate_hz 10


@pytest.mark.launch(fixture=pipeline)
def test_ros2_param_set_reaches_the_set_callback(launch_context):
    refused = _ros2("param", "set", "/source", "rate_hz", "2000.0")
    assert "Setting parameter failed" in refused and "rate_hz must be in (0, 1000]" in refused, refused
    taken = _ros2("param", "set", "/source", "rate_hz", "12.5")
    assert "Set parameter successful" in taken, taken
    assert "12.5" in _ros2("param", "get", "/source", "rate_hz")
    wrong_type = _ros2("param", "set", "/source", "rate_hz", "fast")
    assert "Setting parameter failed" in wrong_type, wrong_type

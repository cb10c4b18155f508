"""Namespaces and domains (issue 22): ROS 2 name resolution as pure functions, two robots' graphs
in one process kept apart by `--namespace`, and on the wire (dds) a subscriber on /robot1/tracks
that hears robot 1 only, while another ROS_DOMAIN_ID hears nothing."""
import json
import os
import random
import subprocess
import sys
import time

import pytest

from effdl_ros.errors import ConfigError
from effdl_ros.graph.names import (
    apply_namespace,
    fully_qualified,
    graph_topics,
    normalize_namespace,
    push_namespace,
    resolve_topic,
)


# ------------------------------------------------------------------------------------ pure rules
@pytest.mark.parametrize("name, namespace, expected", [
    ("tracks", "/", "/tracks"),
    ("tracks", "/robot1", "/robot1/tracks"),
    ("energy/budget", "robot1/", "/robot1/energy/budget"),
    ("/diagnostics", "/robot1", "/diagnostics"),
    ("~/state", "/robot1", "/robot1/tracker/state"),
    ("~", "/", "/tracker"),
])
def test_expansion(name, namespace, expected):
    assert resolve_topic(name, node="tracker", namespace=namespace) == expected


def test_remappings_match_after_expansion_and_the_first_wins():
    remaps = [("image", "/camera/image_raw"), ("tracks", "out"), ("image", "/other")]
    assert resolve_topic("image", node="tracker", namespace="/robot1", remappings=remaps) == "/camera/image_raw"
    assert resolve_topic("tracks", node="tracker", namespace="/robot1", remappings=remaps) == "/robot1/out"
    # an absolute `from` matches the expanded name, not the text
    assert resolve_topic("tracks", node="t", namespace="/robot1",
                         remappings=[("/robot1/tracks", "/fleet/tracks")]) == "/fleet/tracks"
    assert resolve_topic("tracks", node="t", namespace="/robot2",
                         remappings=[("/robot1/tracks", "/fleet/tracks")]) == "/robot2/tracks"


def test_pushing_a_namespace():
    assert push_namespace("/robot1", "") == "/robot1"
    assert push_namespace("robot1", "arm") == "/robot1/arm"
    assert push_namespace("/robot1", "/shared") == "/shared"  # absolute: kept, as launch_ros does
    assert push_namespace("", "arm") == "/arm"
    assert fully_qualified("ddi", "/robot1") == "/robot1/ddi"
    assert fully_qualified("/ddi", "/robot1") == "/ddi"
    for bad in ("/robot 1", "/1robot", "a//b-c"):
        with pytest.raises(ConfigError, match="namespace"):
            normalize_namespace(bad)


PIPELINE = """nodes:
  - {executable: energy_monitor, name: energy_monitor}
  - {executable: synthetic_load, name: ddi}
  - {executable: synthetic_load, name: tracker, namespace: arm, remappings: {energy/budget: /%s/energy/budget,
                                                                           energy/reports: /%s/energy/reports}}
  - {executable: synthetic_load, name: map, namespace: /shared}
parameters:
  /energy_monitor: {ros__parameters: {nodes: [ddi, arm/tracker], priorities: [1.0, 1.0],
                                      meter: none, total_power_w: %s}}
  /ddi: {ros__parameters: {item_rate_hz: 20.0, cost_per_item_j: 0.2}}
  /arm/tracker: {ros__parameters: {item_rate_hz: 20.0, cost_per_item_j: 0.2}}
  /shared/map: {ros__parameters: {item_rate_hz: 5.0}}
"""


def _pipeline(tmp_path, namespace, total=6.0, drop_shared=False):
    from effdl_ros.graph.validate import checked_pipeline

    robot = namespace.strip("/") or "robot"
    text = PIPELINE % (robot, robot, total)  # the arm's node reaches its robot's monitor by remapping
    if drop_shared:
        text = "\n".join(line for line in text.splitlines() if "name: map" not in line and "/shared/map" not in line) + "\n"
    path = tmp_path / f"graph_{namespace.strip('/') or 'root'}.yaml"
    path.write_text(text)
    return checked_pipeline(path, namespace=namespace)


def test_apply_namespace_keeps_parameters_and_absolute_namespaces(tmp_path):
    pipeline = _pipeline(tmp_path, "/robot1")
    names = [s.fully_qualified_name for s in pipeline.nodes]
    assert names == ["/robot1/energy_monitor", "/robot1/ddi", "/robot1/arm/tracker", "/shared/map"]
    assert pipeline.nodes[1].parameters["cost_per_item_j"] == 0.2
    assert pipeline.nodes[3].parameters["item_rate_hz"] == 5.0
    topics = graph_topics(pipeline, ["energy/budget", "status", "/diagnostics"])
    assert topics["/robot1/arm/tracker"]["status"] == "/robot1/arm/status"  # its own namespace
    assert topics["/robot1/arm/tracker"]["energy/budget"] == "/robot1/energy/budget"  # remapped
    assert topics["/shared/map"]["energy/budget"] == "/shared/energy/budget"
    assert topics["/robot1/ddi"]["/diagnostics"] == "/diagnostics"
    apply_namespace(pipeline, "/")  # nothing pushed: nothing changes
    assert pipeline.nodes[0].fully_qualified_name == "/robot1/energy_monitor"


def test_bad_namespace_on_the_command_line_is_one_sentence(tmp_path, capsys):
    from effdl_ros.cli.main import main

    path = tmp_path / "g.yaml"
    path.write_text("nodes:\n  - {executable: synthetic_load, name: load}\n")
    assert main(["run", str(path), "--backend", "inproc", "--namespace", "robot one"]) == 2
    assert "namespace 'robot one' is not a valid ROS 2 namespace" in capsys.readouterr().err


# ----------------------------------------------------------------- two robots, one process (inproc)
def test_two_namespaced_graphs_stay_apart(tmp_path):
    """Both robots from one file: each monitor budgets only its own robot's nodes, and a listener on
    /robot1/energy/budget hears robot 1's monitor only. (A node in a sub-namespace, arm/tracker,
    would publish on /robotN/arm/energy/reports: ROS 2 rules; the file remaps it to its robot's.)"""
    from effdl_ros.graph.launch import create_nodes
    from effdl_ros.runtime import Node
    from effdl_ros.runtime.messages import ResourceBudgetArray
    from effdl_ros.runtime.qos import latched
    from effdl_ros.runtime.testing import InprocGraph

    with InprocGraph(simulated=True) as g:
        robot1 = create_nodes(_pipeline(tmp_path, "/robot1", total=6.0, drop_shared=True), g)
        robot2 = create_nodes(_pipeline(tmp_path, "/robot2", total=2.0, drop_shared=True), g)
        heard = []
        listener = g.add(lambda **kw: Node("listener", **kw))
        listener.create_subscription(ResourceBudgetArray, "/robot1/energy/budget", heard.append, latched(1))
        g.step(4.0)
        assert robot1["energy_monitor"].get_fully_qualified_name() == "/robot1/energy_monitor"
        for robot, monitor, total in (("/robot1", robot1["energy_monitor"], 6.0),
                                      ("/robot2", robot2["energy_monitor"], 2.0)):
            targets = {b.node for b in monitor.last.budgets}
            assert targets == {f"{robot}/ddi", f"{robot}/arm/tracker"}, targets
            assert monitor.last.total_power_w == pytest.approx(total)
        for loads, total in ((robot1, 6.0), (robot2, 2.0)):
            for name in ("ddi", "tracker"):
                budget = loads[name].budget.current()
                assert budget.source == "monitor" and not budget.stale
                assert 0 < budget.power_w <= total
        assert heard and all(m.total_power_w == pytest.approx(6.0) for m in heard)
        assert {b.target_node for m in heard for b in m.budgets} == {"/robot1/ddi", "/robot1/arm/tracker"}


# --------------------------------------------------------------------- on the wire (dds backend)
DOMAIN = random.Random(os.getpid() ^ time.time_ns()).randint(100, 199)
PEER = r"""
import sys, time
from effdl_ros.runtime import Node
from effdl_ros.runtime.local.context import Context
from effdl_ros.runtime.local.executor import SingleThreadedExecutor
from effdl_ros.runtime.messages import Detection2DArray, Header
from effdl_ros.graph.launch import NodeSpec

domain = int(sys.argv[1])
contexts, pubs = [], []
for ns, dom in (("/robot1", domain), ("/robot2", domain), ("/robot1", domain + 1)):
    ctx = Context(backend="dds")
    spec = NodeSpec(executable="tracker", name="tracker", namespace=ns)
    ctx.init(spec.ros_args(), domain_id=dom)   # the arguments the supervisor gives a node process
    node = Node("tracker", context=ctx)
    pubs.append((f"{ns}@{dom}", node.create_publisher(Detection2DArray, "tracks", 10)))
    contexts.append(ctx)
print("ready", flush=True)
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    for label, pub in pubs:
        pub.publish(Detection2DArray(header=Header(frame_id=label)))
    time.sleep(0.05)
for ctx in contexts:
    ctx.shutdown()
"""


def test_dds_subscriber_on_robot1_tracks_hears_robot1_only():
    pytest.importorskip("cyclonedds")
    from effdl_ros.runtime import Node
    from effdl_ros.runtime.messages import Detection2DArray
    from effdl_ros.runtime.testing import InprocGraph

    env = dict(os.environ, EFFDL_ROS_BACKEND="dds", ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    env.pop("ROS_DOMAIN_ID", None)
    peer = subprocess.Popen([sys.executable, "-c", PEER, str(DOMAIN), "30"], env=env,
                            stdout=subprocess.PIPE, text=True)
    try:
        os.environ["ROS_DOMAIN_ID"] = str(DOMAIN)
        with InprocGraph(backend="dds") as g:
            heard = []
            listener = g.add(lambda **kw: Node("listener", **kw))
            listener.create_subscription(Detection2DArray, "/robot1/tracks",
                                         lambda m: heard.append(m.header.frame_id), 10)
            assert peer.stdout.readline().strip() == "ready"
            g.spin_until(lambda: len(heard) >= 20, timeout_sec=30)
            g.spin_for(0.5)
        assert len(heard) >= 20
        assert set(heard) == {f"/robot1@{DOMAIN}"}, json.dumps(sorted(set(heard)))
    finally:
        os.environ.pop("ROS_DOMAIN_ID", None)
        peer.kill()
        peer.wait()

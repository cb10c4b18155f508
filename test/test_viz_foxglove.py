"""--foxglove: the live Foxglove WebSocket server, its channels, its bounds, and the layout file.

The tests that start a server need foxglove-sdk and websockets (both in the [test] extra); without
them they skip with the reason.
"""
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from effdl_ros.viz import foxglove_bridge as fb, layout

ROOT = Path(__file__).resolve().parents[1]


def _have(module):
    try:
        __import__(module)
        return True
    except ImportError:
        return False


needs_sdk = pytest.mark.skipif(not _have("foxglove"), reason="foxglove-sdk is not installed "
                               "(pip install 'effdl_ros[foxglove]')")
needs_client = pytest.mark.skipif(not _have("websockets"), reason="websockets is not installed "
                                  "(pip install 'effdl_ros[test]')")


def test_options_and_off_by_default_without_importing_the_sdk():
    """Without --foxglove nothing starts and the SDK is not imported, not even by building the CLI."""
    code = (
        "import sys, argparse\n"
        "from effdl_ros.cli.main import build_parser\n"
        "from effdl_ros.viz.foxglove_bridge import start_from_args\n"
        "p = build_parser()\n"
        "for argv in (['demo'], ['replay', 'x'], ['run']):\n"
        "    a = p.parse_args(argv)\n"
        "    assert a.foxglove is None and a.foxglove_host == '127.0.0.1', argv\n"
        "    assert start_from_args(a) is None\n"
        "assert p.parse_args(['demo', '--foxglove']).foxglove == 8765\n"
        "assert p.parse_args(['replay', 'x', '--foxglove', '0']).foxglove == 0\n"
        "assert 'foxglove' not in sys.modules, 'the SDK was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env=_env(), timeout=120)
    assert done.returncode == 0, done.stderr


def _env():
    import os

    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                PYTHONUNBUFFERED="1")


def test_bad_port_is_a_config_error():
    from effdl_ros.errors import ConfigError

    with pytest.raises(ConfigError, match="0..65535"):
        fb.FoxgloveBridge(port=70000)


def test_missing_sdk_is_one_sentence_naming_the_extra(monkeypatch, capsys):
    from effdl_ros.cli.main import main

    monkeypatch.setitem(sys.modules, "foxglove", None)  # as if foxglove-sdk were not installed
    assert main(["replay", str(ROOT / "samples" / "vtest"), "--foxglove"]) == 2
    assert "--foxglove needs the foxglove-sdk package: pip install 'effdl_ros[foxglove]'" in capsys.readouterr().err


def test_layout_file_is_current_and_reads_served_channels():
    assert (ROOT / "foxglove" / "effdl_ros_layout.json").read_text() == layout.to_text()
    served = set(fb.ROS_TOPICS) | {fb.ANNOTATIONS_TOPIC, fb.POWER_TOPIC}
    assert layout.topics(layout.build()) <= served
    assert (layout.ANNOTATIONS_TOPIC, layout.POWER_TOPIC) == (fb.ANNOTATIONS_TOPIC, fb.POWER_TOPIC)


def test_queue_keeps_newest_and_counts_drops():
    """A bridge behind the graph keeps the newest message per channel and counts what it pushed out."""
    import collections

    bridge = object.__new__(fb.FoxgloveBridge)  # no server: only the queueing
    bridge.dropped = collections.Counter()
    bridge._pending = {"/image": collections.deque(maxlen=1)}
    callback = bridge._make_callback("/image")
    for i in range(5):
        callback(i)
    assert bridge.dropped["/image"] == 4
    assert [m for m, _ in bridge._pending["/image"]] == [4]


# ------------------------------------------------------------------------------------ live server

@pytest.fixture
def graph_and_bridge():
    from effdl_ros.runtime.testing import InprocGraph

    lines = []
    with InprocGraph() as graph:
        bridge = fb.FoxgloveBridge(port=0, log=lines.append)
        try:
            yield graph, bridge, lines
        finally:
            bridge.close()


def _wait(predicate, timeout=10.0):
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


@needs_sdk
@needs_client
def test_bridge_serves_the_graph_topics(graph_and_bridge):
    from effdl_ros.runtime import Node
    from effdl_ros.runtime.local.typesupport import deserialize
    from effdl_ros.runtime.messages import (
        Classification,
        Detection2D,
        Detection2DArray,
        EnergyReport,
        Header,
        Image,
        ObjectHypothesis,
        ResourceBudget,
        ResourceBudgetArray,
    )
    from effdl_ros.runtime.qos import latched, qos_profile_sensor_data
    from effdl_ros.viz.client import FoxgloveClient

    graph, bridge, lines = graph_and_bridge
    node = graph.add(lambda **kw: Node("camera", **kw))
    pubs = {"image": node.create_publisher(Image, "image", qos_profile_sensor_data),
            "budget": node.create_publisher(ResourceBudgetArray, "energy/budget", latched(1)),
            "tracks": node.create_publisher(Detection2DArray, "tracks", 10),
            "ddi": node.create_publisher(Classification, "ddi/classification", 10),
            "reports": node.create_publisher(EnergyReport, "energy/reports", 10)}
    # the budget is published before anyone watches: a viewer still gets it (latched)
    pubs["budget"].publish(ResourceBudgetArray(total_power_w=10.0, budgets=[
        ResourceBudget(target_node="/tracker", power_w=4.0)]))
    bridge.attach(graph.context)
    assert bridge.url.startswith("ws://localhost:") and any(bridge.url in line for line in lines)

    with FoxgloveClient(f"ws://127.0.0.1:{bridge.port}") as client:
        assert client.subprotocol in ("foxglove.sdk.v1", "foxglove.websocket.v1")
        topics = client.wait_for_topics(list(fb.ROS_TOPICS) + [fb.ANNOTATIONS_TOPIC, fb.POWER_TOPIC])
        assert topics["/image"]["encoding"] == "cdr" and topics["/image"]["schemaEncoding"] == "ros2msg"
        assert topics["/image"]["schemaName"] == "sensor_msgs/msg/Image"
        assert "MSG: std_msgs/Header" in topics["/energy/budget"]["schema"]
        assert topics[fb.ANNOTATIONS_TOPIC]["schemaName"] == "foxglove.ImageAnnotations"
        assert topics[fb.POWER_TOPIC]["encoding"] == "json"
        client.subscribe(["/energy/budget"])
        budget = deserialize(client.next(topic="/energy/budget").payload, "effdl_ros/msg/ResourceBudgetArray")
        assert budget.total_power_w == 10.0 and budget.budgets[0].target_node == "/tracker"

        client.subscribe(["/image", fb.ANNOTATIONS_TOPIC, fb.POWER_TOPIC])
        _wait(lambda: all(bridge.channels[t].has_sinks() for t in ("/image", fb.POWER_TOPIC)))
        rgb = np.arange(24 * 32 * 3, dtype=np.uint8).reshape(24, 32, 3)
        header = Header(frame_id="camera")
        header.stamp.sec, header.stamp.nanosec = 1_700_000_000, 5
        from effdl_ros.runtime.images import cv2_to_imgmsg

        pubs["image"].publish(cv2_to_imgmsg(rgb, "rgb8", header=header))
        det = Detection2D(header=header, id="1")
        det.bbox.center.position.x, det.bbox.center.position.y, det.bbox.size_x, det.bbox.size_y = 10, 12, 8, 6
        pubs["tracks"].publish(Detection2DArray(header=header, detections=[det]))
        pubs["ddi"].publish(Classification(header=header, results=[ObjectHypothesis(class_id="road", score=0.9)]))
        pubs["reports"].publish(EnergyReport(node="/tracker", power_w=1.5, energy_j=2.0, source=1))
        image = client.next(topic="/image")
        assert image.log_time_ns == 1_700_000_000 * 10**9 + 5
        decoded = deserialize(image.payload, "sensor_msgs/msg/Image")
        assert (decoded.width, decoded.height, decoded.encoding) == (32, 24, "rgb8")
        assert np.array_equal(np.asarray(decoded.data).reshape(24, 32, 3), rgb)
        assert client.next(topic=fb.ANNOTATIONS_TOPIC).payload  # protobuf foxglove.ImageAnnotations
        power = {}
        while power.get("tracker", {}).get("power_w") is None:
            power = json.loads(client.next(topic=fb.POWER_TOPIC).payload)
        assert power["tracker"] == {"budget_w": 4.0, "power_w": 1.5, "energy_j": 2.0, "source": "modelled"}
        assert power["total"]["budget_w"] == 10.0
    bridge.close()
    assert lines[-1].startswith("foxglove: forwarded ")


@needs_sdk
def test_wide_host_is_warned_about():
    lines = []
    bridge = fb.FoxgloveBridge(host="0.0.0.0", port=0, log=lines.append)
    bridge.close()
    assert any("reachable from other machines" in line for line in lines)
    assert fb.is_loopback("127.0.0.1") and fb.is_loopback("localhost") and not fb.is_loopback("0.0.0.0")


@needs_sdk
def test_run_inproc_with_foxglove(tmp_path, capsys):
    from effdl_ros.cli.main import main

    config = tmp_path / "pipeline.yaml"
    config.write_text("nodes:\n  - {executable: energy_monitor, name: energy_monitor}\n"
                      "parameters:\n  /energy_monitor: {ros__parameters: {rate_hz: 20.0, nodes: ['/x']}}\n")
    assert main(["run", str(config), "--backend", "inproc", "--duration", "0.5", "--foxglove", "0"]) == 0
    out = capsys.readouterr().out
    assert "foxglove: live view on ws://localhost:" in out and "foxglove: forwarded" in out


@needs_sdk
def test_replay_with_foxglove(tmp_path, capsys):
    from effdl_ros.cli.main import main

    config = tmp_path / "pipeline.yaml"
    config.write_text("nodes:\n  - {executable: source, name: source}\n"
                      "  - {executable: energy_monitor, name: energy_monitor}\n"
                      "parameters:\n  /energy_monitor: {ros__parameters: {nodes: ['/x']}}\n")
    assert main(["replay", str(ROOT / "samples" / "vtest"), "--config", str(config), "--max-frames", "3",
                 "--as-fast-as-possible", "--foxglove", "0"]) == 0
    out = capsys.readouterr().out
    assert "foxglove: live view on ws://localhost:" in out and "foxglove: forwarded" in out
    assert "replayed 3 frames" in out


# ------------------------------------------------------------------------------------ the demo, live

DEMO_CONFIG = """\
nodes:
  - {executable: energy_monitor, name: energy_monitor}
  - {executable: ddi, name: ddi}
parameters:
  /energy_monitor:
    ros__parameters: {total_power_w: 10.0, mode: fixed, rate_hz: 4.0, nodes: ["/ddi"], priorities: [1.0]}
  /ddi:
    ros__parameters: {model_path: models/ddi_camvid_patches.pt}
"""


def _stuck_viewer(port, channel_ids, rcvbuf=4096):
    """A viewer that subscribes and then never reads: a bare socket with a tiny receive buffer (a
    websockets client would keep reading in its background thread)."""
    import base64
    import os

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                  "Sec-WebSocket-Protocol: foxglove.sdk.v1, foxglove.websocket.v1\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert b" 101 " in head.split(b"\r\n")[0], head
    payload = json.dumps({"op": "subscribe", "subscriptions": [
        {"id": i + 1, "channelId": int(c)} for i, c in enumerate(channel_ids)]}).encode()
    assert len(payload) < 126
    mask = os.urandom(4)
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    return sock


@pytest.mark.slow  # about 12 s: the demo's start-up (models) in a subprocess
@needs_sdk
@needs_client
def test_demo_live_with_a_reader_and_a_viewer_that_never_reads(tmp_path):
    """`demo --foxglove`: a client decodes an image and a budget; another never reads and the demo still
    plays every frame at its pace."""
    from effdl_ros.runtime.local.typesupport import deserialize
    from effdl_ros.viz.client import FoxgloveClient

    config = tmp_path / "pipeline.yaml"
    config.write_text(DEMO_CONFIG)
    frames, fps = 40, 20.0  # the whole bundled clip
    proc = subprocess.Popen([sys.executable, "-m", "effdl_ros.cli.main", "demo", "--config", str(config),
                             "--no-live", "--frames", str(frames), "--loops", "1", "--fps", str(fps),
                             "--report", str(tmp_path / "report"), "--foxglove", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path, env=_env())
    output = []
    try:
        port = None
        for line in proc.stdout:
            output.append(line)
            match = re.search(r"ws://localhost:(\d+)", line)
            if match:
                port = int(match.group(1))
                break
        assert port, "".join(output)
        with FoxgloveClient(f"ws://127.0.0.1:{port}") as client:
            topics = client.wait_for_topics(["/image", "/energy/budget"], timeout=60)
            stuck = _stuck_viewer(port, [topics["/image"]["id"]])
            client.subscribe(["/image", "/energy/budget"])
            image = deserialize(client.next(topic="/image", timeout=30).payload, "sensor_msgs/msg/Image")
            budget = deserialize(client.next(topic="/energy/budget", timeout=30).payload,
                                 "effdl_ros/msg/ResourceBudgetArray")
        assert (image.width, image.height, image.encoding) == (320, 240, "rgb8")
        assert budget.total_power_w > 0 and [b.target_node for b in budget.budgets] == ["/ddi"]
        rest, _ = proc.communicate(timeout=120)
        output.append(rest)
        stuck.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = "".join(output)
    assert proc.returncode == 0, text
    match = re.search(r"processed (\d+) frames in ([\d.]+) s", text)
    assert match and int(match.group(1)) == frames, text
    # the clip's pace (2 s) and slack for a loaded machine; a stalled graph would never finish
    assert float(match.group(2)) < frames / fps + 20, text
    assert "foxglove: forwarded" in text


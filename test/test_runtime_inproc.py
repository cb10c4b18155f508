import math

import numpy as np
import pytest

from effdl_ros.runtime import Node, Parameter, SetParametersResult
from effdl_ros.runtime.messages import EnergyReport, Image, String
from effdl_ros.runtime.qos import latched, qos_profile_sensor_data
from effdl_ros.runtime.safety import drop_counts, guarded
from effdl_ros.runtime.testing import InprocGraph


class Echo(Node):
    def __init__(self, **kwargs):
        super().__init__("echo", **kwargs)
        self.declare_parameter("gain", 1.5)
        self.received = []
        self.add_on_set_parameters_callback(self._check)
        self.create_subscription(String, "in", guarded(self, self._on_msg), 10)
        self.pub = self.create_publisher(String, "out", 10)

    def _check(self, params):
        for p in params:
            if p.name == "gain" and not (0.0 < p.value < 10.0):
                return SetParametersResult(successful=False, reason="gain must be in (0, 10)")
        return SetParametersResult(successful=True)

    def _on_msg(self, msg):
        if msg.data == "boom":
            raise ValueError("cannot handle boom")
        self.received.append(msg.data)
        self.pub.publish(String(data=msg.data.upper()))


def test_pub_sub_in_order_and_reply():
    with InprocGraph() as g:
        node = g.add(Echo)
        client = g.add(lambda **kw: Node("client", **kw))
        got = []
        client.create_subscription(String, "out", lambda m: got.append(m.data), 10)
        pub = client.create_publisher(String, "in", 10)
        for i in range(5):
            pub.publish(String(data=f"m{i}"))
        g.spin_until_idle()
        assert node.received == [f"m{i}" for i in range(5)]
        assert got == [f"M{i}" for i in range(5)]


def test_bad_message_dropped_node_keeps_running():
    with InprocGraph() as g:
        node = g.add(Echo)
        pub = g.add(lambda **kw: Node("client", **kw)).create_publisher(String, "in", 10)
        pub.publish(String(data="boom"))
        pub.publish(String(data="ok"))
        g.spin_until_idle()
        assert node.received == ["ok"]
        assert sum(drop_counts(node).values()) == 1


def test_keep_last_depth_honoured():
    with InprocGraph() as g:
        sink = g.add(lambda **kw: Node("sink", **kw))
        got = []
        sink.create_subscription(String, "t", lambda m: got.append(m.data), 3)
        pub = sink.create_publisher(String, "t", 3)
        for i in range(10):
            pub.publish(String(data=str(i)))
        g.spin_until_idle()
        assert got == ["7", "8", "9"]


def test_transient_local_late_joiner_and_qos_compat():
    with InprocGraph() as g:
        a = g.add(lambda **kw: Node("a", **kw))
        pub = a.create_publisher(String, "latched", latched(1))
        pub.publish(String(data="old"))
        pub.publish(String(data="current"))
        b = g.add(lambda **kw: Node("b", **kw))
        got = []
        b.create_subscription(String, "latched", lambda m: got.append(m.data), latched(1))
        # a reliable reader does not match a best-effort writer (DDS request/offer)
        be = a.create_publisher(String, "images", qos_profile_sensor_data)
        rel = []
        b.create_subscription(String, "images", lambda m: rel.append(m), 10)
        be.publish(String(data="x"))
        g.spin_until_idle()
        assert got == ["current"]
        assert rel == []


def test_parameters_overrides_and_rejection(tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("/echo:\n  ros__parameters:\n    gain: 2.5\n")
    with InprocGraph(args=["--ros-args", "--params-file", str(params)]) as g:
        node = g.add(Echo)
        assert node.get_parameter("gain").value == 2.5
        result = node.set_parameters([Parameter("gain", value=50.0)])[0]
        assert not result.successful and "gain must be" in result.reason
        assert node.get_parameter("gain").value == 2.5
        wrong_type = node.set_parameters([Parameter("gain", value="high")])[0]
        assert not wrong_type.successful and "type" in wrong_type.reason
        assert node.set_parameters([Parameter("gain", value=3.0)])[0].successful
        assert node.get_parameter("gain").value == 3.0


def test_overrides_argument_beats_file_and_remap(tmp_path):
    with InprocGraph(args=["--ros-args", "-r", "in:=/remapped", "-r", "__ns:=/robot"]) as g:
        node = g.add(Echo, parameter_overrides=[Parameter("gain", value=4.0)])
        assert node.get_parameter("gain").value == 4.0
        assert node.get_fully_qualified_name() == "/robot/echo"
        assert node.resolve_topic_name("in") == "/remapped"
        assert node.resolve_topic_name("out") == "/robot/out"
        assert node.resolve_topic_name("~/status") == "/robot/echo/status"


def test_timer_on_simulated_time():
    with InprocGraph(simulated=True) as g:
        node = g.add(lambda **kw: Node("ticker", **kw))
        ticks = []
        node.create_timer(0.1, lambda: ticks.append(node.get_clock().now().nanoseconds))
        g.step(1.0)
        assert len(ticks) == 10
        assert all(b - a == 100_000_000 for a, b in zip(ticks, ticks[1:]))


def test_wrong_message_type_is_refused():
    with InprocGraph() as g:
        node = g.add(lambda **kw: Node("n", **kw))
        pub = node.create_publisher(String, "t", 10)
        with pytest.raises(TypeError):
            pub.publish(EnergyReport())


def test_messages_keyword_defaults():
    report = EnergyReport(node="/ddi", energy_j=1.0)
    assert report.items_processed == 0 and report.header.frame_id == ""
    assert EnergyReport.SOURCE_MODELLED == 1
    img = Image()
    assert isinstance(img.data, np.ndarray) and img.data.size == 0
    assert not math.isnan(report.power_w)


def test_run_node_takes_a_shutdown_during_start_as_a_clean_stop(capsys):
    """Ctrl-C while a node loads its model shuts the context; the constructor's next call then fails.
    That is a clean stop (exit 0, one line), but a constructor that fails on its own still raises."""
    from effdl_ros.runtime import ok, run_node, shutdown

    class Interrupted:
        def __init__(self):
            shutdown()  # what rclpy's SIGINT handler does to the default context
            raise RuntimeError("Failed to create subscription: rcl node's context is invalid")

    class Broken:
        def __init__(self):
            raise RuntimeError("model file is corrupt")

    assert run_node(Interrupted, ["prog"]) == 0
    assert "Interrupted: shut down while starting" in capsys.readouterr().err
    with pytest.raises(RuntimeError, match="corrupt"):
        run_node(Broken, ["prog"])
    assert not ok()

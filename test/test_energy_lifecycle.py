"""Model nodes as lifecycle nodes (nodekit.lifecycle) and the energy monitor switching them over
their change_state services (issue 18)."""
from types import SimpleNamespace

import pytest

from effdl_ros.errors import ConfigError
from effdl_ros.nodekit.lifecycle import AUTOSTART, ManagedModelNode
from effdl_ros.nodekit.parameters import Param, declare
from effdl_ros.runtime import Node, Parameter
from effdl_ros.runtime.lifecycle import LifecycleNode
from effdl_ros.runtime.messages import Header, String
from effdl_ros.runtime.testing import InprocGraph


class Worker(ManagedModelNode):
    def __init__(self, **kw):
        super().__init__("worker", **kw)
        declare(self, (Param("bad", False, "fail configure"), AUTOSTART))
        self.seen = []
        self.model = None
        self.autostart()

    def configure_work(self):
        if self.get_parameter("bad").value:
            raise ConfigError("worker: the model file is bad")
        self.model = "loaded"
        self.out = self.create_publisher(String, "out", 10)

    def activate_work(self):
        self.create_subscription(Header, "in", lambda m: self.seen.append(m.frame_id), 10)

    def free_work(self):
        self.model = None


def _names(node):
    return sorted(e.topic for e in list(node.publishers) + list(node.subscriptions))


def test_managed_node_makes_and_destroys_per_state():
    with InprocGraph() as g:
        w = g.add(Worker)
        src = g.add(lambda **kw: Node("src", **kw)).create_publisher(Header, "/in", 10)
        assert w.current_state.label == "active" and w.model == "loaded"
        assert "/in" in _names(w) and "/out" in _names(w)
        src.publish(Header(frame_id="a"))
        g.spin_until_idle()
        assert w.seen == ["a"]
        w.trigger_deactivate()               # no inputs, no work; outputs stay
        src.publish(Header(frame_id="b"))
        g.spin_until_idle()
        assert w.seen == ["a"] and "/in" not in _names(w) and "/out" in _names(w)
        w.trigger_cleanup()                  # outputs and model gone
        assert w.model is None and "/out" not in _names(w)
        w.trigger_configure()
        w.trigger_activate()
        src.publish(Header(frame_id="c"))
        g.spin_until_idle()
        assert w.seen == ["a", "c"]


def test_autostart_false_waits_and_a_configure_error_is_a_startup_error():
    with InprocGraph() as g:
        w = g.add(Worker, parameter_overrides=[Parameter("autostart", value=False)])
        assert w.current_state.label == "unconfigured" and w.model is None
        with pytest.raises(ConfigError, match="model file is bad"):
            g.add(Worker, parameter_overrides=[Parameter("bad", value=True)])


def test_the_monitor_switches_a_lifecycle_node_over_its_service():
    from effdl_ros.nodes.energy_monitor import EnergyMonitorNode

    with InprocGraph() as g:
        managed = g.add(lambda **kw: LifecycleNode("trk", **kw))
        managed.trigger_configure()
        managed.trigger_activate()
        g.add(lambda **kw: Node("plain", **kw))
        mon = g.add(EnergyMonitorNode, parameter_overrides=[Parameter("total_power_w", value=1.0)])

        def alloc(active):
            return SimpleNamespace(budgets=[SimpleNamespace(node="/trk", active=active),
                                            SimpleNamespace(node="/plain", active=active)])

        mon._switch_lifecycles(alloc(False))
        assert g.spin_until(lambda: managed.current_state.label == "inactive", 5)
        assert g.spin_until(lambda: mon.lifecycle.outcome["/trk"] == "deactivated over /trk/change_state", 5)
        assert mon.lifecycle.outcome["/plain"] == "deactivate: no lifecycle service, budget signal only"
        mon._switch_lifecycles(alloc(False))  # no change: no second request
        mon._switch_lifecycles(alloc(True))
        assert g.spin_until(lambda: managed.current_state.label == "active", 5)


def test_ddi_node_is_managed(tmp_path):
    """The real ddi node: deactivate stops classifying, cleanup drops the engine, activate resumes."""
    from test_ddi_node import Peer, _save

    from effdl_ros.nodes.ddi import DdiNode

    _save(tmp_path / "a.pt", 0)
    with InprocGraph(simulated=True) as g:
        node = g.add(DdiNode, parameter_overrides=[Parameter("model_path", value=str(tmp_path / "a.pt"))])
        peer = g.add(Peer)
        g.step(0.05)
        peer.send_image()
        g.step(0.05)
        assert len(peer.got) == 1 and node.current_state.label == "active"
        node.trigger_deactivate()
        peer.send_image(1)
        g.step(0.05)
        assert len(peer.got) == 1
        node.trigger_cleanup()
        assert node.engine is None
        node.trigger_configure()
        node.trigger_activate()
        g.step(0.05)
        peer.send_image(2)
        g.step(0.05)
        assert len(peer.got) == 2

"""Lifecycle nodes on the local runtime (inproc): every state's allowed transitions, errors on the
others, FAILURE / ERROR outcomes, and publishers that only publish while active (issue 18)."""
import pytest

from effdl_ros.runtime.local.lifecycle import (
    ACTIVE,
    FINALIZED,
    INACTIVE,
    UNCONFIGURED,
    LifecycleError,
    LifecycleNode,
    TransitionCallbackReturn,
)
from effdl_ros.runtime.messages import Header
from effdl_ros.runtime.testing import InprocGraph

OK, FAIL, ERR = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE, TransitionCallbackReturn.ERROR


class Managed(LifecycleNode):
    """Loads its 'model' on configure, makes its publisher on configure, frees the model on cleanup."""

    def __init__(self, **kw):
        super().__init__("managed", **kw)
        self.model = None
        self.calls = []
        self.outcome = {}
        self.pub = None

    def _result(self, name):
        self.calls.append(name)
        out = self.outcome.get(name, OK)
        if out == "raise":
            raise RuntimeError(f"{name} broke")
        return out

    def on_configure(self, state):
        self.model = "weights"
        if self.pub is None:
            self.pub = self.create_lifecycle_publisher(Header, "out", 10)
        return self._result("configure")

    def on_activate(self, state):
        r = self._result("activate")
        return super().on_activate(state) if r == OK else r

    def on_deactivate(self, state):
        self._result("deactivate")
        return super().on_deactivate(state)

    def on_cleanup(self, state):
        self.model = None
        return self._result("cleanup")

    def on_shutdown(self, state):
        return self._result("shutdown")

    def on_error(self, state):
        return self._result("error")


def test_each_state_allows_exactly_its_transitions():
    with InprocGraph() as g:
        n = g.add(Managed)
        assert n.current_state == UNCONFIGURED and n.available_transitions() == ["configure", "shutdown"]
        for bad in (n.trigger_activate, n.trigger_deactivate, n.trigger_cleanup):
            with pytest.raises(LifecycleError, match="unconfigured"):
                bad()
        assert n.trigger_configure() == OK and n.current_state == INACTIVE and n.model == "weights"
        assert n.available_transitions() == ["cleanup", "activate", "shutdown"]
        with pytest.raises(LifecycleError, match="inactive"):
            n.trigger_configure()
        assert n.trigger_activate() == OK and n.current_state == ACTIVE
        assert n.available_transitions() == ["deactivate", "shutdown"]
        for bad in (n.trigger_configure, n.trigger_activate, n.trigger_cleanup):
            with pytest.raises(LifecycleError, match="active"):
                bad()
        assert n.trigger_deactivate() == OK and n.current_state == INACTIVE
        assert n.trigger_cleanup() == OK and n.current_state == UNCONFIGURED and n.model is None
        assert n.trigger_shutdown() == OK and n.current_state == FINALIZED
        assert n.available_transitions() == []
        with pytest.raises(LifecycleError, match="finalized"):
            n.trigger_configure()


def test_failure_stays_and_error_recovers_or_finalizes():
    with InprocGraph() as g:
        n = g.add(Managed)
        n.outcome["configure"] = FAIL
        assert n.trigger_configure() == FAIL and n.current_state == UNCONFIGURED
        n.outcome["configure"] = OK
        n.trigger_configure()
        n.outcome["activate"] = "raise"                      # an exception is the ERROR outcome
        assert n.trigger_activate() == ERR and n.current_state == UNCONFIGURED   # on_error succeeded
        assert n.calls[-1] == "error"
        n.trigger_configure()
        n.outcome.update(activate=ERR, error=FAIL)
        assert n.trigger_activate() == ERR and n.current_state == FINALIZED


def test_lifecycle_publisher_publishes_only_while_active():
    with InprocGraph() as g:
        n = g.add(Managed)
        got = []
        listener = g.add(lambda **kw: LifecycleNode("listener", **kw))
        listener.create_subscription(Header, "out", got.append, 10)
        transitions = []
        n.add_transition_listener(lambda old, new, t: transitions.append((old.label, new.label, t)))
        n.trigger_configure()
        n.pub.publish(Header(frame_id="inactive"))
        n.trigger_activate()
        n.pub.publish(Header(frame_id="active"))
        n.trigger_deactivate()
        n.pub.publish(Header(frame_id="deactivated"))
        g.spin_until_idle()
        assert [m.frame_id for m in got] == ["active"] and n.pub.dropped == 2
        assert transitions == [("unconfigured", "inactive", "configure"), ("inactive", "active", "activate"),
                               ("active", "inactive", "deactivate")]

"""ROS 2 services on the local backends: parameter and lifecycle services, the rmw_cyclonedds wire
format, and a parameter set and a lifecycle transition between two dds processes.

The peer process is this file run as a script (`python test_runtime_services.py DOMAIN`): a lifecycle
node that reports its transitions and parameter changes on stdout until its stdin closes.
"""
import json
import os
import random
import subprocess
import sys
import time

import numpy as np
import pytest

DOMAIN = random.Random(os.getpid() ^ time.time_ns()).randint(100, 200)
TIMEOUT = 20.0


# ---------------------------------------------------------------------------------------- peer side
def _peer_main(domain: str) -> None:
    os.environ["ROS_DOMAIN_ID"] = domain
    import threading

    from effdl_ros import runtime as rt
    from effdl_ros.runtime.lifecycle import LifecycleNode
    from effdl_ros.runtime.local.parameters import SetParametersResult

    rt.init()
    node = LifecycleNode("managed")
    node.declare_parameter("gain", 1.0)

    def vet(params):
        for p in params:
            if p.name == "gain" and p.value < 0:
                return SetParametersResult(successful=False, reason="gain must be >= 0")
            print(json.dumps({"set": p.name, "value": p.value}), flush=True)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(vet)
    node.add_transition_listener(
        lambda old, new, t: print(json.dumps({"transition": t, "state": new.label}), flush=True))
    executor = rt.SingleThreadedExecutor()
    executor.add_node(node)
    threading.Thread(target=lambda: (sys.stdin.read(), executor.shutdown()), daemon=True).start()
    print(json.dumps({"up": True}), flush=True)
    executor.spin()
    rt.shutdown()


if __name__ == "__main__" and len(sys.argv) == 2:
    _peer_main(sys.argv[1])
    sys.exit(0)


# ---------------------------------------------------------------------------------------- test side
from effdl_ros.runtime import dds_services  # noqa: E402
from effdl_ros.runtime.ros_interfaces import message, service_type  # noqa: E402


def _param(name, kind, **value):
    return message("rcl_interfaces/msg/Parameter")(
        name=name, value=message("rcl_interfaces/msg/ParameterValue")(type=kind, **value))


def test_wire_names_and_request_header_round_trip():
    assert dds_services.request_topic("/tracker/get_state") == "rq/tracker/get_stateRequest"
    assert dds_services.reply_topic("/tracker/get_state") == "rr/tracker/get_stateReply"
    from effdl_ros.runtime.backends.dds_types import dds_type_name
    from effdl_ros.runtime.local.typesupport import serialize

    assert dds_type_name("lifecycle_msgs/srv/GetState_Request") == "lifecycle_msgs::srv::dds_::GetState_Request_"
    body = serialize(service_type("rcl_interfaces/srv/GetParameters").Request(names=["a", "bc"]))
    packed = dds_services.pack(2**64 - 5, 42, memoryview(body))
    assert len(packed) == len(body) + 16 and packed[:4] == body[:4]
    guid, seq, back = dds_services.unpack(bytes(packed))
    assert (guid, seq, back) == (2**64 - 5, 42, body)
    with pytest.raises(ValueError):
        dds_services.unpack(b"\x00\x01\x00\x00short")


@pytest.mark.skipif(not __import__("importlib").util.find_spec("cyclonedds"), reason="cyclonedds absent")
def test_wrapped_idl_type_serialises_to_the_header_and_the_body():
    """Cyclone's own IdlStruct for the wrapped type gives the bytes we write (the header inside CDR)."""
    from effdl_ros.runtime.local.typesupport import serialize

    srv = service_type("rcl_interfaces/srv/GetParameters")
    body = serialize(srv.Request(names=["gain", "x"]))
    cls = dds_services.wrapped_idl_type("rcl_interfaces/srv/GetParameters_Request")
    ours = bytes(dds_services.pack(7, 3, memoryview(body)))
    theirs = cls(_request_guid=7, _request_seq=3, names=["gain", "x"]).serialize(use_version_2=False)
    assert ours[4:].rstrip(b"\0") == theirs[4:].rstrip(b"\0")


@pytest.fixture
def inproc_pair():
    from effdl_ros.runtime.testing import InprocGraph

    graph = InprocGraph()
    yield graph
    graph.close()


def _call(graph, client, request):
    future = client.call_async(request)
    graph.executor.spin_until_future_complete(future, timeout_sec=5)
    assert future.done(), "no reply"
    return future.result()


def test_parameter_services_inproc(inproc_pair):
    from effdl_ros.runtime import Node

    server = inproc_pair.add(lambda **kw: Node("server", **kw))
    server.declare_parameter("gain", 1.0)
    server.declare_parameter("group.depth", 3)
    client = inproc_pair.add(lambda **kw: Node("client", **kw))

    def make(name, srvtype):
        c = client.create_client(service_type(srvtype), f"/server/{name}")
        assert c.wait_for_service(timeout_sec=2)
        return c

    setter = make("set_parameters", "rcl_interfaces/srv/SetParameters")
    reply = _call(inproc_pair, setter, setter.srv_type.Request(parameters=[
        _param("gain", 3, double_value=2.5), _param("gain", 4, string_value="x"),
        _param("nope", 2, integer_value=1)]))
    assert [r.successful for r in reply.results] == [True, False, False]
    assert "DOUBLE" in reply.results[1].reason and "not declared" in reply.results[2].reason
    assert server.get_parameter("gain").value == 2.5

    getter = make("get_parameters", "rcl_interfaces/srv/GetParameters")
    values = _call(inproc_pair, getter, getter.srv_type.Request(names=["gain", "group.depth"])).values
    assert (values[0].type, values[0].double_value, values[1].integer_value) == (3, 2.5, 3)
    assert _call(inproc_pair, getter, getter.srv_type.Request(names=["absent"])).values == []

    lister = make("list_parameters", "rcl_interfaces/srv/ListParameters")
    result = _call(inproc_pair, lister, lister.srv_type.Request()).result
    assert set(result.names) == {"gain", "group.depth", "use_sim_time"} and result.prefixes == ["group"]
    only = _call(inproc_pair, lister, lister.srv_type.Request(prefixes=["group"])).result
    assert only.names == ["group.depth"]

    types = make("get_parameter_types", "rcl_interfaces/srv/GetParameterTypes")
    assert np.asarray(_call(inproc_pair, types, types.srv_type.Request(names=["gain", "use_sim_time"])).types).tolist() == [3, 1]
    describe = make("describe_parameters", "rcl_interfaces/srv/DescribeParameters")
    desc = _call(inproc_pair, describe, describe.srv_type.Request(names=["group.depth"])).descriptors
    assert (desc[0].name, desc[0].type) == ("group.depth", 2)


def test_lifecycle_services_inproc(inproc_pair):
    from effdl_ros.runtime import Node
    from effdl_ros.runtime.lifecycle import LifecycleNode

    managed = inproc_pair.add(lambda **kw: LifecycleNode("managed", **kw))
    client = inproc_pair.add(lambda **kw: Node("manager", **kw))
    events = []
    client.create_subscription(message("lifecycle_msgs/msg/TransitionEvent"), "/managed/transition_event",
                               events.append, 10)
    change = client.create_client(service_type("lifecycle_msgs/srv/ChangeState"), "/managed/change_state")
    get = client.create_client(service_type("lifecycle_msgs/srv/GetState"), "/managed/get_state")
    available = client.create_client(service_type("lifecycle_msgs/srv/GetAvailableTransitions"),
                                     "/managed/get_available_transitions")
    Transition = message("lifecycle_msgs/msg/Transition")

    listed = _call(inproc_pair, available, available.srv_type.Request()).available_transitions
    assert [(d.transition.id, d.transition.label, d.goal_state.label) for d in listed] == [
        (1, "configure", "configuring"), (5, "shutdown", "shuttingdown")]
    # by label, then by id; a transition the state does not allow answers success=False
    assert _call(inproc_pair, change, change.srv_type.Request(transition=Transition(label="configure"))).success
    assert not _call(inproc_pair, change, change.srv_type.Request(transition=Transition(id=4))).success
    assert _call(inproc_pair, change, change.srv_type.Request(transition=Transition(id=3))).success
    state = _call(inproc_pair, get, get.srv_type.Request()).current_state
    assert (state.id, state.label) == (3, "active") and managed.current_state.label == "active"
    inproc_pair.spin_until_idle()
    assert [(e.transition.label, e.goal_state.label) for e in events] == [
        ("configure", "inactive"), ("activate", "active")]


# ------------------------------------------------------------------------------ two dds processes
class _Peer:
    def __init__(self) -> None:
        env = dict(os.environ, EFFDL_ROS_BACKEND="dds", PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self.proc = subprocess.Popen([sys.executable, __file__, str(DOMAIN)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)

    def line(self, timeout=TIMEOUT):
        import select

        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError("the peer process said nothing")
        text = self.proc.stdout.readline()
        if not text:
            raise RuntimeError(f"the peer process ended (rc {self.proc.wait()})")
        return json.loads(text)

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def test_parameter_set_and_lifecycle_transition_between_two_dds_processes(monkeypatch):
    pytest.importorskip("cyclonedds")
    monkeypatch.setenv("ROS_DOMAIN_ID", str(DOMAIN))
    from effdl_ros.runtime.testing import InprocGraph

    peer = _Peer()
    graph = InprocGraph(backend="dds")
    try:
        assert peer.line(60) == {"up": True}
        from effdl_ros.runtime import Node

        node = graph.add(lambda **kw: Node("caller", **kw))
        setter = node.create_client(service_type("rcl_interfaces/srv/SetParameters"), "/managed/set_parameters")
        getter = node.create_client(service_type("rcl_interfaces/srv/GetParameters"), "/managed/get_parameters")
        change = node.create_client(service_type("lifecycle_msgs/srv/ChangeState"), "/managed/change_state")
        state = node.create_client(service_type("lifecycle_msgs/srv/GetState"), "/managed/get_state")
        for c in (setter, getter, change, state):
            assert c.wait_for_service(timeout_sec=TIMEOUT), c.srv_name

        reply = setter.call(setter.srv_type.Request(parameters=[_param("gain", 3, double_value=0.25)]), TIMEOUT)
        assert reply is not None and reply.results[0].successful
        assert peer.line() == {"set": "gain", "value": 0.25}
        refused = setter.call(setter.srv_type.Request(parameters=[_param("gain", 3, double_value=-1.0)]), TIMEOUT)
        assert not refused.results[0].successful and refused.results[0].reason == "gain must be >= 0"
        values = getter.call(getter.srv_type.Request(names=["gain"]), TIMEOUT).values
        assert values[0].double_value == 0.25

        Transition = message("lifecycle_msgs/msg/Transition")
        assert change.call(change.srv_type.Request(transition=Transition(id=1, label="configure")), TIMEOUT).success
        assert peer.line() == {"transition": "configure", "state": "inactive"}
        assert state.call(state.srv_type.Request(), TIMEOUT).current_state.label == "inactive"
        assert not change.call(change.srv_type.Request(transition=Transition(label="deactivate")), TIMEOUT).success
    finally:
        graph.close()
        peer.close()

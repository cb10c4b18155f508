"""The dds backend between OS processes: delivery, QoS, late joiners, ROS 2 interop, bad payloads.

Every test run uses its own random ROS domain (100..200) so concurrent runs do not hear each other.
The peer processes are this file run as a script (`python test_runtime_dds.py MODE ...`); they talk
to the test over stdin/stdout. Tests wait for matched endpoints, not for fixed sleeps.
"""
import json
import logging
import os
import random
import subprocess
import sys
import time

import pytest

pytest.importorskip("cyclonedds")

DOMAIN = random.Random(os.getpid() ^ time.time_ns()).randint(100, 200)
TIMEOUT = 20.0


# ---------------------------------------------------------------------------------------- peer side
def _wait(predicate, timeout=TIMEOUT):
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def _say(**kw):
    print(json.dumps(kw), flush=True)


def _qos(kind):
    from effdl_ros.runtime.qos import QoSProfile, latched, qos_profile_sensor_data

    if kind == "sensor":
        return qos_profile_sensor_data
    if kind == "latched":
        return latched(1)
    return QoSProfile(depth=int(kind.split(":")[1]))  # reliable:N


def _peer_publish(topic, qos_kind, count, wait_match):
    """Our node publishes `count` Strings "0".."count-1" and waits for the acks, then idles."""
    from effdl_ros.runtime import Node
    from effdl_ros.runtime.messages import String
    from effdl_ros.runtime.testing import InprocGraph

    with InprocGraph(backend="dds") as g:
        node = g.add(lambda **kw: Node("peer_pub", **kw))
        pub = node.create_publisher(String, topic, _qos(qos_kind))
        if wait_match == "match":
            _wait(lambda: pub._handle.matched_subscriptions() >= 1)
        for i in range(count):
            pub.publish(String(data=str(i)))
        pub._handle._writer.wait_for_acks(int(TIMEOUT * 1e9))
        _say(done=True)
        sys.stdin.read()  # keep the writer (and its transient-local history) until the test ends


def _peer_stream(period):
    """Publish on `be` (best effort) and `rel` (reliable) every `period` s until stdin closes."""
    import threading

    from effdl_ros.runtime import Node
    from effdl_ros.runtime.messages import String
    from effdl_ros.runtime.qos import qos_profile_sensor_data
    from effdl_ros.runtime.testing import InprocGraph

    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    with InprocGraph(backend="dds") as g:
        node = g.add(lambda **kw: Node("peer_stream", **kw))
        be = node.create_publisher(String, "qos/be", qos_profile_sensor_data)
        rel = node.create_publisher(String, "qos/rel", 10)
        _say(ready=True)
        i = 0
        while not stop.wait(float(period)):
            be.publish(String(data=f"be{i}"))
            rel.publish(String(data=f"rel{i}"))
            i += 1


def _plain_string_type():
    """std_msgs/String as someone who knows only ROS 2's DDS conventions would declare it."""
    from dataclasses import dataclass

    from cyclonedds.idl import IdlStruct

    @dataclass
    class String_(IdlStruct, typename="std_msgs::msg::dds_::String_"):
        data: str

    return String_


def _peer_plain_reader(topic, count):
    """Plain Cyclone DDS: no effdl_ros import, only the topic prefix and the type name."""
    from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsPublication
    from cyclonedds.domain import DomainParticipant
    from cyclonedds.qos import Policy, Qos
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic
    from cyclonedds.util import duration

    dp = DomainParticipant(DOMAIN)
    reader = DataReader(dp, Topic(dp, "rt" + topic, _plain_string_type()),
                        qos=Qos(Policy.Reliability.Reliable(duration(seconds=1)),
                                Policy.History.KeepLast(count)))
    _say(ready=True)
    got = []
    end = time.monotonic() + TIMEOUT
    while len(got) < count and time.monotonic() < end:
        got += [s.data for s in reader.take(N=count)]
        time.sleep(0.01)
    pubs = [p for p in BuiltinDataReader(dp, BuiltinTopicDcpsPublication).take(N=100)
            if p.topic_name == "rt" + topic]
    _say(data=got, type_names=[p.type_name for p in pubs],
         userdata=[(p.qos[Policy.Userdata].data.decode() if Policy.Userdata in p.qos else "")
                   for p in pubs])


def _peer_raw_writer(topic):
    """Plain Cyclone DDS writer that puts hand-made CDR on a ROS 2 topic."""
    from cyclonedds._clayer import ddspy_write
    from cyclonedds.domain import DomainParticipant
    from cyclonedds.pub import DataWriter
    from cyclonedds.qos import Policy, Qos
    from cyclonedds.topic import Topic
    from cyclonedds.util import duration

    dp = DomainParticipant(DOMAIN)
    string_type = _plain_string_type()
    writer = DataWriter(dp, Topic(dp, "rt" + topic, string_type),
                        qos=Qos(Policy.Reliability.Reliable(duration(seconds=1)),
                                Policy.History.KeepLast(10)))
    _wait(lambda: len(writer.get_matched_subscriptions()) >= 1)
    header = b"\x00\x01\x00\x00"
    garbage = header + b"\x03\x00\x00\x00\xff\xfe\x00\x00"  # well-formed CDR, not UTF-8
    truncated = header + b"\x40\x00\x00\x00abc"  # says 64 bytes, has 3
    rc_garbage = ddspy_write(writer._ref, garbage)
    rc_truncated = ddspy_write(writer._ref, truncated)
    writer.write(string_type(data="ok"))
    writer.wait_for_acks(duration(seconds=TIMEOUT))
    _say(rc_garbage=rc_garbage, rc_truncated=rc_truncated)
    sys.stdin.read()


# ---------------------------------------------------------------------------------------- test side
class Peer:
    def __init__(self, *args):
        env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN), EFFDL_ROS_BACKEND="dds",
                   PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self.proc = subprocess.Popen([sys.executable, __file__, str(DOMAIN), *map(str, args)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=env)

    def line(self, timeout=TIMEOUT):
        import select

        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError("the peer process said nothing")
        text = self.proc.stdout.readline()
        if not text:
            raise RuntimeError(f"the peer process ended (rc {self.proc.wait()})")
        return json.loads(text)

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def dds_graph(monkeypatch):
    monkeypatch.setenv("ROS_DOMAIN_ID", str(DOMAIN))
    from effdl_ros.runtime.testing import InprocGraph

    graphs, peers = [], []

    def make_graph():
        graphs.append(InprocGraph(backend="dds"))
        return graphs[-1]

    def make_peer(*args):
        peers.append(Peer(*args))
        return peers[-1]

    yield make_graph, make_peer
    for peer in peers:
        peer.close()
    for g in graphs:
        g.close()


def _sink(g, name="sink"):
    from effdl_ros.runtime import Node

    return g.add(lambda **kw: Node(name, **kw))


def test_reliable_delivery_in_order(dds_graph):
    from effdl_ros.runtime.messages import String
    from effdl_ros.runtime.qos import QoSProfile

    make_graph, make_peer = dds_graph
    g = make_graph()
    got = []
    n = 300
    _sink(g).create_subscription(String, "order", lambda m: got.append(m.data), QoSProfile(depth=n))
    peer = make_peer("publish", "/order", f"reliable:{n}", n, "match")
    assert peer.line()["done"]
    assert g.spin_until(lambda: len(got) == n, TIMEOUT)
    assert got == [str(i) for i in range(n)]


def test_keep_last_depth_honoured(dds_graph):
    from effdl_ros.runtime.messages import String

    make_graph, make_peer = dds_graph
    g = make_graph()
    got = []
    sub = _sink(g).create_subscription(String, "depth", lambda m: got.append(m.data), 3)
    peer = make_peer("publish", "/depth", "reliable:3", 10, "match")
    assert peer.line()["done"]  # all 10 acknowledged by our reader; nothing has run yet
    assert _wait(lambda: sub._queue and sub._queue[-1].data == "9")
    g.spin_until_idle()
    assert got == ["7", "8", "9"]


def test_late_subscriber_gets_transient_local_history(dds_graph):
    from effdl_ros.runtime.messages import String
    from effdl_ros.runtime.qos import latched

    make_graph, make_peer = dds_graph
    peer = make_peer("publish", "/latched", "latched", 2, "nomatch")
    assert peer.line()["done"]  # published "0" and "1" before anyone subscribed
    # a volatile reader alone gets no history (checked once it has matched the writer)...
    g0 = make_graph()
    volatile = []
    sub = _sink(g0, "volatile").create_subscription(String, "latched",
                                                    lambda m: volatile.append(m.data), 10)
    assert g0.spin_until(lambda: sub._handle.matched_publications() >= 1, TIMEOUT)
    g0.spin_for(0.3)
    assert volatile == []
    # ...a transient-local one gets the last value (keep-last 1)
    g = make_graph()
    got = []
    _sink(g).create_subscription(String, "latched", lambda m: got.append(m.data), latched(1))
    assert g.spin_until(lambda: got, TIMEOUT)
    g.spin_for(0.3)
    assert got == ["1"]


def test_best_effort_vs_reliable(dds_graph, caplog):
    from effdl_ros.runtime.messages import String
    from effdl_ros.runtime.qos import qos_profile_sensor_data

    make_graph, make_peer = dds_graph
    g = make_graph()
    node = _sink(g)
    got = {"be_be": [], "be_rel": [], "rel_be": []}
    node.create_subscription(String, "qos/be", lambda m: got["be_be"].append(m), qos_profile_sensor_data)
    node.create_subscription(String, "qos/be", lambda m: got["be_rel"].append(m), 10)
    node.create_subscription(String, "qos/rel", lambda m: got["rel_be"].append(m), qos_profile_sensor_data)
    peer = make_peer("stream", 0.01)
    assert peer.line()["ready"]
    # a best-effort reader hears a reliable writer, and one hears a best-effort writer...
    assert g.spin_until(lambda: len(got["be_be"]) >= 5 and len(got["rel_be"]) >= 5, TIMEOUT)
    # ...but a reliable reader does not match a best-effort writer (DDS request/offer), and says so
    assert g.spin_until(lambda: any("incompatible QoS (reliability)" in r.getMessage()
                                    for r in caplog.records), TIMEOUT)
    assert got["be_rel"] == []
    assert node.count_publishers("qos/be") == 1


def test_plain_cyclone_reader_receives_our_messages(dds_graph):
    from effdl_ros.runtime.local.typesupport import rihs01
    from effdl_ros.runtime.messages import String

    make_graph, make_peer = dds_graph
    g = make_graph()
    pub = _sink(g, "talker").create_publisher(String, "chatter", 10)
    peer = make_peer("plain_reader", "/chatter", 3)
    assert peer.line()["ready"]
    assert g.spin_until(lambda: pub._handle.matched_subscriptions() >= 1, TIMEOUT)
    for text in ("hello", "wörld", ""):
        pub.publish(String(data=text))
    result = peer.line()
    assert result["data"] == ["hello", "wörld", ""]
    assert result["type_names"] == ["std_msgs::msg::dds_::String_"]
    assert result["userdata"] == [f"typehash={rihs01('std_msgs/msg/String')};"]


def test_garbage_payload_dropped_with_one_error_node_keeps_running(dds_graph):
    from test_runtime_inproc import Echo

    from effdl_ros.runtime.safety import drop_counts

    records = []
    handler = logging.Handler(level=logging.ERROR)
    handler.emit = records.append
    logging.getLogger("effdl_ros.nodes").addHandler(handler)
    try:
        make_graph, make_peer = dds_graph
        g = make_graph()
        node = g.add(Echo)
        peer = make_peer("raw_writer", "/in")
        result = peer.line()
        assert result["rc_garbage"] == 0  # well-formed CDR: Cyclone passes it on to us
        assert result["rc_truncated"] < 0  # Cyclone refuses malformed CDR already at the writer
        assert g.spin_until(lambda: node.received == ["ok"], TIMEOUT)
        g.spin_for(0.2)
        assert node.received == ["ok"]
        assert drop_counts(node) == {"undecodable_payload": 1}
        assert len([r for r in records if "undecodable_payload" in r.getMessage()]) == 1
    finally:
        logging.getLogger("effdl_ros.nodes").removeHandler(handler)


def test_truncated_payload_reaches_on_error_not_the_callback(dds_graph):
    """The decode path of our reader: a payload cut short is reported, never delivered."""
    from effdl_ros.runtime.backends.dds import _Reader
    from effdl_ros.runtime.local.typesupport import serialize
    from effdl_ros.runtime.messages import String

    make_graph, _ = dds_graph
    g = make_graph()
    delivered, errors = [], []
    reader = _Reader(g.context.transport, "/cut", String, _qos("reliable:1"), delivered.append,
                     errors.append, raw=False)
    good = serialize(String(data="complete"))
    reader._hand_over(good[:-4])
    reader._hand_over(good)
    assert [m.data for m in delivered] == ["complete"]
    assert len(errors) == 1 and isinstance(errors[0], ValueError)
    reader.close()


@pytest.mark.parametrize("backend", ["inproc", "dds"])
def test_same_node_code_on_inproc_and_dds(backend, monkeypatch):
    from test_runtime_inproc import Echo

    from effdl_ros.runtime import Node
    from effdl_ros.runtime.messages import String
    from effdl_ros.runtime.testing import InprocGraph

    monkeypatch.setenv("ROS_DOMAIN_ID", str(DOMAIN))
    with InprocGraph(backend=backend) as g:
        node = g.add(Echo)
        client = g.add(lambda **kw: Node("client", **kw))
        got = []
        client.create_subscription(String, "out", lambda m: got.append(m.data), 10)
        pub = client.create_publisher(String, "in", 10)
        assert g.spin_until(lambda: pub.get_subscription_count() >= 1, TIMEOUT)
        for i in range(5):
            pub.publish(String(data=f"m{i}"))
        pub.publish(String(data="boom"))
        assert g.spin_until(lambda: len(got) == 5, TIMEOUT)
        assert node.received == [f"m{i}" for i in range(5)]
        assert got == [f"M{i}" for i in range(5)]


def test_raw_subscription_gets_the_cdr_bytes(dds_graph):
    from effdl_ros.runtime.local.typesupport import serialize
    from effdl_ros.runtime.messages import String

    make_graph, _ = dds_graph
    g = make_graph()
    node = _sink(g)
    raw = []
    node.create_subscription(String, "raw", raw.append, 10, raw=True)
    pub = node.create_publisher(String, "raw", 10)
    msg = String(data="seven")  # 4 + 4 + 6 = 14 bytes: padded to 16 on the wire
    pub.publish(msg)
    assert g.spin_until(lambda: raw, TIMEOUT)
    expected = serialize(msg)
    assert raw[0][:len(expected)] == expected and raw[0][len(expected):] == b"\0\0"


def test_ros_discovery_info_lists_our_nodes_and_endpoints(dds_graph):
    """What `ros2 node list` reads: node names and endpoint GIDs per participant (rmw_dds_common)."""
    from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsParticipant
    from cyclonedds.domain import DomainParticipant
    from cyclonedds.qos import Policy, Qos
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic
    from cyclonedds.util import duration

    from effdl_ros.runtime import Node
    from effdl_ros.runtime.backends.dds import _delete
    from effdl_ros.runtime.backends.dds_types import idl_type
    from effdl_ros.runtime.messages import String

    make_graph, _ = dds_graph
    g = make_graph()
    node = g.add(lambda **kw: Node("talker", namespace="/robot", **kw))
    pub = node.create_publisher(String, "chatter", 10)
    node.create_subscription(String, "cmd", lambda m: None, 10)

    observer = DomainParticipant(DOMAIN)  # another participant, as a ROS 2 daemon would be
    info_type = idl_type("rmw_dds_common/msg/ParticipantEntitiesInfo")
    reader = DataReader(observer, Topic(observer, "ros_discovery_info", info_type),
                        qos=Qos(Policy.Reliability.Reliable(duration(seconds=1)),
                                Policy.Durability.TransientLocal, Policy.History.KeepLast(1)))
    ours = pub._handle._writer.get_participant().get_guid().bytes
    latest = {}

    def heard():
        for s in reader.take(N=10):
            latest[bytes(s.gid.data)] = s
        info = latest.get(ours)
        return info is not None and info.node_entities_info_seq and \
            info.node_entities_info_seq[0].writer_gid_seq and \
            info.node_entities_info_seq[0].reader_gid_seq  # the announcement after both exist
    assert g.spin_until(heard, TIMEOUT)
    entry = latest[ours].node_entities_info_seq[0]
    assert (entry.node_namespace, entry.node_name) == ("/robot", "talker")
    # the publisher and one reply writer per parameter service (ros2 service list finds them too)
    services = [s._handle.writer.get_guid().bytes for s in node._services]
    assert [bytes(w.data) for w in entry.writer_gid_seq] == [pub._handle._writer.get_guid().bytes] + services
    assert len(entry.reader_gid_seq) == 1 + len(services) and len(services) == 6
    participants = BuiltinDataReader(observer, BuiltinTopicDcpsParticipant).take(N=20)
    assert ours in [p.key.bytes for p in participants]  # the gid is the participant's GUID
    _delete(observer)


if __name__ == "__main__":
    DOMAIN = int(sys.argv[1])
    mode, args = sys.argv[2], sys.argv[3:]
    if mode == "publish":
        _peer_publish(args[0], args[1], int(args[2]), args[3])
    elif mode == "stream":
        _peer_stream(args[0])
    elif mode == "plain_reader":
        _peer_plain_reader(args[0], int(args[1]))
    elif mode == "raw_writer":
        _peer_raw_writer(args[0])


def test_discovery_info_skips_an_endpoint_deleted_meanwhile(dds_graph):
    """The announce timer may run while a node is being destroyed: its deleted writer is left out
    (it used to make the whole announcement fail with DDS_RETCODE_BAD_PARAMETER)."""
    from effdl_ros.runtime import Node
    from effdl_ros.runtime.backends.dds import _delete
    from effdl_ros.runtime.messages import String

    make_graph, _ = dds_graph
    g = make_graph()
    node = g.add(lambda **kw: Node("going", **kw))
    kept = node.create_publisher(String, "kept", 10)
    gone = node.create_publisher(String, "gone", 10)
    _delete(gone._handle._writer)  # as destroy_node does, one endpoint after the other
    (info,) = [n for n in g.context.transport.discovery_info().node_entities_info_seq
               if n.node_name == "going"]
    expected = kept._handle._writer.get_guid().bytes
    services = [s._handle.writer.get_guid().bytes for s in node._services]  # parameter services
    assert [bytes(w.data) for w in info.writer_gid_seq] == [expected] + services

"""DDS transport: our nodes on Cyclone DDS with ROS 2's wire conventions (rmw_cyclonedds' choices).

One DomainParticipant per context (domain = context.domain_id). A topic `/a/b` is the DDS topic
`rt/a/b` of type `<pkg>::msg::dds_::<Name>_` (dds_types.py builds the matching IDL struct so that
Cyclone validates and announces the real structure). The payload is rosbags' CDR (XCDR1, little
endian) padded to 4 bytes, which is what rmw_cyclonedds puts on the wire, and every endpoint carries
`typehash=RIHS01_...;` in USER_DATA (REP 2016). QoS maps one to one (reliability, durability,
history kind and depth). Cyclone's listener thread takes and decodes samples and hands messages to
`deliver`; the executor runs the callbacks. A payload that does not decode goes to `on_error`.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

# discovery settings (ROS_AUTOMATIC_DISCOVERY_RANGE, ROS_STATIC_PEERS, CYCLONEDDS_URI) live there
from effdl_ros.runtime.backends import dds_discovery
from effdl_ros.runtime.backends.dds_discovery import LOOPBACK_CONFIG, delete_entity as _delete, discovery_config  # noqa: F401
from effdl_ros.runtime.backends.dds_types import dds_topic_name, idl_type
from effdl_ros.runtime.local.qos import HistoryPolicy, QoSProfile
from effdl_ros.runtime.local.typesupport import deserialize, get_class, rihs01, typestore

_TAKE_BATCH = 64

DISCOVERY_TOPIC = "ros_discovery_info"  # no rt/ prefix (avoid_ros_namespace_conventions in rmw)
ANNOUNCE_DELAY_SEC = 0.05


def serialize_padded(msg: Any, typename: str) -> memoryview:
    """rosbags' CDR of msg (the bytes of typesupport.serialize), zero-padded to a multiple of 4 as
    rmw_cyclonedds writes it, serialised straight into a buffer of the padded size (no second copy
    of an image to pad it). The buffer is fresh and zeroed: rosbags skips alignment gaps."""
    store = typestore()
    msgdef = store.get_msgdef(typename)
    size = 4 + msgdef.getsize_cdr(0, msg, store)
    raw = memoryview(bytearray(size + (-size % 4)))
    raw[1] = 1 if sys.byteorder == "little" else 0  # encapsulation CDR_LE / CDR_BE, options 0
    serialize = msgdef.serialize_cdr_le if sys.byteorder == "little" else msgdef.serialize_cdr_be
    if serialize(raw[4:size], 0, msg, store) + 4 != size:
        raise ValueError(f"{typename}: serialised size differs from the computed one")
    return raw


_MALLOC_TUNED = False
_MMAP_THRESHOLD = 16 * 1024 * 1024  # smaller blocks come from the heap (1080p rgb8: 6.2 MB)
_TRIM_THRESHOLD = 64 * 1024 * 1024  # free memory a heap keeps at its top before returning it


def tune_malloc() -> bool:
    """Keep large freed blocks in the heap for reuse (glibc), once per process; True if applied.

    A 0.9 MB image passes through four or five fresh frame-sized buffers per hop (our CDR buffer,
    Cyclone's serdata on each side, the taken sample, its Python bytes). With glibc's defaults those
    come from fresh mmap() pages, and faulting in ~225 pages per buffer cost 0.2-0.4 ms each on the
    development VM, more than the copies themselves (profiled; see docs/transport.md).
    Raising the mmap and trim thresholds lets malloc hand the same warm memory back. Process-wide,
    so it is done only by the dds transport; EFFDL_ROS_DDS_MALLOC_TUNING=0 turns it off."""
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    if os.environ.get("EFFDL_ROS_DDS_MALLOC_TUNING", "1") == "0":
        return False
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc (e.g. musl): nothing to tune
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    m_trim_threshold, m_mmap_threshold = -1, -3
    ok = mallopt(m_mmap_threshold, _MMAP_THRESHOLD) == 1
    ok = mallopt(m_trim_threshold, _TRIM_THRESHOLD) == 1 and ok
    _MALLOC_TUNED = ok
    return ok


def typename_of(msg_type: type) -> str:
    name = getattr(msg_type, "__msgtype__", None)
    if not name:
        raise TypeError(f"{msg_type.__name__} is not a ROS message class of this runtime")
    return name


def dds_qos(qos: QoSProfile, typename: str, *, writer: bool):
    """ROS 2 QoS profile -> Cyclone QoS, as rmw_cyclonedds maps it (plus the type hash)."""
    from cyclonedds.qos import Policy, Qos
    from cyclonedds.util import duration

    policies = [
        Policy.Reliability.Reliable(max_blocking_time=duration(seconds=1)) if qos.reliable
        else Policy.Reliability.BestEffort,
        Policy.Durability.TransientLocal if qos.transient_local else Policy.Durability.Volatile,
        Policy.History.KeepAll if qos.history == HistoryPolicy.KEEP_ALL
        else Policy.History.KeepLast(max(1, qos.depth)),
        Policy.DataRepresentation(use_cdrv0_representation=True),  # XCDR1, as ROS 2 sends
        Policy.Userdata(data=f"typehash={rihs01(typename)};".encode()),
    ]
    if writer:
        policies.append(Policy.WriterDataLifecycle(autodispose=False))
    return Qos(*policies)


_POLICY_NAMES = {2: "durability", 11: "reliability", 23: "data representation"}
_log = logging.getLogger("effdl_ros.runtime.dds")


def _incompatible(kind: str, topic: str, seen: list):
    """A listener callback: say once per endpoint why it will not match (rclpy warns likewise)."""

    def warn(_entity, status) -> None:
        if seen:
            return
        seen.append(True)
        policy = _POLICY_NAMES.get(status.last_policy_id, f"policy id {status.last_policy_id}")
        other = "publisher" if kind == "subscription" else "subscription"
        _log.warning("a %s on %s offers/requests incompatible QoS (%s): they will not connect; "
                     "images use best effort (qos_profile_sensor_data)", other, topic, policy)

    return warn




class _Writer:
    def __init__(self, transport: "DdsTransport", topic: str, msg_type: type, qos: QoSProfile):
        from cyclonedds.core import Listener
        from cyclonedds.pub import DataWriter

        self.topic = topic
        self.typename = typename_of(msg_type)
        self._transport = transport
        listener = Listener(on_offered_incompatible_qos=_incompatible("publisher", topic, []))
        self._writer = DataWriter(transport.participant, transport.topic(topic, self.typename),
                                  qos=dds_qos(qos, self.typename, writer=True), listener=listener)

    def publish(self, msg: Any) -> None:
        self.write_raw(serialize_padded(msg, self.typename))

    def write_raw(self, payload) -> None:
        """Write CDR bytes as they are (padded to 4, as rmw_cyclonedds does); tests use this."""
        from cyclonedds._clayer import ddspy_write
        from cyclonedds.core import DDSException

        pad = -len(payload) % 4
        if pad:
            payload = (payload if isinstance(payload, bytearray) else bytearray(payload))
            payload.extend(b"\0" * pad)
        ret = ddspy_write(self._writer._ref, payload)
        if ret < 0:
            raise DDSException(ret, f"cannot write to {self.topic}")

    def matched_subscriptions(self) -> int:
        return len(self._writer.get_matched_subscriptions())

    def close(self) -> None:
        self._transport._forget(self)
        _delete(self._writer)


class _Reader:
    def __init__(self, transport: "DdsTransport", topic: str, msg_type: type, qos: QoSProfile,
                 deliver: Callable[[Any], None], on_error: Callable[[Exception], None], raw: bool):
        from cyclonedds.core import Listener
        from cyclonedds.sub import DataReader

        self.topic = topic
        self.typename = typename_of(msg_type)
        self._transport = transport
        self._deliver = deliver
        self._on_error = on_error
        self._raw = raw
        self._lock = threading.Lock()
        self._ref: Optional[int] = None
        self._closed = False
        listener = Listener(on_data_available=lambda _reader: self._drain(),
                            on_requested_incompatible_qos=_incompatible("subscription", topic, []))
        self._reader = DataReader(transport.participant, transport.topic(topic, self.typename),
                                  qos=dds_qos(qos, self.typename, writer=False), listener=listener)
        self._ref = self._reader._ref
        self._drain()  # samples (e.g. transient-local history) that came before _ref was known

    def _drain(self) -> None:
        """Runs on Cyclone's listener thread: take everything, decode, hand over."""
        from cyclonedds._clayer import ddspy_take
        from cyclonedds.core import InstanceState, SampleState, ViewState

        if self._ref is None:
            return  # the constructor drains once the reader exists
        mask = SampleState.Any | ViewState.Any | InstanceState.Any
        with self._lock:
            while not self._closed:
                samples = ddspy_take(self._ref, mask, _TAKE_BATCH)
                if isinstance(samples, int) or not samples:
                    return
                for data, info in samples:
                    if info.valid_data:
                        self._hand_over(data)

    def _hand_over(self, data: bytes) -> None:
        if self._raw:
            self._deliver(bytes(data))
            return
        try:
            # a memoryview: rosbags then slices without copying and uint8[] fields (image pixels)
            # become read-only numpy views of the taken sample, as they were of a copy before
            msg = deserialize(memoryview(data), self.typename)
        except ValueError as err:
            self._on_error(err)
            return
        self._deliver(msg)

    def matched_publications(self) -> int:
        return len(self._reader.get_matched_publications())

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._transport._forget(self)
        _delete(self._reader)


class DdsTransport:
    """The transport interface of InprocTransport, over one Cyclone DDS participant."""

    def __init__(self, context) -> None:
        from effdl_ros.errors import ConfigError

        try:
            from cyclonedds.core import DDSException
            from cyclonedds.domain import DomainParticipant
            from cyclonedds.qos import Policy, Qos
        except ImportError as err:
            raise ConfigError(f"the dds backend needs the cyclonedds package ({err}); "
                              "pip install cyclonedds, or choose --backend inproc") from None
        self.context = context
        tune_malloc()
        self.domain_id = int(context.domain_id)
        if not 0 <= self.domain_id <= 232:
            raise ConfigError(f"ROS_DOMAIN_ID={self.domain_id} is outside 0..232")
        config = dds_discovery.discovery_config(os.environ)
        dds_discovery.export_config(os.environ, config)
        dds_discovery.acquire_domain(self.domain_id, config)
        try:
            # rmw_cyclonedds puts the security enclave in the participant's USER_DATA
            self.participant = DomainParticipant(self.domain_id,
                                                 qos=Qos(Policy.Userdata(data=b"enclave=/;")))
        except DDSException as err:
            dds_discovery.release_domain(self.domain_id)
            raise ConfigError(f"cannot join DDS domain {self.domain_id} ({err}); check "
                              "CYCLONEDDS_URI and the network interfaces") from None
        self._lock = threading.RLock()
        self._topics: Dict[Tuple[str, str], Any] = {}
        self._endpoints: List[Any] = []
        self._builtin: Dict[str, Any] = {}
        self._discovery: Optional[_Writer] = None
        self._announce_timer: Optional[threading.Timer] = None
        self._closed = False

    def topic(self, topic_fqn: str, typename: str):
        """The DDS topic `rt<topic_fqn>`; a name without a leading slash is taken as it is."""
        from cyclonedds.topic import Topic

        key = (topic_fqn, typename)
        with self._lock:
            if key not in self._topics:
                name = dds_topic_name(topic_fqn) if topic_fqn.startswith("/") else topic_fqn
                self._topics[key] = Topic(self.participant, name, idl_type(typename))
            return self._topics[key]

    def create_publisher(self, topic_fqn: str, msg_type: type, qos: QoSProfile) -> _Writer:
        writer = _Writer(self, topic_fqn, msg_type, qos)
        with self._lock:
            self._endpoints.append(writer)
        self._graph_changed()
        return writer

    def create_subscription(self, topic_fqn: str, msg_type: type, qos: QoSProfile,
                            deliver: Callable[[Any], None], on_error: Callable[[Exception], None],
                            raw: bool = False) -> _Reader:
        reader = _Reader(self, topic_fqn, msg_type, qos, deliver, on_error, raw)
        with self._lock:
            self._endpoints.append(reader)
        self._graph_changed()
        return reader

    # -- graph queries: every endpoint on the domain (ours and other processes'), as rclpy counts
    def _count(self, kind: str, topic_fqn: str) -> int:
        from cyclonedds.builtin import (
            BuiltinDataReader,
            BuiltinTopicDcpsPublication,
            BuiltinTopicDcpsSubscription,
        )
        from cyclonedds.core import InstanceState, ReadCondition, SampleState, ViewState

        with self._lock:
            if kind not in self._builtin:
                topic = BuiltinTopicDcpsPublication if kind == "pub" else BuiltinTopicDcpsSubscription
                reader = BuiltinDataReader(self.participant, topic)
                alive = ReadCondition(reader, SampleState.Any | ViewState.Any | InstanceState.Alive)
                self._builtin[kind] = (reader, alive)
            reader, alive = self._builtin[kind]
            name = dds_topic_name(topic_fqn)
            endpoints = reader.read(N=100000, condition=alive)
        return len({e.key for e in endpoints if e.topic_name == name})

    def count_publishers(self, topic_fqn: str) -> int:
        return self._count("pub", topic_fqn)

    def count_subscribers(self, topic_fqn: str) -> int:
        return self._count("sub", topic_fqn)

    def node_created(self, node) -> None:
        self._graph_changed()

    def node_destroyed(self, node) -> None:
        self._graph_changed()

    def _forget(self, endpoint) -> None:
        with self._lock:
            if endpoint in self._endpoints:
                self._endpoints.remove(endpoint)
        if endpoint is not self._discovery:
            self._graph_changed()

    # -- ros_discovery_info: which nodes this participant holds (how `ros2 node list` finds nodes)
    def _graph_changed(self) -> None:
        """Announce soon, once: node and endpoint lists settle after the call that changed them."""
        with self._lock:
            if self._closed or self._announce_timer is not None:
                return
            self._announce_timer = threading.Timer(ANNOUNCE_DELAY_SEC, self._announce)
            self._announce_timer.daemon = True
            self._announce_timer.start()

    def discovery_info(self):
        """rmw_dds_common/ParticipantEntitiesInfo for this participant, as rmw_cyclonedds sends it."""
        import numpy as np

        Gid = get_class("rmw_dds_common/msg/Gid")
        NodeInfo = get_class("rmw_dds_common/msg/NodeEntitiesInfo")
        Info = get_class("rmw_dds_common/msg/ParticipantEntitiesInfo")

        from cyclonedds.core import DDSException

        def gid(entity):
            return Gid(data=np.frombuffer(entity.get_guid().bytes, dtype=np.uint8).copy())

        def gids(entities):
            out = []
            for entity in entities:
                try:
                    out.append(gid(entity))
                except DDSException:
                    pass  # deleted meanwhile (a node being destroyed): no longer announced
            return out

        nodes = []
        for node in list(self.context.nodes):
            readers = [s._handle._reader for s in list(node._subscriptions)
                       if isinstance(s._handle, _Reader)]
            writers = [p._handle._writer for p in list(node._publishers)
                       if isinstance(p._handle, _Writer)]
            for endpoint in list(getattr(node, "_services", ())) + list(getattr(node, "_clients", ())):
                readers += endpoint._handle.dds_readers()  # rq/rr topics (`ros2 service list`)
                writers += endpoint._handle.dds_writers()
            nodes.append(NodeInfo(node_namespace=node.get_namespace(), node_name=node.get_name(),
                                  reader_gid_seq=gids(readers), writer_gid_seq=gids(writers)))
        return Info(gid=gid(self.participant), node_entities_info_seq=nodes)

    def _announce(self) -> None:
        from effdl_ros.runtime.local.qos import DurabilityPolicy

        with self._lock:
            self._announce_timer = None
            if self._closed:
                return
            try:
                if self._discovery is None:
                    info_type = get_class("rmw_dds_common/msg/ParticipantEntitiesInfo")
                    self._discovery = _Writer(self, DISCOVERY_TOPIC, info_type, QoSProfile(
                        depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
                self._discovery.publish(self.discovery_info())
            except Exception as err:  # noqa: BLE001 - graph introspection must never stop a node
                _log.warning("cannot publish %s: %s", DISCOVERY_TOPIC, err)

    def shutdown(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._announce_timer is not None:
                self._announce_timer.cancel()
                self._announce_timer = None
            endpoints, self._endpoints = list(self._endpoints), []
            discovery, self._discovery = self._discovery, None
        for endpoint in endpoints:
            endpoint.close()
        if discovery is not None:
            _delete(discovery._writer)
        with self._lock:
            for reader, alive in self._builtin.values():
                _delete(alive)
                _delete(reader)
            self._builtin.clear()
            self._topics.clear()
        _delete(self.participant)
        dds_discovery.release_domain(self.domain_id)

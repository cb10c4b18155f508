"""ROS 2 services on Cyclone DDS in rmw_cyclonedds' wire format, and the same API in process.

A service `/tracker/get_state` is two DDS topics: requests on `rq/tracker/get_stateRequest` of type
`lifecycle_msgs::srv::dds_::GetState_Request_` and replies on `rr/tracker/get_stateReply` of type
`..._Response_`. rmw_cyclonedds puts a 16-byte header in front of every request and reply body,
inside the CDR stream: the client's request-writer instance handle (uint64, the "guid") and a
sequence number (int64). The server copies both into its reply; a client keeps only the replies
carrying its own guid. Endpoints carry `clientid=<id>;` / `serviceid=<id>;` before the type hash in
USER_DATA, so that a server can wait until the reply reader of the client that asked is matched
before it answers (a reply written earlier would be lost). QoS: ROS 2's services default (reliable,
volatile, keep last 10).

The inproc transport has no wire: InprocServices hands request and response objects across.
"""
from __future__ import annotations

import itertools
import logging
import struct
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from effdl_ros.runtime.local.qos import QoSProfile

_log = logging.getLogger("effdl_ros.runtime.dds_services")
_HEADER = struct.Struct("<Qq" if sys.byteorder == "little" else ">Qq")
_REPLY_WAIT_SEC = 1.0  # how long a server waits for the asking client's reply reader to match
_sequence = itertools.count(1)  # one counter per process, as rmw_cyclonedds (atomic there)

#: rmw_qos_profile_services_default
SERVICES_QOS = QoSProfile(depth=10)

Deliver = Callable[[Any, Callable[[Any], None]], None]


def request_topic(service_fqn: str) -> str:
    """'/tracker/get_state' -> 'rq/tracker/get_stateRequest' (rmw_cyclonedds' names)."""
    return "rq" + service_fqn + "Request"


def reply_topic(service_fqn: str) -> str:
    return "rr" + service_fqn + "Reply"


def srv_typename(srv_type: Any) -> str:
    name = getattr(srv_type, "__srvtype__", None)
    if not name:
        raise TypeError(f"{srv_type!r} is not a service type of this runtime")
    return name


def pack(guid: int, seq: int, payload: memoryview) -> bytearray:
    """CDR of a message (with its 4-byte encapsulation) -> the same with the request header inside."""
    out = bytearray(len(payload) + _HEADER.size)
    out[:4] = payload[:4]
    _HEADER.pack_into(out, 4, guid & 0xFFFFFFFFFFFFFFFF, seq)
    out[4 + _HEADER.size:] = payload[4:]
    return out


def unpack(data: bytes):
    """-> (guid, seq, CDR of the body with its encapsulation); ValueError when too short."""
    if len(data) < 4 + _HEADER.size:
        raise ValueError(f"a service sample of {len(data)} bytes is shorter than its header")
    guid, seq = _HEADER.unpack_from(data, 4)
    return guid, seq, bytes(data[:4]) + bytes(data[4 + _HEADER.size:])


def wrapped_idl_type(typename: str) -> type:
    """The IdlStruct Cyclone sees for a request/response: the header fields, then the message's."""
    from cyclonedds.idl import make_idl_struct, types as t

    from effdl_ros.runtime.backends import dds_types
    from effdl_ros.runtime.local.typesupport import typestore

    with dds_types._lock:
        key = "service:" + typename
        if key not in dds_types._cache:
            _consts, fields = typestore().fielddefs[typename]
            spec = {"_request_guid": t.uint64, "_request_seq": t.int64}
            spec.update({name: dds_types._field_type(desc) for name, desc, *_ in fields})
            dds_types._cache[key] = make_idl_struct(typename.rsplit("/", 1)[-1] + "_",
                                                    dds_types.dds_type_name(typename), spec)
        return dds_types._cache[key]


def _user_data(qos) -> str:
    from cyclonedds.qos import Policy

    for policy in qos or ():
        if isinstance(policy, Policy.Userdata):
            return bytes(policy.data).decode("utf-8", "replace")
    return ""


def _key(user_data: str, key: str) -> Optional[str]:
    for item in user_data.split(";"):
        name, _, value = item.partition("=")
        if name == key:
            return value
    return None


class _DdsEndpointPair:
    """One reader and one writer (a service's or a client's) with their ids in USER_DATA."""

    def __init__(self, services: "DdsServices", service_fqn: str, srv_type: Any, qos: QoSProfile,
                 role: str) -> None:
        from cyclonedds.core import Listener
        from cyclonedds.pub import DataWriter
        from cyclonedds.sub import DataReader

        self.service_fqn = service_fqn
        self.role = role
        base = srv_typename(srv_type)
        self.srv_type = srv_type
        in_name, out_name = ((base + "_Request", base + "_Response") if role == "service"
                             else (base + "_Response", base + "_Request"))
        in_topic, out_topic = ((request_topic(service_fqn), reply_topic(service_fqn)) if role == "service"
                               else (reply_topic(service_fqn), request_topic(service_fqn)))
        self.in_name, self.out_name = in_name, out_name
        self.ident = services.next_id()
        self._lock = threading.Lock()
        self._closed = False
        self._ref = None
        transport = services.transport
        participant = transport.participant
        self.writer = DataWriter(participant, services.topic(out_topic, out_name),
                                 qos=self._qos(qos, out_name, writer=True))
        listener = Listener(on_data_available=lambda _reader: self._drain())
        self.reader = DataReader(participant, services.topic(in_topic, in_name),
                                 qos=self._qos(qos, in_name, writer=False), listener=listener)
        self._ref = self.reader._ref
        self.guid = int(self.writer.get_instance_handle()) & 0xFFFFFFFFFFFFFFFF  # as uint64 on the wire
        self._drain()

    def _qos(self, qos: QoSProfile, typename: str, *, writer: bool):
        from cyclonedds.qos import Policy, Qos

        from effdl_ros.runtime.backends.dds import dds_qos
        from effdl_ros.runtime.local.typesupport import rihs01

        key = "serviceid" if self.role == "service" else "clientid"
        policies = [p for p in dds_qos(qos, typename, writer=writer) if not isinstance(p, Policy.Userdata)]
        user = f"{key}={self.ident};typehash={rihs01(typename)};"
        return Qos(*policies, Policy.Userdata(data=user.encode()))

    def _drain(self) -> None:
        from cyclonedds._clayer import ddspy_take
        from cyclonedds.core import InstanceState, SampleState, ViewState

        if self._ref is None:
            return
        mask = SampleState.Any | ViewState.Any | InstanceState.Any
        with self._lock:
            while not self._closed:
                samples = ddspy_take(self._ref, mask, 16)
                if isinstance(samples, int) or not samples:
                    return
                for data, info in samples:
                    if not info.valid_data:
                        continue
                    try:
                        guid, seq, body = unpack(data)
                        from effdl_ros.runtime.local.typesupport import deserialize

                        msg = deserialize(body, self.in_name)
                    except ValueError as err:
                        _log.warning("%s: dropped an undecodable sample: %s", self.service_fqn, err)
                        continue
                    self._received(guid, seq, msg, info)

    def _received(self, guid: int, seq: int, msg: Any, info: Any) -> None:
        raise NotImplementedError

    def write(self, guid: int, seq: int, msg: Any) -> None:
        from cyclonedds._clayer import ddspy_write
        from cyclonedds.core import DDSException

        from effdl_ros.runtime.backends.dds import serialize_padded

        ret = ddspy_write(self.writer._ref, pack(guid, seq, serialize_padded(msg, self.out_name)))
        if ret < 0:
            raise DDSException(ret, f"cannot write to {self.service_fqn}")

    def dds_readers(self) -> List[Any]:
        return [self.reader]

    def dds_writers(self) -> List[Any]:
        return [self.writer]

    def close(self) -> None:
        from effdl_ros.runtime.backends.dds import _delete

        with self._lock:
            if self._closed:
                return
            self._closed = True
        _delete(self.reader)
        _delete(self.writer)


class DdsServiceServer(_DdsEndpointPair):
    def __init__(self, services, service_fqn, srv_type, qos, deliver: Deliver) -> None:
        self._deliver = deliver
        super().__init__(services, service_fqn, srv_type, qos, "service")

    def _received(self, guid, seq, msg, info) -> None:
        writer_handle = getattr(info, "publication_handle", None)
        self._deliver(msg, lambda response: self._reply(guid, seq, writer_handle, response))

    def _client_reader_matched(self, writer_handle) -> Optional[bool]:
        """True once the asking client's reply reader is matched; None when that client is gone."""
        try:
            asker = self.reader.get_matched_publication_data(writer_handle)
        except Exception:  # noqa: BLE001 - the writer went away meanwhile
            asker = None
        if asker is None:
            return None
        clientid = _key(_user_data(asker.qos), "clientid")
        if clientid is None:
            return True  # a client without an id (older rmw): assume it is ready
        for handle in self.writer.get_matched_subscriptions():
            try:
                reader = self.writer.get_matched_subscription_data(handle)
            except Exception:  # noqa: BLE001
                continue
            if reader is not None and _key(_user_data(reader.qos), "clientid") == clientid:
                return True
        return False

    def _reply(self, guid: int, seq: int, writer_handle, response: Any) -> None:
        if writer_handle is not None:
            deadline = time.monotonic() + _REPLY_WAIT_SEC
            while True:
                state = self._client_reader_matched(writer_handle)
                if state is None:
                    return  # the client left: nobody to answer
                if state or time.monotonic() > deadline:
                    break
                time.sleep(0.01)
        self.write(guid, seq, response)


class DdsServiceClient(_DdsEndpointPair):
    def __init__(self, services, service_fqn, srv_type, qos, on_response: Callable[[int, Any], None]) -> None:
        self._on_response = on_response
        super().__init__(services, service_fqn, srv_type, qos, "client")

    def _received(self, guid, seq, msg, info) -> None:
        if guid == self.guid:
            self._on_response(seq, msg)

    def send(self, request: Any) -> int:
        seq = next(_sequence)
        self.write(self.guid, seq, request)
        return seq

    def is_ready(self) -> bool:
        """A server is there: our requests reach a reader and a writer can answer us."""
        return bool(self.writer.get_matched_subscriptions()) and bool(self.reader.get_matched_publications())


class DdsServices:
    """Service and client endpoints on a DdsTransport's participant."""

    def __init__(self, transport) -> None:
        self.transport = transport
        self._lock = threading.Lock()
        self._topics: Dict[Any, Any] = {}
        self._counter = itertools.count(1)
        prefix = bytes(transport.participant.get_guid().bytes)[:12]
        self._prefix = prefix

    def next_id(self) -> str:
        """rmw_cyclonedds' client/service id: the participant's GUID prefix and a counter."""
        raw = self._prefix + next(self._counter).to_bytes(4, "big")
        return ".".join(f"{b:x}" for b in raw)

    def topic(self, name: str, typename: str):
        from cyclonedds.topic import Topic

        with self._lock:
            key = (name, typename)
            if key not in self._topics:
                self._topics[key] = Topic(self.transport.participant, name, wrapped_idl_type(typename))
            return self._topics[key]

    def create_service(self, service_fqn: str, srv_type: Any, qos: QoSProfile, deliver: Deliver):
        server = DdsServiceServer(self, service_fqn, srv_type, qos, deliver)
        self.transport._graph_changed()
        return server

    def create_client(self, service_fqn: str, srv_type: Any, qos: QoSProfile,
                      on_response: Callable[[int, Any], None]):
        client = DdsServiceClient(self, service_fqn, srv_type, qos, on_response)
        self.transport._graph_changed()
        return client


class _InprocServer:
    def __init__(self, services: "InprocServices", service_fqn: str, srv_type: Any, deliver: Deliver):
        self.services, self.service_fqn, self.srv_type, self.deliver = services, service_fqn, srv_type, deliver

    def close(self) -> None:
        with self.services.lock:
            servers = self.services.servers.get(self.service_fqn, [])
            if self in servers:
                servers.remove(self)


class _InprocClient:
    def __init__(self, services: "InprocServices", service_fqn: str, srv_type: Any,
                 on_response: Callable[[int, Any], None]):
        self.services, self.service_fqn, self.srv_type = services, service_fqn, srv_type
        self._on_response = on_response

    def _server(self) -> Optional[_InprocServer]:
        with self.services.lock:
            servers = [s for s in self.services.servers.get(self.service_fqn, ())
                       if srv_typename(s.srv_type) == srv_typename(self.srv_type)]
        return servers[0] if servers else None

    def is_ready(self) -> bool:
        return self._server() is not None

    def send(self, request: Any) -> int:
        seq = next(_sequence)
        server = self._server()
        if server is not None:  # as on DDS, a request nobody serves is lost (the future never completes)
            server.deliver(request, lambda response: self._on_response(seq, response))
        return seq

    def close(self) -> None:
        pass


class InprocServices:
    def __init__(self, transport) -> None:
        self.transport = transport
        self.lock = threading.Lock()
        self.servers: Dict[str, List[_InprocServer]] = {}

    def create_service(self, service_fqn, srv_type, qos, deliver):
        server = _InprocServer(self, service_fqn, srv_type, deliver)
        with self.lock:
            self.servers.setdefault(service_fqn, []).append(server)
        return server

    def create_client(self, service_fqn, srv_type, qos, on_response):
        return _InprocClient(self, service_fqn, srv_type, on_response)


_by_transport_lock = threading.Lock()


def services_for(transport) -> Any:
    """The service layer of a transport (made once per transport)."""
    with _by_transport_lock:
        layer = getattr(transport, "_effdl_services", None)
        if layer is None:
            from effdl_ros.runtime.backends.dds import DdsTransport

            layer = DdsServices(transport) if isinstance(transport, DdsTransport) else InprocServices(transport)
            transport._effdl_services = layer
        return layer

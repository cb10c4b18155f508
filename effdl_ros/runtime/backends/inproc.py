"""In-process transport: nodes in one process exchange message objects, no serialisation.

Same QoS semantics as DDS where they are visible to a node: keep-last depth, request/offer
compatibility, transient-local history replayed to a late joiner. Messages are shared, not copied:
a callback must not modify a message it received.
"""
from __future__ import annotations

import collections
import threading
from typing import Any, Callable, Dict, List

from effdl_ros.runtime.local.qos import QoSProfile, compatible


class _Endpoint:
    def __init__(self, transport: "InprocTransport", topic: str, msg_type: type, qos: QoSProfile):
        self.transport = transport
        self.topic = topic
        self.msg_type = msg_type
        self.typename = getattr(msg_type, "__msgtype__", msg_type.__name__)
        self.qos = qos


class _Writer(_Endpoint):
    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.history = collections.deque(maxlen=self.qos.depth) if self.qos.transient_local else None

    def publish(self, msg: Any) -> None:
        with self.transport.lock:
            if self.history is not None:
                self.history.append(msg)
            readers = list(self.transport.readers.get(self.topic, ()))
        for reader in readers:
            if reader.matches(self):
                reader.deliver(msg)

    def close(self) -> None:
        self.transport._remove(self.transport.writers, self)


class _Reader(_Endpoint):
    def __init__(self, transport, topic, msg_type, qos, deliver: Callable, on_error: Callable):
        super().__init__(transport, topic, msg_type, qos)
        self.deliver = deliver
        self.on_error = on_error

    def matches(self, writer: _Writer) -> bool:
        return writer.typename == self.typename and compatible(writer.qos, self.qos)

    def close(self) -> None:
        self.transport._remove(self.transport.readers, self)


class InprocTransport:
    def __init__(self, context) -> None:
        self.context = context
        self.lock = threading.RLock()
        self.writers: Dict[str, List[_Writer]] = collections.defaultdict(list)
        self.readers: Dict[str, List[_Reader]] = collections.defaultdict(list)

    def create_publisher(self, topic: str, msg_type: type, qos: QoSProfile) -> _Writer:
        writer = _Writer(self, topic, msg_type, qos)
        with self.lock:
            self.writers[topic].append(writer)
        return writer

    def create_subscription(self, topic: str, msg_type: type, qos: QoSProfile, deliver: Callable,
                            on_error: Callable, raw: bool = False) -> _Reader:
        if raw:
            raise NotImplementedError("raw subscriptions need a wire format: use the dds backend")
        reader = _Reader(self, topic, msg_type, qos, deliver, on_error)
        with self.lock:
            self.readers[topic].append(reader)
            late = [w for w in self.writers.get(topic, ()) if w.history and reader.matches(w)]
            replay = [m for w in late for m in w.history] if qos.transient_local else []
        for msg in replay:
            deliver(msg)
        return reader

    def count_publishers(self, topic: str) -> int:
        with self.lock:
            return len(self.writers.get(topic, ()))

    def count_subscribers(self, topic: str) -> int:
        with self.lock:
            return len(self.readers.get(topic, ()))

    def node_created(self, node) -> None:
        pass

    def node_destroyed(self, node) -> None:
        pass

    def _remove(self, table: Dict[str, list], endpoint: _Endpoint) -> None:
        with self.lock:
            if endpoint in table.get(endpoint.topic, ()):
                table[endpoint.topic].remove(endpoint)

    def shutdown(self) -> None:
        with self.lock:
            self.writers.clear()
            self.readers.clear()

"""A minimal client of the Foxglove WebSocket protocol (the `websockets` package), for tests and for
measuring the bridge's overhead with a viewer connected.

Protocol (foxglove.sdk.v1, formerly foxglove.websocket.v1): the server sends JSON text frames
(`serverInfo`, `advertise` with the channels), the client answers `subscribe` with its own
subscription ids, and each message arrives as a binary frame: opcode 0x01, subscription id (uint32
LE), log time in ns (uint64 LE), payload.
"""
from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Optional

SUBPROTOCOLS = ("foxglove.sdk.v1", "foxglove.websocket.v1")
MESSAGE_DATA = 0x01


@dataclass
class Message:
    topic: str
    channel: Dict[str, Any]
    log_time_ns: int
    payload: bytes


class FoxgloveClient:
    """`with FoxgloveClient(url) as c: c.wait_for_topics(["/image"]); c.subscribe(["/image"]); c.next()`."""

    def __init__(self, url: str, *, open_timeout: float = 10.0) -> None:
        from websockets.sync.client import connect

        # entered as a context manager: websockets >= 17 warns about a bare connect()
        self.ws = connect(url, subprotocols=list(SUBPROTOCOLS), open_timeout=open_timeout,
                          max_size=None).__enter__()
        self.subprotocol = self.ws.subprotocol
        self.server_info: Optional[Dict[str, Any]] = None
        self.channels: Dict[int, Dict[str, Any]] = {}   # channel id -> advertisement
        self.subscriptions: Dict[int, int] = {}         # subscription id -> channel id
        self._next_id = 1

    def close(self) -> None:
        self.ws.close()

    def __enter__(self) -> "FoxgloveClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def topics(self) -> Dict[str, Dict[str, Any]]:
        return {c["topic"]: c for c in self.channels.values()}

    def _handle_text(self, text: str) -> None:
        message = json.loads(text)
        op = message.get("op")
        if op == "serverInfo":
            self.server_info = message
        elif op == "advertise":
            for channel in message.get("channels", []):
                self.channels[int(channel["id"])] = channel
        elif op == "unadvertise":
            for cid in message.get("channelIds", []):
                self.channels.pop(int(cid), None)

    def _recv(self, timeout: float):
        frame = self.ws.recv(timeout=timeout)
        if isinstance(frame, str):
            self._handle_text(frame)
            return None
        if frame and frame[0] == MESSAGE_DATA:
            sub_id, log_time = struct.unpack_from("<IQ", frame, 1)
            channel = self.channels.get(self.subscriptions.get(sub_id, -1), {})
            return Message(channel.get("topic", "?"), channel, log_time, bytes(frame[13:]))
        return None

    def wait_for_topics(self, topics: Iterable[str], timeout: float = 30.0) -> Dict[str, Dict[str, Any]]:
        """Read until every topic is advertised; TimeoutError names the missing ones."""
        wanted = set(topics)
        end = time.monotonic() + timeout
        while not wanted <= set(self.topics()):
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"not advertised within {timeout} s: {sorted(wanted - set(self.topics()))}")
            try:
                self._recv(remaining)
            except TimeoutError:
                continue
        return self.topics()

    def subscribe(self, topics: Iterable[str]) -> None:
        by_topic = self.topics()
        subscriptions = []
        for topic in topics:
            sub_id, self._next_id = self._next_id, self._next_id + 1
            self.subscriptions[sub_id] = int(by_topic[topic]["id"])
            subscriptions.append({"id": sub_id, "channelId": int(by_topic[topic]["id"])})
        self.ws.send(json.dumps({"op": "subscribe", "subscriptions": subscriptions}))

    def next(self, timeout: float = 10.0, topic: Optional[str] = None) -> Message:
        """The next message (on `topic`, when given); TimeoutError when none comes in time."""
        end = time.monotonic() + timeout
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no message{' on ' + topic if topic else ''} within {timeout} s")
            message = self._recv(remaining)
            if message is not None and (topic is None or message.topic == topic):
                return message

"""Publishers, subscriptions and timers of the local (dds / inproc) node."""
from __future__ import annotations

import collections
from typing import Any, Callable, Optional

from effdl_ros.runtime.local.qos import HistoryPolicy, QoSProfile


class Publisher:
    def __init__(self, node, msg_type: type, topic: str, qos_profile: QoSProfile) -> None:
        self.msg_type = msg_type
        self.topic = topic
        self.qos_profile = qos_profile
        self._node = node
        self._handle = node.context.transport.create_publisher(topic, msg_type, qos_profile)

    @property
    def topic_name(self) -> str:
        return self.topic

    def publish(self, msg: Any) -> None:
        """Send msg to every matching subscription; a wrong type raises TypeError, as in rclpy."""
        if not isinstance(msg, self.msg_type):
            raise TypeError(f"expected {self.msg_type.__name__} on {self.topic}, "
                            f"got {type(msg).__name__}")
        self._handle.publish(msg)

    def get_subscription_count(self) -> int:
        return self._node.context.transport.count_subscribers(self.topic)

    def destroy(self) -> None:
        self._handle.close()


class Subscription:
    def __init__(self, node, msg_type: type, topic: str, callback: Callable, qos_profile: QoSProfile,
                 raw: bool = False) -> None:
        self.msg_type = msg_type
        self.topic = topic
        self.callback = callback
        self.qos_profile = qos_profile
        self.raw = raw
        self._node = node
        depth = qos_profile.depth if qos_profile.history != HistoryPolicy.KEEP_ALL else None
        self._queue: collections.deque = collections.deque(maxlen=depth)
        self.node_name = node.get_fully_qualified_name()
        self._handle = node.context.transport.create_subscription(
            topic, msg_type, qos_profile, self._deliver, self._on_bad_payload, raw=raw)

    @property
    def topic_name(self) -> str:
        return self.topic

    def _deliver(self, msg: Any) -> None:
        condition = self._node.context.condition
        with condition:
            self._queue.append(msg)
            condition.notify_all()

    def _on_bad_payload(self, error: Exception) -> None:
        from effdl_ros.runtime.safety import record_drop

        record_drop(self._node, "undecodable_payload", f"{self.topic}: {error}")

    def ready(self) -> bool:
        return bool(self._queue)

    def execute(self) -> None:
        with self._node.context.condition:
            if not self._queue:
                return
            msg = self._queue.popleft()
        self.callback(msg)

    def destroy(self) -> None:
        self._handle.close()


class Timer:
    def __init__(self, callback: Callable, period_ns: int, clock, autostart: bool = True,
                 node_name: str = "") -> None:
        if period_ns <= 0:
            raise ValueError("a timer period must be positive")
        self.callback = callback
        self.node_name = node_name
        self.timer_period_ns = int(period_ns)
        self._clock = clock
        self._canceled = not autostart
        self._next_ns = self._clock.now().nanoseconds + self.timer_period_ns

    def ready(self) -> bool:
        return not self._canceled and self._clock.now().nanoseconds >= self._next_ns

    def execute(self) -> None:
        now = self._clock.now().nanoseconds
        missed = max(0, (now - self._next_ns) // self.timer_period_ns)
        self._next_ns += (missed + 1) * self.timer_period_ns  # skip missed periods, as rcl does
        self.callback()

    def time_until_next_call(self) -> Optional[int]:
        if self._canceled:
            return None
        return self._next_ns - self._clock.now().nanoseconds

    def cancel(self) -> None:
        self._canceled = True

    def reset(self) -> None:
        self._canceled = False
        self._next_ns = self._clock.now().nanoseconds + self.timer_period_ns

    def is_canceled(self) -> bool:
        return self._canceled

    def destroy(self) -> None:
        self._canceled = True

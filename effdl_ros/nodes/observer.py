"""observer: listens to the graph's outputs and keeps per-topic counts, rates and latencies.

The demo, replay and soak commands use it to see what the graph did; as a node it logs a rate line
every `log_period_sec`. Latency = receive time - header.stamp (same clock in one process).
"""
from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, List

from effdl_ros.nodekit.entry import run
from effdl_ros.nodekit.parameters import Param, declare
from effdl_ros.runtime import Node
from effdl_ros.runtime.messages import TYPES, get_message_class
from effdl_ros.runtime.qos import latched, qos_profile_sensor_data
from effdl_ros.runtime.safety import guarded

#: what the observer listens to by default: topic -> (short type name, QoS kind)
DEFAULT_TOPICS = {
    "image": ("Image", "sensor"),
    "tracks": ("Detection2DArray", "default"),
    "segmentation/labels": ("Image", "default"),
    "ddi/classification": ("Classification", "default"),
    "energy/budget": ("ResourceBudgetArray", "latched"),
    "energy/reports": ("EnergyReport", "default"),
    "trainer/model_update": ("ModelUpdate", "latched"),
}


@dataclass
class TopicStats:
    count: int = 0
    first_wall: float = 0.0
    last_wall: float = 0.0
    latencies_ms: Deque[float] = field(default_factory=lambda: collections.deque(maxlen=2000))
    last: Any = None

    def rate_hz(self) -> float:
        span = self.last_wall - self.first_wall
        return (self.count - 1) / span if self.count > 1 and span > 0 else 0.0


PARAMETERS = (
    Param("topics", list(DEFAULT_TOPICS), "topics to watch (type known to the runtime)"),
    Param("log_period_sec", 0.0, "log a line of rates this often (0 = never)", range=(0.0, 1e6)),
    Param("keep_messages", False, "keep every received message (tests, replay)"),
)


class ObserverNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("observer", **kwargs)
        declare(self, PARAMETERS)
        self.stats: Dict[str, TopicStats] = {}
        self.messages: Dict[str, List[Any]] = collections.defaultdict(list)
        self.latest_reports: Dict[str, Any] = {}  # node -> its newest EnergyReport
        for topic in self.get_parameter("topics").value:
            short, kind = DEFAULT_TOPICS.get(topic, ("Image", "sensor"))
            qos = {"sensor": qos_profile_sensor_data, "latched": latched(1)}.get(kind, 10)
            self.stats[topic] = TopicStats()
            self.create_subscription(get_message_class(TYPES[short]), topic,
                                     guarded(self, self._make_callback(topic)), qos)
        period = self.get_parameter("log_period_sec").value
        if period > 0:
            self.create_timer(period, self._log_rates)

    def _make_callback(self, topic: str):
        def on_message(msg: Any) -> None:
            stats = self.stats[topic]
            now = time.time()
            if stats.count == 0:
                stats.first_wall = now
            stats.count += 1
            stats.last_wall = now
            stats.last = msg
            if topic == "energy/reports":
                self.latest_reports[msg.node] = msg
            header = getattr(msg, "header", None)
            if header is not None and (header.stamp.sec or header.stamp.nanosec):
                sent = header.stamp.sec + header.stamp.nanosec * 1e-9
                stats.latencies_ms.append((self.get_clock().now().nanoseconds * 1e-9 - sent) * 1e3)
            if self.get_parameter("keep_messages").value:
                self.messages[topic].append(msg)

        on_message.__name__ = f"on_{topic.replace('/', '_')}"
        return on_message

    def _log_rates(self) -> None:
        parts = [f"{t} {s.rate_hz():.1f} Hz" for t, s in self.stats.items() if s.count]
        self.get_logger().info(" | ".join(parts) or "no messages yet")


NODE_CLASS = ObserverNode


def main(args=None) -> int:
    return run(ObserverNode, args)


if __name__ == "__main__":
    main()

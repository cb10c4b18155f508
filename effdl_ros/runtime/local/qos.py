"""QoS profiles with rclpy's names, for the dds and inproc backends.

Presets as in rclpy.qos: sensor data = best effort, keep last 5, volatile; the default = reliable,
keep last 10, volatile. `latched` = reliable + transient-local, so a late joiner gets the last value.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass


class HistoryPolicy(enum.IntEnum):
    SYSTEM_DEFAULT = 0
    KEEP_LAST = 1
    KEEP_ALL = 2


class ReliabilityPolicy(enum.IntEnum):
    SYSTEM_DEFAULT = 0
    RELIABLE = 1
    BEST_EFFORT = 2


class DurabilityPolicy(enum.IntEnum):
    SYSTEM_DEFAULT = 0
    TRANSIENT_LOCAL = 1
    VOLATILE = 2


@dataclass
class QoSProfile:
    """Keyword-only like rclpy.qos.QoSProfile; depth is the keep-last queue length (messages)."""

    history: HistoryPolicy = HistoryPolicy.KEEP_LAST
    depth: int = 10
    reliability: ReliabilityPolicy = ReliabilityPolicy.RELIABLE
    durability: DurabilityPolicy = DurabilityPolicy.VOLATILE

    def __init__(self, *, history: HistoryPolicy = HistoryPolicy.KEEP_LAST, depth: int = 10,
                 reliability: ReliabilityPolicy = ReliabilityPolicy.RELIABLE,
                 durability: DurabilityPolicy = DurabilityPolicy.VOLATILE, **_ignored) -> None:
        if history == HistoryPolicy.KEEP_LAST and depth < 1:
            raise ValueError("a keep-last QoS profile needs depth >= 1")
        self.history = HistoryPolicy(history)
        self.depth = int(depth)
        self.reliability = ReliabilityPolicy(reliability)
        self.durability = DurabilityPolicy(durability)

    @property
    def reliable(self) -> bool:
        return self.reliability != ReliabilityPolicy.BEST_EFFORT

    @property
    def transient_local(self) -> bool:
        return self.durability == DurabilityPolicy.TRANSIENT_LOCAL


def compatible(writer: QoSProfile, reader: QoSProfile) -> bool:
    """DDS request/offer rule: a reader may not ask for more than the writer offers."""
    if reader.reliable and not writer.reliable:
        return False
    if reader.transient_local and not writer.transient_local:
        return False
    return True


def as_profile(qos_or_depth) -> QoSProfile:
    """rclpy accepts a plain int as 'reliable, keep last N'."""
    if isinstance(qos_or_depth, QoSProfile):
        return qos_or_depth
    if isinstance(qos_or_depth, int):
        return QoSProfile(depth=qos_or_depth)
    raise TypeError(f"expected a QoSProfile or a history depth, got {type(qos_or_depth).__name__}")


qos_profile_sensor_data = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
qos_profile_system_default = QoSProfile(depth=10)
qos_profile_parameters = QoSProfile(depth=1000)


class QoSPresetProfiles(enum.Enum):
    SENSOR_DATA = qos_profile_sensor_data
    SYSTEM_DEFAULT = qos_profile_system_default
    PARAMETERS = qos_profile_parameters

"""Time, Duration and Clock with rclpy's interface; a context may run on simulated time."""
from __future__ import annotations

import time
from typing import Callable, Optional


class Duration:
    def __init__(self, *, seconds: float = 0, nanoseconds: int = 0) -> None:
        self.nanoseconds = int(seconds * 1e9) + int(nanoseconds)

    def to_msg(self):
        from effdl_ros.runtime.messages import Duration as DurationMsg

        sec, nsec = divmod(self.nanoseconds, 1_000_000_000)
        return DurationMsg(sec=sec, nanosec=nsec)

    def __repr__(self) -> str:
        return f"Duration(nanoseconds={self.nanoseconds})"


class Time:
    def __init__(self, *, seconds: float = 0, nanoseconds: int = 0) -> None:
        self.nanoseconds = int(seconds * 1e9) + int(nanoseconds)

    def seconds_nanoseconds(self):
        return divmod(self.nanoseconds, 1_000_000_000)

    def to_msg(self):
        from effdl_ros.runtime.messages import Time as TimeMsg

        sec, nsec = self.seconds_nanoseconds()
        return TimeMsg(sec=sec, nanosec=nsec)

    @classmethod
    def from_msg(cls, msg) -> "Time":
        return cls(seconds=msg.sec, nanoseconds=msg.nanosec)

    def __sub__(self, other):
        if isinstance(other, Time):
            return Duration(nanoseconds=self.nanoseconds - other.nanoseconds)
        return Time(nanoseconds=self.nanoseconds - other.nanoseconds)

    def __add__(self, other: Duration) -> "Time":
        return Time(nanoseconds=self.nanoseconds + other.nanoseconds)

    def __lt__(self, other: "Time") -> bool:
        return self.nanoseconds < other.nanoseconds

    def __le__(self, other: "Time") -> bool:
        return self.nanoseconds <= other.nanoseconds

    def __eq__(self, other) -> bool:
        return isinstance(other, Time) and self.nanoseconds == other.nanoseconds

    def __repr__(self) -> str:
        return f"Time(nanoseconds={self.nanoseconds})"


class SimulatedTime:
    """A time source that only moves when told: tests step a whole graph deterministically."""

    def __init__(self, start_sec: float = 1.0) -> None:
        self._ns = int(start_sec * 1e9)

    def now_ns(self) -> int:
        return self._ns

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("simulated time cannot go backwards")
        self._ns += int(round(seconds * 1e9))


class Clock:
    """ROS time: the wall clock, or the context's simulated time when it has one."""

    def __init__(self, now_ns: Optional[Callable[[], int]] = None) -> None:
        self._now_ns = now_ns or time.time_ns

    def now(self) -> Time:
        return Time(nanoseconds=self._now_ns())

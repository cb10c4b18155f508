"""A context: one middleware session (transport, ROS arguments, time source), as rclpy's Context."""
from __future__ import annotations

import threading
from typing import List, Optional, Sequence

from effdl_ros.runtime.local.arguments import RosArguments, parse
from effdl_ros.runtime.local.clock import SimulatedTime


class Context:
    def __init__(self, *, backend: Optional[str] = None,
                 simulated_time: Optional[SimulatedTime] = None) -> None:
        self.backend = backend
        self.simulated_time = simulated_time
        self.condition = threading.Condition()
        self.transport = None
        self.arguments = RosArguments()
        self.domain_id = 0
        self.nodes: List[object] = []
        self._ok = False
        self._shutdown_callbacks: List = []

    def init(self, args: Optional[Sequence[str]] = None, *, domain_id: Optional[int] = None) -> None:
        import os

        from effdl_ros.runtime.backend import selected

        if self._ok:
            raise RuntimeError("context is already initialized")
        self.arguments = parse(args)
        self.domain_id = int(domain_id if domain_id is not None else os.environ.get("ROS_DOMAIN_ID", 0))
        backend = self.backend or selected()
        if backend == "rclpy":
            backend = "dds"  # a local context can still talk to ROS 2 over DDS
        self.backend = backend
        if backend == "inproc":
            from effdl_ros.runtime.backends.inproc import InprocTransport

            self.transport = InprocTransport(self)
        elif backend == "dds":
            from effdl_ros.runtime.backends.dds import DdsTransport

            self.transport = DdsTransport(self)
        else:
            raise ValueError(f"unknown backend {backend!r}")
        self._ok = True

    def ok(self) -> bool:
        return self._ok

    def now_ns(self) -> int:
        import time

        return self.simulated_time.now_ns() if self.simulated_time else time.time_ns()

    def notify(self) -> None:
        with self.condition:
            self.condition.notify_all()

    def on_shutdown(self, callback) -> None:
        self._shutdown_callbacks.append(callback)

    def shutdown(self) -> None:
        if not self._ok:
            return
        self._ok = False
        for node in list(self.nodes):
            node.destroy_node()
        for callback in self._shutdown_callbacks:
            callback()
        if self.transport is not None:
            self.transport.shutdown()
        self.notify()

    def try_shutdown(self) -> None:
        self.shutdown()


_default: Optional[Context] = None


def get_default_context() -> Context:
    global _default
    if _default is None:
        _default = Context()
    return _default


def reset_default_context() -> None:
    global _default
    _default = None

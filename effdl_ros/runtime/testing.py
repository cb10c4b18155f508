"""An in-process graph for tests and the demo: a private context, optionally on simulated time."""
from __future__ import annotations

import time
from typing import Any, Callable, List

from effdl_ros.runtime.local.clock import SimulatedTime
from effdl_ros.runtime.local.context import Context
from effdl_ros.runtime.local.executor import SingleThreadedExecutor


class InprocGraph:
    """`with InprocGraph() as g: node = g.add(MyNode, parameter_overrides=[...]); g.spin_for(1.0)`.

    backend "inproc" (default) or "dds" runs the same nodes over a private context;
    simulated=True gives a clock that only moves with `step(seconds)`.
    """

    def __init__(self, backend: str = "inproc", simulated: bool = False, args=None) -> None:
        self.time = SimulatedTime() if simulated else None
        self.context = Context(backend=backend, simulated_time=self.time)
        self.context.init(args)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.nodes: List[Any] = []

    def add(self, node_class: Callable[..., Any], **kwargs) -> Any:
        node = node_class(context=self.context, **kwargs)
        self.executor.add_node(node)
        self.nodes.append(node)
        return node

    def spin_until_idle(self) -> int:
        return self.executor.spin_until_idle()

    def spin_for(self, seconds: float) -> None:
        """Wall time: spin for `seconds`. Simulated time: advance in small steps, running callbacks."""
        if self.time is None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                self.executor.spin_once(timeout_sec=max(0.0, min(0.05, end - time.monotonic())))
            return
        self.step(seconds)

    def step(self, seconds: float, dt: float = 0.01) -> None:
        if self.time is None:
            raise RuntimeError("step() needs simulated=True")
        remaining = seconds
        while remaining > 1e-12:
            delta = min(dt, remaining)
            self.time.advance(delta)
            remaining -= delta
            self.executor.spin_until_idle()

    def spin_until(self, predicate: Callable[[], bool], timeout_sec: float = 5.0) -> bool:
        end = time.monotonic() + timeout_sec
        while not predicate():
            if time.monotonic() > end:
                return False
            if self.time is not None:
                self.step(0.01)
            else:
                self.executor.spin_once(timeout_sec=0.02)
        return True

    def close(self) -> None:
        self.executor.shutdown()
        self.context.shutdown()

    def __enter__(self) -> "InprocGraph":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

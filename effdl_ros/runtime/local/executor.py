"""A single-threaded executor: runs ready subscription and timer callbacks one at a time.

Transports hand messages over from any thread (a DDS listener, a publisher in the same process);
the executor waits on the context's condition, so a callback always runs in the spinning thread.
"""
from __future__ import annotations

import time
from typing import List, Optional

from effdl_ros.runtime.local.context import get_default_context


class SingleThreadedExecutor:
    def __init__(self, *, context=None) -> None:
        self._context = context
        self._nodes: List = []
        self._turn = 0
        self._shutdown = False
        #: optional hook(node_name, entity, seconds) called after each callback: per-node latency
        self.on_callback = None

    @property
    def context(self):
        return self._context or get_default_context()

    def add_node(self, node) -> bool:
        if node in self._nodes:
            return False
        self._nodes.append(node)
        if self._context is None:
            self._context = node.context
        return True

    def remove_node(self, node) -> None:
        if node in self._nodes:
            self._nodes.remove(node)

    def get_nodes(self) -> List:
        return list(self._nodes)

    def _ready_work(self):
        entities = []
        for node in self._nodes:
            entities.extend(node._subscriptions)
            entities.extend(node._timers)
            entities.extend(getattr(node, "_services", ()))
        if not entities:
            return None
        n = len(entities)
        for k in range(n):
            entity = entities[(self._turn + k) % n]
            if entity.ready():
                self._turn = (self._turn + k + 1) % n
                return entity
        return None

    def _seconds_to_next_timer(self) -> Optional[float]:
        if self.context.simulated_time is not None:
            return None  # simulated time moves only when a test advances it
        waits = [t.time_until_next_call() for node in self._nodes for t in node._timers
                 if not t.is_canceled()]
        waits = [w for w in waits if w is not None]
        return max(0.0, min(waits) / 1e9) if waits else None

    def spin_once(self, timeout_sec: Optional[float] = None) -> bool:
        """Run at most one ready callback, waiting up to timeout_sec (None = until one is ready)."""
        condition = self.context.condition
        deadline = None if timeout_sec is None else time.monotonic() + max(0.0, timeout_sec)
        while not self._shutdown and self.context.ok():
            with condition:
                work = self._ready_work()
                if work is None:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    timer_wait = self._seconds_to_next_timer()
                    waits = [w for w in (remaining, timer_wait) if w is not None]
                    condition.wait(min(waits) if waits else None)
                    continue
            if self.on_callback is None:
                work.execute()
            else:
                start = time.perf_counter()
                work.execute()
                self.on_callback(work, time.perf_counter() - start)
            return True
        return False

    def spin(self) -> None:
        while not self._shutdown and self.context.ok():
            self.spin_once(timeout_sec=0.5)

    def spin_until_idle(self, max_callbacks: int = 100000) -> int:
        """Run every callback that is ready now (and what they trigger); returns how many ran."""
        count = 0
        while count < max_callbacks and self.spin_once(timeout_sec=0):
            count += 1
        return count

    def spin_until_future_complete(self, future, timeout_sec: Optional[float] = None) -> None:
        """Spin until future is done or timeout_sec has passed (rclpy's Executor method)."""
        deadline = None if timeout_sec is None else time.monotonic() + timeout_sec
        while not future.done() and not self._shutdown and self.context.ok():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            self.spin_once(timeout_sec=min(0.1, remaining) if remaining is not None else 0.1)

    def shutdown(self, timeout_sec: Optional[float] = None) -> bool:
        self._shutdown = True
        self.context.notify()
        return True



_global: Optional[SingleThreadedExecutor] = None


def get_global_executor() -> SingleThreadedExecutor:
    global _global
    if _global is None or _global._shutdown:
        _global = SingleThreadedExecutor()
    return _global

"""Services, clients and futures of the local (dds / inproc) node, with rclpy's names.

A Service is an executor entity like a subscription: requests queue up as they arrive and the
callback runs in the spinning thread, `callback(request, response) -> response`. A Client's future
is completed by the transport thread as soon as the reply arrives, so `client.call()` also works
from a thread that is not spinning (rclpy needs the node spun for that; spinning works here too).
"""
from __future__ import annotations

import collections
import threading
from typing import Any, Callable, Dict, List, Optional

from effdl_ros.runtime.local.qos import QoSProfile


class Future:
    """rclpy.task.Future's API: done(), result(), exception(), add_done_callback(), cancel()."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._result: Any = None
        self._exception: Optional[BaseException] = None
        self._cancelled = False
        self._callbacks: List[Callable[["Future"], None]] = []
        self._lock = threading.Lock()

    def done(self) -> bool:
        return self._event.is_set()

    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        self._finish(cancelled=True)

    def result(self) -> Any:
        if self._exception is not None:
            raise self._exception
        return self._result

    def exception(self) -> Optional[BaseException]:
        return self._exception

    def set_result(self, result: Any) -> None:
        self._finish(result=result)

    def set_exception(self, exception: BaseException) -> None:
        self._finish(exception=exception)

    def _finish(self, result: Any = None, exception: Optional[BaseException] = None,
                cancelled: bool = False) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self._result, self._exception, self._cancelled = result, exception, cancelled
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)

    def add_done_callback(self, callback: Callable[["Future"], None]) -> None:
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return
        callback(self)

    def wait(self, timeout_sec: Optional[float] = None) -> bool:
        return self._event.wait(timeout_sec)


class Service:
    def __init__(self, node, srv_type: Any, srv_name: str, callback: Callable[[Any, Any], Any],
                 qos_profile: QoSProfile) -> None:
        from effdl_ros.runtime.dds_services import services_for

        self.srv_type = srv_type
        self.srv_name = srv_name
        self.callback = callback
        self.qos_profile = qos_profile
        self.node_name = node.get_fully_qualified_name()
        self._node = node
        self._queue: collections.deque = collections.deque()
        self._handle = services_for(node.context.transport).create_service(
            srv_name, srv_type, qos_profile, self._deliver)

    @property
    def service_name(self) -> str:
        return self.srv_name

    def _deliver(self, request: Any, reply: Callable[[Any], None]) -> None:
        condition = self._node.context.condition
        with condition:
            self._queue.append((request, reply))
            condition.notify_all()

    def ready(self) -> bool:
        return bool(self._queue)

    def execute(self) -> None:
        with self._node.context.condition:
            if not self._queue:
                return
            request, reply = self._queue.popleft()
        try:
            response = self.callback(request, self.srv_type.Response())
        except Exception as err:  # noqa: BLE001 - a failing handler must not stop the node
            self._node.get_logger().error(
                f"service {self.srv_name}: the handler raised {type(err).__name__}: {err}; no reply sent")
            return
        reply(response)

    def destroy(self) -> None:
        self._handle.close()


class Client:
    def __init__(self, node, srv_type: Any, srv_name: str, qos_profile: QoSProfile) -> None:
        from effdl_ros.runtime.dds_services import services_for

        self.srv_type = srv_type
        self.srv_name = srv_name
        self.qos_profile = qos_profile
        self._node = node
        self._pending: Dict[int, Future] = {}
        self._lock = threading.Lock()
        self._handle = services_for(node.context.transport).create_client(
            srv_name, srv_type, qos_profile, self._on_response)

    def _on_response(self, seq: int, response: Any) -> None:
        with self._lock:
            future = self._pending.pop(seq, None)
        if future is not None:
            future.set_result(response)
            self._node.context.notify()

    def call_async(self, request: Any) -> Future:
        if not isinstance(request, self.srv_type.Request):
            raise TypeError(f"expected {self.srv_type.Request.__name__} for {self.srv_name}, "
                            f"got {type(request).__name__}")
        future = Future()
        # the lock is held until the future is registered: a reply (on the transport's thread)
        # that comes back before send() returns waits for it in _on_response
        with self._lock:
            seq = self._handle.send(request)
            self._pending[seq] = future
        return future

    def call(self, request: Any, timeout_sec: Optional[float] = None) -> Any:
        """Send and wait for the reply; None after timeout_sec (rclpy blocks forever without one)."""
        future = self.call_async(request)
        if not future.wait(timeout_sec):
            with self._lock:
                for seq, pending in list(self._pending.items()):
                    if pending is future:
                        del self._pending[seq]
            return None
        return future.result()

    def service_is_ready(self) -> bool:
        return self._handle.is_ready()

    def wait_for_service(self, timeout_sec: Optional[float] = None) -> bool:
        import time

        deadline = None if timeout_sec is None else time.monotonic() + timeout_sec
        while not self.service_is_ready():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def destroy(self) -> None:
        self._handle.close()

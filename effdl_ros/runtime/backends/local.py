"""The dds and inproc backends: our implementation of the same names rclpy exports."""
from __future__ import annotations

from typing import List, Optional

from effdl_ros.runtime.local.clock import Clock, Duration, Time  # noqa: F401
from effdl_ros.runtime.local.context import Context, get_default_context, reset_default_context
from effdl_ros.runtime.local.executor import SingleThreadedExecutor, get_global_executor
from effdl_ros.runtime.local.node import Node  # noqa: F401
from effdl_ros.runtime.local.parameters import (  # noqa: F401
    Parameter,
    ParameterDescriptor,
    SetParametersResult,
)


def init(args: Optional[List[str]] = None, *, context: Optional[Context] = None,
         domain_id: Optional[int] = None, signal_handler_options=None) -> None:
    (context or get_default_context()).init(args, domain_id=domain_id)


def ok(*, context: Optional[Context] = None) -> bool:
    return (context or get_default_context()).ok()


def shutdown(*, context: Optional[Context] = None, uninstall_handlers: Optional[bool] = None) -> None:
    ctx = context or get_default_context()
    ctx.shutdown()
    if context is None:
        reset_default_context()


def spin_once(node: Node, *, executor: Optional[SingleThreadedExecutor] = None,
              timeout_sec: Optional[float] = None) -> None:
    executor = executor or get_global_executor()
    executor.add_node(node)
    try:
        executor.spin_once(timeout_sec=timeout_sec)
    finally:
        executor.remove_node(node)


def spin(node: Node, executor: Optional[SingleThreadedExecutor] = None) -> None:
    executor = executor or get_global_executor()
    executor.add_node(node)
    try:
        executor.spin()
    finally:
        executor.remove_node(node)


def spin_until_future_complete(node: Node, future, executor: Optional[SingleThreadedExecutor] = None,
                               timeout_sec: Optional[float] = None) -> None:
    executor = executor or get_global_executor()
    executor.add_node(node)
    try:
        executor.spin_until_future_complete(future, timeout_sec=timeout_sec)
    finally:
        executor.remove_node(node)

"""The one seam to the middleware. Node code imports only from here.

`from effdl_ros.runtime import Node, init, spin, ...` gives rclpy's own classes under real ROS 2
(backend rclpy) and our implementation with the same signatures on the dds and inproc backends.
The backend is chosen by effdl_ros.runtime.backend (--backend, EFFDL_ROS_BACKEND, else rclpy where
it imports, else dds).
"""
from __future__ import annotations

from typing import Callable, List, Optional

from effdl_ros.runtime.backend import (
    selected as selected_backend,  # noqa: F401 (public)
    uses_rclpy,
)

if uses_rclpy():
    from effdl_ros.runtime.backends.rclpy import (  # noqa: F401
        Clock,
        Context,
        Duration,
        Node,
        Parameter,
        ParameterDescriptor,
        SetParametersResult,
        SingleThreadedExecutor,
        Time,
        init,
        ok,
        shutdown,
        spin,
        spin_once,
        spin_until_future_complete,
    )
else:
    from effdl_ros.runtime.backends.local import (  # noqa: F401
        Clock,
        Context,
        Duration,
        Node,
        Parameter,
        ParameterDescriptor,
        SetParametersResult,
        SingleThreadedExecutor,
        Time,
        init,
        ok,
        shutdown,
        spin,
        spin_once,
        spin_until_future_complete,
    )


def run_node(node_class: Callable[..., "Node"], args: Optional[List[str]] = None) -> int:
    """Entry point of a node executable: init, spin until Ctrl-C / shutdown, clean up.

    A Ctrl-C in the terminal of `ros2 launch` reaches each node twice (from the terminal and
    forwarded by launch): further SIGINTs are ignored while the node cleans up, so the second one
    cannot interrupt destroy_node() with a KeyboardInterrupt traceback and exit code -2.
    A Ctrl-C while the node is still starting (loading its model) shuts rclpy's context, and the
    constructor's next create_subscription fails: that is a clean stop too, not a crash.
    """
    import signal
    import sys
    import threading

    init(args=args if args is not None else sys.argv)
    node = None
    try:
        try:
            node = node_class()
        except Exception:  # noqa: BLE001 - only when a shutdown came first (below)
            if ok():
                raise
            sys.stderr.write(f"{getattr(node_class, '__name__', 'node')}: shut down while starting\n")
            return 0
        spin(node)
    except (KeyboardInterrupt, *_external_shutdown()):
        pass
    finally:
        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main_thread else None
        try:
            if node is not None:
                node.destroy_node()
            if ok():
                shutdown()
        finally:
            if main_thread:
                signal.signal(signal.SIGINT, previous)
    return 0


def _external_shutdown() -> tuple:
    """rclpy's spin() raises ExternalShutdownException when its SIGINT handler shut the context."""
    if not uses_rclpy():
        return ()
    try:
        from rclpy.executors import ExternalShutdownException
    except ImportError:
        return ()
    return (ExternalShutdownException,)

"""Lifecycle (managed) nodes: rclpy.lifecycle under real ROS 2, the same names on dds and inproc.

    from effdl_ros.runtime.lifecycle import LifecycleNode, State, TransitionCallbackReturn

See effdl_ros.runtime.local.lifecycle for the state machine the dds and inproc backends implement.
"""
from __future__ import annotations

from effdl_ros.runtime.backend import uses_rclpy

if uses_rclpy():
    from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn  # noqa: F401
else:
    from effdl_ros.runtime.local.lifecycle import (  # noqa: F401
        ACTIVE,
        FINALIZED,
        INACTIVE,
        UNCONFIGURED,
        LifecycleError,
        LifecycleNode,
        LifecyclePublisher,
        State,
        TransitionCallbackReturn,
    )

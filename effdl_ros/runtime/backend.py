"""Which middleware this process uses: rclpy (real ROS 2), dds (Cyclone DDS) or inproc.

Order: an explicit choice (`--backend`, select()), then EFFDL_ROS_BACKEND, then rclpy where it
imports, else dds. Decided once per process, before nodes are created.
"""
from __future__ import annotations

import importlib.util
import os
from typing import Optional

BACKENDS = ("rclpy", "dds", "inproc")
_chosen: Optional[str] = None


def select(name: str) -> None:
    """Choose the backend for this process (call before importing node modules)."""
    global _chosen
    if name not in BACKENDS:
        from effdl_ros.errors import ConfigError

        raise ConfigError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    os.environ["EFFDL_ROS_BACKEND"] = name
    _chosen = name


def rclpy_available() -> bool:
    return importlib.util.find_spec("rclpy") is not None


def selected() -> str:
    global _chosen
    if _chosen is None:
        env = os.environ.get("EFFDL_ROS_BACKEND", "").strip()
        if env:
            select(env)
        else:
            _chosen = "rclpy" if rclpy_available() else "dds"
    return _chosen


def uses_rclpy() -> bool:
    return selected() == "rclpy"

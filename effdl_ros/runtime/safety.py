"""Bad input never takes a node down: a callback that fails on a message drops it, counts it by
kind and logs it at most once per few seconds. Works on every backend (rclpy's nodes too).

Drops are also counted in diagnostics: once a node has dropped anything it publishes, every
DIAGNOSTICS_PERIOD_SEC while the counts change (and every 10 periods otherwise), one
diagnostic_msgs/DiagnosticStatus "<node>: dropped messages" on /diagnostics with one key per kind,
so `ros2 topic echo /diagnostics`, rqt_robot_monitor and `effdl-ros fuzz --backend dds` see them.
"""
from __future__ import annotations

import collections
import functools
import math
import time
from typing import Any, Callable, Dict

_ATTR = "_effdl_drop_counts"
_DIAG = "_effdl_drop_diagnostics"
_LOGGED = "_effdl_drop_logged"
LOG_EVERY_SEC = 5.0
MAX_DETAIL_CHARS = 300
DIAGNOSTICS_PERIOD_SEC = 1.0
DIAGNOSTICS_NAME_SUFFIX = ": dropped messages"


def drop_counts(node: Any) -> Dict[str, int]:
    """Dropped messages by kind, for diagnostics."""
    return dict(getattr(node, _ATTR, {}))


def record_drop(node: Any, kind: str, detail: str) -> None:
    """Count one dropped message of this kind and log it, at most once per LOG_EVERY_SEC per kind
    (a flood of one kind never hides the first message of another)."""
    counts = getattr(node, _ATTR, None)
    if counts is None:
        counts = collections.Counter()
        setattr(node, _ATTR, counts)
    counts[kind] += 1
    logged = getattr(node, _LOGGED, None)
    if logged is None:
        logged = {}
        setattr(node, _LOGGED, logged)
    now = time.monotonic()
    if now - logged.get(kind, -math.inf) < LOG_EVERY_SEC:
        return
    logged[kind] = now
    if len(detail) > MAX_DETAIL_CHARS:  # a lying message may carry megabytes of text: log a prefix
        detail = detail[:MAX_DETAIL_CHARS] + f"... ({len(detail)} characters)"
    node.get_logger().error(f"dropped a message ({kind}, {counts[kind]} so far): {detail}")


def _ensure_diagnostics(node: Any) -> None:
    """Create the node's drop-diagnostics publisher and timer once (in the thread building the node:
    a DDS listener thread, where undecodable payloads are counted, must not create entities)."""
    if getattr(node, _DIAG, None) is not None:
        return
    try:
        from effdl_ros.runtime.messages import DiagnosticArray

        state = {"pub": node.create_publisher(DiagnosticArray, "/diagnostics", 10), "sent": None, "idle": 0}
        setattr(node, _DIAG, state)
        node.create_timer(DIAGNOSTICS_PERIOD_SEC, lambda: publish_drop_diagnostics(node))
    except Exception:  # noqa: BLE001 - diagnostics are a convenience, never a reason not to start
        setattr(node, _DIAG, False)


def publish_drop_diagnostics(node: Any, force: bool = False) -> bool:
    """Publish the drop counts now if there are any and they changed (or force); True if sent."""
    state = getattr(node, _DIAG, None)
    counts = drop_counts(node)
    if not state or not counts:
        return False
    state["idle"] += 1
    if not force and counts == state["sent"] and state["idle"] < 10:
        return False
    from effdl_ros.runtime.messages import DiagnosticArray, DiagnosticStatus, Header, KeyValue

    name = node.get_fully_qualified_name()
    status = DiagnosticStatus(level=DiagnosticStatus.WARN, name=name + DIAGNOSTICS_NAME_SUFFIX,
                              message=f"{sum(counts.values())} dropped", hardware_id=name,
                              values=[KeyValue(key=k, value=str(v)) for k, v in sorted(counts.items())])
    state["pub"].publish(DiagnosticArray(header=Header(stamp=node.get_clock().now().to_msg()), status=[status]))
    state["sent"], state["idle"] = counts, 0
    return True


def guarded(node: Any, callback: Callable[[Any], None]) -> Callable[[Any], None]:
    """Wrap a subscription callback: an exception drops that message, the node keeps running.

    The kind counted is "<callback>:<exception class>" (e.g. "on_image:ImageConversionError");
    KeyboardInterrupt and SystemExit still stop the node.
    """
    _ensure_diagnostics(node)

    @functools.wraps(callback)
    def wrapper(msg: Any) -> None:
        try:
            callback(msg)
        except Exception as err:  # noqa: BLE001 - the whole point: no message may crash a node
            record_drop(node, f"{callback.__name__}:{type(err).__name__}", str(err) or repr(err))

    return wrapper

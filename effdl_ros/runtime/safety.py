"""Bad input never takes a node down: a callback that fails on a message drops it, counts it by
kind and logs it at most once per few seconds. Works on every backend (rclpy's nodes too)."""
from __future__ import annotations

import collections
import functools
from typing import Any, Callable, Dict

_ATTR = "_effdl_drop_counts"
LOG_EVERY_SEC = 5.0


def drop_counts(node: Any) -> Dict[str, int]:
    """Dropped messages by kind, for diagnostics."""
    return dict(getattr(node, _ATTR, {}))


def record_drop(node: Any, kind: str, detail: str) -> None:
    counts = getattr(node, _ATTR, None)
    if counts is None:
        counts = collections.Counter()
        setattr(node, _ATTR, counts)
    counts[kind] += 1
    node.get_logger().error(
        f"dropped a message ({kind}, {counts[kind]} so far): {detail}",
        throttle_duration_sec=LOG_EVERY_SEC)


def guarded(node: Any, callback: Callable[[Any], None]) -> Callable[[Any], None]:
    """Wrap a subscription callback: an exception drops that message, the node keeps running.

    The kind counted is the exception's class, or for effdl_ros errors their own one-sentence text's
    class; KeyboardInterrupt and SystemExit still stop the node.
    """

    @functools.wraps(callback)
    def wrapper(msg: Any) -> None:
        try:
            callback(msg)
        except Exception as err:  # noqa: BLE001 - the whole point: no message may crash a node
            record_drop(node, f"{callback.__name__}:{type(err).__name__}", str(err) or repr(err))

    return wrapper

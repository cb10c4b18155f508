"""rclpy-style loggers: get_logger().info(msg, throttle_duration_sec=..., once=..., skip_first=...)."""
from __future__ import annotations

import logging
import sys
import time
from typing import Dict, Tuple

_configured = False


def _configure() -> None:
    global _configured
    if _configured:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(levelname)s] [%(created).3f] [%(name)s]: %(message)s"))
    root = logging.getLogger("effdl_ros.nodes")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    root.propagate = False
    _configured = True


class Logger:
    """The node logger; throttling and once-only are keyed by the call site, as in rclpy."""

    def __init__(self, name: str) -> None:
        _configure()
        self.name = name
        self._logger = logging.getLogger("effdl_ros.nodes." + name.replace("/", ".").strip("."))
        self._logger.name = name
        self._last: Dict[Tuple[str, int], float] = {}
        self._seen: set = set()

    def get_child(self, suffix: str) -> "Logger":
        return Logger(f"{self.name}.{suffix}")

    def set_level(self, level: int) -> None:
        self._logger.setLevel(level)

    def _log(self, level: int, message: str, throttle_duration_sec=None, once=False,
             skip_first=False) -> bool:
        frame = sys._getframe(2)
        site = (frame.f_code.co_filename, frame.f_lineno)
        if once or skip_first:
            first = site not in self._seen
            self._seen.add(site)
            if (once and not first) or (skip_first and first):
                return False
        if throttle_duration_sec:
            now = time.monotonic()
            if now - self._last.get(site, -1e18) < throttle_duration_sec:
                return False
            self._last[site] = now
        self._logger.log(level, message)
        return True

    def debug(self, message, **kw) -> bool:
        return self._log(logging.DEBUG, message, **kw)

    def info(self, message, **kw) -> bool:
        return self._log(logging.INFO, message, **kw)

    def warning(self, message, **kw) -> bool:
        return self._log(logging.WARNING, message, **kw)

    warn = warning

    def error(self, message, **kw) -> bool:
        return self._log(logging.ERROR, message, **kw)

    def fatal(self, message, **kw) -> bool:
        return self._log(logging.CRITICAL, message, **kw)

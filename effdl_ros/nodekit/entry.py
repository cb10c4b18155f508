"""The entry point of every node executable: runtime.run_node plus what a robot needs around it.

- SIGTERM and SIGHUP stop the node as cleanly as Ctrl-C (rclpy handles SIGTERM itself);
- started by a supervisor (`effdl-ros run`), the node stops when the supervisor is gone;
- a configuration or data error at start-up is one sentence on stderr and exit code 2, never a
  traceback (the supervisor then stops the graph instead of respawning the node in a loop);
- once constructed, the node logs one "ready" line (model, load time, first budget) and, under a
  supervisor, leaves a marker so that `effdl-ros run` can say "graph ready".
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, List, Optional

from effdl_ros.errors import EffdlError

#: set by the supervisor: the pid the node must not outlive
SUPERVISOR_PID_ENV = "EFFDL_ROS_SUPERVISOR_PID"
#: set by the supervisor: a folder where the node writes <name>.ready, or <name>.error (its sentence)
STATUS_DIR_ENV = "EFFDL_ROS_STATUS_DIR"


def ready_line(node: Any, seconds: float) -> str:
    """'ready in 1.2 s: model models/x.pt; budget default (compute 1.00) until energy/budget'."""
    parts = []
    model = getattr(node, "model_path", None)
    if model:
        parts.append(f"model {model}")
    client = getattr(node, "budget", None)
    current = getattr(client, "current", None)
    if callable(current):
        budget = current()
        limits = [f"compute {budget.compute_fraction:.2f}"]
        if budget.power_w != float("inf"):
            limits.append(f"{budget.power_w:.3g} W")
        parts.append(f"first budget {budget.source} ({', '.join(limits)})")
    return f"ready in {seconds:.1f} s" + (": " + "; ".join(parts) if parts else "")


def _status_file(node_name: str, kind: str) -> Optional[Path]:
    folder = os.environ.get(STATUS_DIR_ENV)
    return Path(folder) / f"{node_name}.{kind}" if folder else None


def _stop_signals() -> None:
    """SIGTERM/SIGHUP -> KeyboardInterrupt in the main thread, run_node's clean path."""
    def handler(signum, _frame) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, handler)


def watch_supervisor(expected_pid: int, *, interval: float = 0.5, grace: float = 5.0) -> threading.Thread:
    """Once the supervisor is gone (this process re-parented), stop cleanly with SIGTERM, and end
    the process `grace` seconds later if it still runs: the portable line behind the parent-death
    signal that the supervisor asks Linux for."""
    def loop() -> None:
        while os.getppid() == expected_pid:
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace)
        os._exit(1)

    thread = threading.Thread(target=loop, name="supervisor-watch", daemon=True)
    thread.start()
    return thread


def _config_errors() -> tuple:
    from effdl_ros.runtime.local.parameters import ParameterException

    errors: List[type] = [EffdlError, ParameterException]
    try:
        from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException

        errors += [InvalidParameterTypeException, InvalidParameterValueException]
    except ImportError:
        pass
    return tuple(errors)


def run(node_class: Callable[..., Any], args: Optional[List[str]] = None) -> int:
    from effdl_ros.runtime import run_node

    if threading.current_thread() is threading.main_thread():
        _stop_signals()
    supervisor = os.environ.get(SUPERVISOR_PID_ENV)
    if supervisor:
        watch_supervisor(int(supervisor))
    started = time.monotonic()
    name = getattr(node_class, "__name__", "node")

    def build():
        node = node_class()
        seconds = time.monotonic() - started
        node.get_logger().info(ready_line(node, seconds))
        marker = _status_file(node.get_name(), "ready")
        if marker is not None:
            marker.write_text(f"{seconds:.3f}\n", encoding="utf-8")
        return node

    build.__name__ = name  # run_node names the node class in its messages
    try:
        return run_node(build, args)
    except _config_errors() as err:
        sentence = str(err).strip() or type(err).__name__
        sys.stderr.write(f"{name}: error: {sentence}\n")
        marker = _status_file(_node_name_from(args), "error")
        if marker is not None:
            marker.write_text(sentence + "\n", encoding="utf-8")
        raise SystemExit(2) from None


def _node_name_from(args: Optional[List[str]]) -> str:
    """The node name a supervisor gave with `-r __node:=NAME` (the marker's file name)."""
    argv = list(args if args is not None else sys.argv)
    for i, token in enumerate(argv[:-1]):
        if token in ("-r", "--remap") and argv[i + 1].startswith("__node:="):
            return argv[i + 1].split(":=", 1)[1]
    return "node"

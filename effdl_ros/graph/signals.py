"""Stop requests: SIGTERM (docker stop, systemd), SIGHUP (a closed terminal) and SIGINT (Ctrl-C)
all end a graph the same clean way, and no node process outlives its supervisor."""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Iterator

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class StopRequested(KeyboardInterrupt):
    """A stop signal arrived; a KeyboardInterrupt so every existing Ctrl-C path cleans up too."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def stop_on_signals(signals=STOP_SIGNALS) -> Iterator[None]:
    """Within the block, the first stop signal raises StopRequested in the main thread; later ones
    are ignored so that they cannot interrupt the clean-up. Handlers are restored on exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in signals}

    def handler(signum, _frame) -> None:
        for s in signals:
            signal.signal(s, signal.SIG_IGN)
        raise StopRequested(signum)

    for s in signals:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)


def child_setup(parent_pid: int):
    """A preexec_fn for a node process: its own process group (the supervisor alone forwards the
    terminal's Ctrl-C, once) and, on Linux, SIGTERM when the supervisor dies, even by SIGKILL."""

    def setup() -> None:
        os.setpgid(0, 0)
        if sys.platform.startswith("linux"):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent_pid:  # the supervisor died before prctl took effect
            os._exit(1)

    return setup

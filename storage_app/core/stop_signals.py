"""Stop signals (SIGTERM, SIGINT) taken by a thread of their own, never by a Python signal handler.

A Python signal handler runs in the main thread between two bytecodes, which
can be inside ``threading.Event.wait`` while that thread holds the event's
lock. A handler that then sets the same event (``stopping.set()``) waits for a
lock its own thread holds: the process hangs for good and never stops. So the
long-running commands block the stop signals in every thread and take them in
a daemon thread with ``sigwait``, where setting an event is an ordinary call.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


def stop_on_signals(on_stop: Callable[[], None]) -> None:
    """Call ``on_stop`` from a thread of its own at each SIGTERM or SIGINT.

    Call it before the process starts any thread: threads inherit the blocked
    signals, and a thread started earlier could still receive one, and the
    process die of its default action. A child process started afterwards inherits them
    blocked too; unblock them in the child (``unblock_stop_signals``) unless
    it takes them the same way.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)

    def take_signals() -> None:
        while True:
            signal.sigwait(STOP_SIGNALS)
            on_stop()

    threading.Thread(target=take_signals, name="stop-signals", daemon=True).start()


def unblock_stop_signals() -> None:
    """In a child before exec: let it receive the stop signals the way it chooses."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

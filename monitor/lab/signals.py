"""SIGINT and SIGTERM as an exception in the lab's main thread, held back where it would break.

``santinel lab run`` turns a stop signal into ``Interrupted`` (``raised_as_interrupted``) so
that every ``finally`` of the run cleans up. Python runs a signal handler between any two
bytecodes of the main thread, the standard library's included. Raised while ``Thread.start``
waits for its thread, inside ``threading.Condition.wait``, the exception skips re-taking the
condition's lock, the ``with`` around it releases the lock anyway, and the run fails with
``RuntimeError: release unlocked lock`` instead of cleaning up.

Promise: inside ``held()`` a stop signal is not raised; it is raised as ``Interrupted`` as soon
as the outermost ``held()`` ends, so no signal is lost and none is raised twice. Outside
``raised_as_interrupted`` (another thread, a library user of the lab) ``held()`` does nothing.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
JOIN_SLICE = 0.2  # seconds a stop signal may wait while a thread is joined


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; the message is the signal's name."""


class _Hold:
    """How many ``held()`` the main thread is in, and the signal that arrived meanwhile."""

    depth = 0
    pending: str | None = None


def _raise_or_hold(signum: int, _frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    if _Hold.depth:
        _Hold.pending = _Hold.pending or name
        return
    raise Interrupted(name)


@contextlib.contextmanager
def raised_as_interrupted() -> Iterator[None]:
    """Turn SIGTERM and SIGINT into ``Interrupted`` in the main thread while inside."""
    _Hold.depth, _Hold.pending = 0, None
    with _handled_by(_raise_or_hold):
        yield


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Hold a stop signal back until the end of this block, then raise it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _Hold.depth += 1
    try:
        yield
    finally:
        _Hold.depth -= 1
        if not _Hold.depth and _Hold.pending:
            name, _Hold.pending = _Hold.pending, None
            raise Interrupted(name)


def ignored() -> contextlib.AbstractContextManager[None]:
    """Ignore SIGTERM and SIGINT while inside (cleanup a second Ctrl-C must not cut short)."""
    return _handled_by(signal.SIG_IGN)


@contextlib.contextmanager
def _handled_by(handler: Any) -> Iterator[None]:
    """``handler`` for SIGTERM and SIGINT while inside, in the main thread (the only one
    Python lets set a handler); the previous handlers again after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def start_thread(target: Callable[..., Any], *args: Any) -> threading.Thread:
    """Start a daemon thread running ``target(*args)``; a stop signal waits until it runs."""
    thread = threading.Thread(target=target, args=args, daemon=True)
    with held():
        thread.start()
    return thread


def join_thread(thread: threading.Thread, timeout: float) -> None:
    """Wait up to ``timeout`` seconds for ``thread``; a stop signal is raised between waits."""
    # Python 3.11's join, cut short by an exception, releases the lock of a thread still
    # running (its repair of bpo-45274), so each short wait is held whole.
    deadline = time.monotonic() + timeout
    while thread.is_alive():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        with held():
            thread.join(timeout=min(left, JOIN_SLICE))

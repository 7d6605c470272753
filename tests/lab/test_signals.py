"""A stop signal in the lab's main thread becomes ``Interrupted`` at a point where raising breaks
nothing: not inside ``Thread.start``, not inside ``Thread.join``, not between a child's fork
and its recording. Each case runs in a fresh interpreter, so that a signal never reaches the
test runner and the injected trace cannot leak into other tests."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from monitor.lab.signals import Interrupted, held, raised_as_interrupted

from .conftest import REPO


def run_python(script: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_a_signal_while_a_thread_starts_is_raised_as_interrupted_once_it_has_started() -> None:
    # The trace raises SIGINT exactly where CI once caught it: Thread.start waiting for its
    # thread, about to take the condition's lock again. Raised there, it was "RuntimeError:
    # release unlocked lock" and `santinel lab run` exited 70 instead of 130.
    outcome = run_python(
        """
        import signal, sys, threading
        from monitor.lab.signals import Interrupted, raised_as_interrupted, start_thread

        injected = []
        def inject(frame, event, arg):
            if event == "call" and frame.f_code.co_name == "_acquire_restore" and not injected:
                injected.append(True)
                signal.raise_signal(signal.SIGINT)
        ran = threading.Event()
        with raised_as_interrupted():
            sys.settrace(inject)
            try:
                start_thread(ran.set)
            except Interrupted as error:
                print("Interrupted", error)
            except RuntimeError as error:
                print("RuntimeError", error)
            finally:
                sys.settrace(None)
        print("injected" if injected else "not injected", "ran" if ran.wait(5) else "lost")
        """
    )
    assert outcome.splitlines() == ["Interrupted SIGINT", "injected ran"]


def test_a_signal_while_a_thread_is_joined_leaves_the_running_thread_running() -> None:
    # Python 3.11's join, cut short by an exception, releases the lock of the thread it waits
    # for: a thread still running then counts as finished.
    outcome = run_python(
        """
        import os, signal, threading
        from monitor.lab.signals import Interrupted, join_thread, raised_as_interrupted

        release = threading.Event()
        worker = threading.Thread(target=release.wait, daemon=True)
        worker.start()
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
        with raised_as_interrupted():
            try:
                join_thread(worker, timeout=20)
                print("joined")
            except Interrupted as error:
                print("Interrupted", error)
        print("alive" if worker.is_alive() else "counted as finished")
        release.set()
        worker.join(5)
        print("alive" if worker.is_alive() else "finished")
        """
    )
    assert outcome.splitlines() == ["Interrupted SIGINT", "alive", "finished"]


def test_a_signal_while_a_lab_process_starts_is_raised_after_the_process_is_recorded(
    tmp_path: Path,
) -> None:
    # Raised inside Popen after the fork (the trace raises it as Popen closes the child's ends of
    # the pipes), the child was lost: close() could not stop it.
    outcome = run_python(
        f"""
        import signal, sys
        from pathlib import Path
        from monitor.lab.netns import Lab
        from monitor.lab.signals import Interrupted, raised_as_interrupted

        injected = []
        def inject(frame, event, arg):
            if event == "call" and frame.f_code.co_name == "_close_pipe_fds" and not injected:
                injected.append(True)
                signal.raise_signal(signal.SIGINT)
        lab = Lab(Path({str(tmp_path)!r}))
        with raised_as_interrupted():
            sys.settrace(inject)
            try:
                lab.spawn("sleeper", "no-such-namespace", ["sleep", "30"])
                print("started")
            except Interrupted as error:
                print("Interrupted", error)
            finally:
                sys.settrace(None)
        print(len(lab.processes), "recorded")
        for process in lab.processes:
            lab.stop(process, grace=2.0)
        """
    )
    assert outcome.splitlines() == ["Interrupted SIGINT", "1 recorded"]


def test_a_signal_inside_nested_holds_is_raised_once_when_the_outermost_ends() -> None:
    inner_ended = False
    with raised_as_interrupted():
        with pytest.raises(Interrupted, match="SIGTERM"):
            with held():
                with held():
                    signal.raise_signal(signal.SIGTERM)
                    signal.raise_signal(signal.SIGINT)
                inner_ended = True  # and nothing raised yet: the outer hold still holds
            pytest.fail("the held signal was not raised when the outer hold ended")
        assert inner_ended
        with held():
            pass  # nothing arrived since: nothing is raised again


def test_holding_is_a_no_op_without_the_handlers() -> None:
    with held():
        value = 1
    assert value == 1

"""Run the detectors over capture files, the way the daemon runs them live.

``replay(paths, ...)`` feeds the captures through the pipeline; each closed window is scored
by the ``DetectorSuite`` and then (unless ``learn`` is off) learned by the baselines, in
capture time. ``santinel analyze --state DB`` and the evaluation in ``bench/`` use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from monitor.baseline import BaselineStore
from monitor.detectors import DetectorSuite
from monitor.model import WindowProfile


def replay(
    paths: Iterable[Path | str],
    suite: DetectorSuite,
    store: BaselineStore | None,
    signatures: Any = None,
    window_seconds: float = 60.0,
    learn: bool = True,
) -> Any:
    """The ``monitor.pipeline.Analysis`` of the captures, with the suite's events in its
    book (and ``store`` updated when ``learn``)."""
    from monitor.pipeline import analyze_captures

    def on_window(profiles: Sequence[WindowProfile], analysis: Any) -> None:
        suite.on_window(profiles, analysis, store, learn=learn)

    return analyze_captures(
        paths, signatures=signatures, window_seconds=window_seconds, on_window=on_window
    )

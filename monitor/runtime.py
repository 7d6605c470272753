"""Process-wide settings for a long-running analysis: the garbage collector.

The pipeline creates long-lived objects in bursts (flow records, facts, window profiles).
CPython's default collector runs a young-generation pass every 700 allocations and, as the
heap grows, promotes those bursts into ever more expensive full passes: on a busy capture
that was a third of the analysis time. Santinel's objects hold no reference cycles worth
collecting often, so the collector runs far less often, and what exists when the process has
started (modules, the signature library) is moved out of its sight.

Promise: memory is still reclaimed (reference counting frees almost everything at once; the
collector still runs, only less often).
"""

from __future__ import annotations

import gc

YOUNG_GENERATION_THRESHOLD = 1_000_000


def tune_garbage_collector() -> None:
    """Collect rarely, and never scan what exists at start-up again."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, old)

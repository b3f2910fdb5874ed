"""Where a run's time goes: seconds per named phase (training steps, validation, evaluation,
each output file), summed per fold.

The training loop, its callbacks and the output writers record their phases here; it costs
a dictionary update per phase. With ``TIMNET_TIMINGS=<file>`` in the environment the totals
are written to that JSON file when the process exits (``benchmarks/bench_protocol.py`` reads
them to print its per-fold breakdown); otherwise nothing is written.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

ENV = "TIMNET_TIMINGS"
RUN = 0  # the "fold" of what belongs to the whole run (process start, run-level outputs)

_lock = threading.Lock()
_seconds: dict[tuple[str, int], float] = {}
_marks: dict[str, float] = {}


def record(phase: str, seconds: float, fold: int = RUN) -> None:
    """Add ``seconds`` to ``phase`` of ``fold`` (thread-safe: background writers record too)."""
    with _lock:
        _seconds[(phase, fold)] = _seconds.get((phase, fold), 0.0) + seconds


@contextmanager
def phase(name: str, fold: int = RUN) -> Iterator[None]:
    """Time the block as ``name`` of ``fold``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        record(name, time.perf_counter() - start, fold)


def mark(name: str) -> None:
    """The wall-clock time (``time.time()``) at a named point of the run, e.g. where training begins."""
    with _lock:
        _marks.setdefault(name, time.time())


def snapshot() -> dict:
    """``{"phases": [{"phase", "fold", "seconds"}...], "marks": {name: unix time}}``."""
    with _lock:
        phases = [{"phase": p, "fold": f, "seconds": s} for (p, f), s in sorted(_seconds.items())]
        return {"phases": phases, "marks": dict(_marks)}


def _write_at_exit() -> None:
    path = os.environ.get(ENV)
    if not path:
        return
    mark("exit")
    try:
        with open(path, "w") as f:
            json.dump(snapshot(), f)
    except OSError:
        pass  # a benchmark's aid: never a reason for a run to fail


atexit.register(_write_at_exit)

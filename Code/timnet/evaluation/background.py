"""Outputs written off the critical path: a worker thread that writes the files the next
fold does not need (TensorBoard images, figures) while the main thread trains on.

Jobs run one at a time, in the order submitted (so two never draw with matplotlib at
once); :meth:`OutputWorker.wait` returns when all are written and raises the first error,
so a run that ends normally has every output, and a failed output fails the run as it
would have in the main thread.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from timnet import timings


class OutputWorker:
    """One background thread for output jobs (use as a context manager: leaving it waits)."""

    def __init__(self, name: str = "timnet-outputs") -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._futures: list[Future] = []

    def submit(self, phase: str, fold: int, job: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        """Run ``job(*args, **kwargs)`` in the worker, timed as ``phase`` of ``fold``."""

        def timed() -> Any:
            with timings.phase(phase, fold):
                return job(*args, **kwargs)

        future = self._pool.submit(timed)
        self._futures.append(future)
        return future

    def wait(self) -> None:
        """Block until every job submitted so far is done; raise the first job's error."""
        futures, self._futures = self._futures, []
        for future in futures:
            future.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> OutputWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:  # already failing: let the jobs finish, keep the original error
            self._pool.shutdown(wait=True)

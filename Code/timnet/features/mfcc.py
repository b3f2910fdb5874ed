"""MFCC features exactly as the original TIM-Net preprocessing made them, one file or many.

One utterance: ``librosa.load`` (mono, 22 050 Hz), centred to ``mean_signal_length``
samples (zero padding split floor-half left / rest right, or the middle kept), then
``librosa.feature.mfcc(n_mfcc=39)`` with librosa's defaults, transposed to (T, 39)
with T = 1 + L // 512. Many utterances: :func:`extract_many` maps that over worker
processes, keeps the input order and reports unreadable files instead of stopping.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple, TypeVar

import librosa
import numpy as np
import soundfile as sf
from tqdm import tqdm

from timnet.faults import fault_point
from timnet.features.corpora import HOP_LENGTH, N_MFCC, SAMPLE_RATE, SEED_SIGNAL_LENGTH

# Thread pools that would otherwise start one thread per core in every worker.
_THREAD_ENV_VARS = (
    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS",
)
T = TypeVar("T")
R = TypeVar("R")


class Failure(NamedTuple):
    """A file that could not be turned into features, and why."""

    index: int
    path: str
    reason: str


def n_frames(mean_signal_length: int) -> int:
    """Frames of the MFCC matrix for a centred signal of that many samples."""
    return 1 + mean_signal_length // HOP_LENGTH


def centre_signal(signal: np.ndarray, mean_signal_length: int) -> np.ndarray:
    """Zero-pad (floor(half) left, rest right) or crop the middle to exactly L samples."""
    if mean_signal_length <= 0:
        raise ValueError(f"mean_signal_length must be positive, got {mean_signal_length}")
    length = len(signal)
    if length < mean_signal_length:
        missing = mean_signal_length - length
        left = missing // 2
        return np.pad(signal, (left, missing - left), mode="constant", constant_values=0)
    start = (length - mean_signal_length) // 2
    return signal[start:start + mean_signal_length]


def load_signal(path: str | Path) -> np.ndarray:
    """The original's ``librosa.load(path)``: mono float32 resampled to 22 050 Hz."""
    signal, _ = librosa.load(str(path), sr=SAMPLE_RATE, mono=True)
    return signal


def get_mfcc(
    source: str | Path | np.ndarray,
    mean_signal_length: int = SEED_SIGNAL_LENGTH,
    n_mfcc: int = N_MFCC,
    sr: int = SAMPLE_RATE,
) -> np.ndarray:
    """MFCC matrix (1 + L // 512, n_mfcc) of an audio file or of a mono signal.

    ``sr`` is the sample rate of an array ``source`` (ignored for files, which are
    always resampled to 22 050 Hz); other rates are resampled the way librosa.load does.
    """
    if isinstance(source, (str, Path)):
        signal = load_signal(source)
    else:
        signal = np.asarray(source, dtype=np.float32)
        if signal.ndim != 1:
            raise ValueError(f"expected a mono signal (1-D array), got shape {signal.shape}")
        if sr != SAMPLE_RATE:
            signal = librosa.resample(signal, orig_sr=sr, target_sr=SAMPLE_RATE)
    if signal.size == 0:
        raise ValueError("empty audio (no samples)")
    if not np.all(np.isfinite(signal)):
        raise ValueError("audio holds NaN or infinite samples")
    signal = centre_signal(signal, mean_signal_length)
    return librosa.feature.mfcc(y=signal, sr=SAMPLE_RATE, n_mfcc=n_mfcc).T


def default_jobs() -> int:
    """Cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def failure_reason(exc: Exception, path: str | Path) -> str:
    """One line saying why a file failed. When librosa's audioread fallback failed too,
    libsndfile's own complaint ("Format not recognised") is the useful one."""
    path = str(path)
    text = " ".join(str(exc).split())
    if isinstance(exc, FileNotFoundError) or not Path(path).is_file():
        return "file not found"
    if type(exc).__name__ == "NoBackendError" or not text:
        try:
            sf.info(path)
        except Exception as sf_exc:  # noqa: BLE001 - only used for its message
            text = str(sf_exc).split("': ", 1)[-1].strip()
            return f"not readable audio ({text})"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _one(task: tuple[int, str, int, int]) -> tuple[int, np.ndarray | None, str]:
    index, path, mean_signal_length, n_mfcc = task
    fault_point("mfcc_task", index=index)
    try:
        with warnings.catch_warnings():  # librosa warns before trying audioread; the failure says it all
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", FutureWarning)
            return index, get_mfcc(path, mean_signal_length, n_mfcc), ""
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported, not fatal
        return index, None, failure_reason(exc, path)


_reason = failure_reason  # older name, used by predict.py


def _init_worker() -> None:
    """One BLAS/OpenMP thread per worker process: the processes are the parallelism.
    Workers ignore Ctrl-C: the main process alone stops (one line, exit 130) and ends them.
    A worker starts with SIGINT blocked (forked) or ignored (spawned; see :func:`_ctrl_c_held`):
    a Ctrl-C that came during its start is dropped here, instead of killing it with a traceback."""
    fault_point("worker_start")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    for name in _THREAD_ENV_VARS:
        os.environ[name] = "1"
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # optional: the environment variables already cover spawned workers
        pass


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    """Limit this process' BLAS to one thread for a while (threaded BLAS sums in another order)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(1):
        yield


@contextmanager
def _single_thread_env() -> Iterator[None]:
    """Spawned workers read these before importing numpy, so set them around the start."""
    saved = {name: os.environ.get(name) for name in _THREAD_ENV_VARS}
    os.environ.update({name: "1" for name in _THREAD_ENV_VARS})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _start_method() -> str:
    """fork is fastest (workers inherit the imported, warmed-up librosa) but unsafe once
    a heavily threaded runtime such as TensorFlow is loaded: spawn then."""
    methods = multiprocessing.get_all_start_methods()
    threaded = any(name in sys.modules for name in ("tensorflow", "torch", "jax"))
    return "fork" if "fork" in methods and not threaded else "spawn"


def _warm_up() -> None:
    """Import librosa's lazily loaded parts once, before workers are forked."""
    get_mfcc(np.zeros(2048, dtype=np.float32), 2048)
    _ = librosa.load, librosa.resample


def parallel_map(
    func: Callable[[T], R], tasks: Sequence[T], jobs: int | None = None,
    progress: bool = True, desc: str = "MFCC", unit: str = "file",
) -> Iterator[R]:
    """``func`` over ``tasks``, results yielded in task order, with a progress bar.

    ``jobs`` worker processes (default: all cores; 1: this process), each limited to one
    BLAS/OpenMP thread so that the processes are the only parallelism and results are
    the same whatever ``jobs`` is. ``func`` must be a module-level function (picklable).
    """
    jobs = default_jobs() if jobs is None else jobs
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    jobs = min(jobs, max(1, len(tasks)))
    if jobs == 1:
        with _one_blas_thread(), tqdm(total=len(tasks), desc=desc, unit=unit, disable=not progress) as bar:
            for result in map(func, tasks):
                bar.update()
                yield result
        return
    method = _start_method()
    if method == "fork":
        _warm_up()
    chunksize = max(1, min(4, len(tasks) // (jobs * 8)))  # small chunks: even finish, IPC is cheap
    held = _ctrl_c_held(spawn=method == "spawn")
    try:
        with _single_thread_env():  # before the bar: no monitor thread exists when forking
            pool = multiprocessing.get_context(method).Pool(jobs, initializer=_init_worker)
        with pool, tqdm(total=len(tasks), desc=desc, unit=unit, disable=not progress) as bar:
            # A Ctrl-C held during the start is raised here, where leaving ``with pool`` ends the workers.
            _release_ctrl_c(held)
            held = None
            for result in pool.imap(func, tasks, chunksize=chunksize):
                bar.update()
                yield result
    finally:
        _release_ctrl_c(held)


def _ctrl_c_held(spawn: bool = False) -> tuple | None:
    """Block SIGINT in this thread while the pool starts; returns what :func:`_release_ctrl_c` restores.

    Why: a Ctrl-C that lands while the pool forks its workers (1) is raised inside the fork
    handlers of ``os.fork``, where it is lost and leaves the ``logging`` lock held, so the pool's
    thread that replaces dead workers waits for that lock for ever, and (2) kills the workers
    that have not yet reached :func:`_init_worker` (a traceback each), which the pool then
    replaces, from that thread: the command hung. Blocked, the signal waits: forked workers
    inherit the mask and drop it, and this process raises it once the pool is up (in
    :func:`parallel_map`, inside ``with pool``). The pool's threads, started meanwhile, keep
    SIGINT blocked, so it always reaches the main thread. A spawned worker does not inherit
    the mask through ``exec``, but it keeps an ignored SIGINT: ``spawn`` also ignores it for
    the start (Linux keeps a blocked signal pending even while it is ignored).
    """
    if not hasattr(signal, "pthread_sigmask"):
        return None
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    handler = None
    if spawn and threading.current_thread() is threading.main_thread() and sys.platform.startswith("linux"):
        handler = signal.getsignal(signal.SIGINT)
        if handler is not None:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    return mask, handler


def _release_ctrl_c(held: tuple | None) -> None:
    if held is None:
        return
    mask, handler = held
    if handler is not None:
        signal.signal(signal.SIGINT, handler)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def extract_many(
    paths: Sequence[str | Path],
    mean_signal_length: int = SEED_SIGNAL_LENGTH,
    jobs: int | None = None,
    n_mfcc: int = N_MFCC,
    progress: bool = True,
    desc: str = "MFCC",
) -> tuple[np.ndarray, list[Failure]]:
    """Features of every readable file, in the order of ``paths``, and the failures.

    Returns ``(x, failures)``: ``x`` is float32 (n_ok, 1 + L // 512, n_mfcc) holding the
    files not listed in ``failures``, in input order whatever ``jobs`` is (identical
    values too). ``jobs`` defaults to all cores; 1 runs in this process.
    """
    n = len(paths)
    out = np.empty((n, n_frames(mean_signal_length), n_mfcc), dtype=np.float32)
    ok = np.zeros(n, dtype=bool)
    failures: list[Failure] = []
    tasks = [(i, str(p), mean_signal_length, n_mfcc) for i, p in enumerate(paths)]
    for done, (index, features, reason) in enumerate(parallel_map(_one, tasks, jobs, progress and n > 0, desc), 1):
        fault_point("extracted", n=done)
        if features is None:
            failures.append(Failure(index, tasks[index][1], reason))
        else:
            out[index] = features
            ok[index] = True
    return (out if ok.all() else out[ok]), failures

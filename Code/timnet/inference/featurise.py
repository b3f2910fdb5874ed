"""MFCC windows of audio files as a trained model takes them, in worker processes.

This module imports no TensorFlow: spawned workers import it for :func:`featurise_one`
and must not pay for it, and the command line featurises *before* loading the model
so that its workers can be forked (milliseconds) instead of spawned (seconds).
"""

from __future__ import annotations

import contextlib
import functools
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from timnet.errors import UserError
from timnet.features import corpora
from timnet.features.audio_formats import find_audio_files
from timnet.features.audio_io import read_signal

# Fewer files than this are featurised in this process. Forked workers start in
# milliseconds; spawned ones (forking is unsafe once TensorFlow is loaded) each
# import librosa afresh: seconds (over 10 s on a busy 2-core machine) that only
# a thousand files or so win back.
PARALLEL_MIN_FILES = 16
PARALLEL_MIN_FILES_SPAWN = 1000
PROGRESS_MIN_FILES = 5

# What a worker returns for one file: (index, path, MFCC windows or None, window
# starts in samples, samples in the signal, why it failed or "").
FileFeatures = tuple[int, str, "np.ndarray | None", list[int], int, str]


def find_audio(wav: Path) -> list[Path]:
    """``--wav``: the file itself (even a missing one: its row says so), or every audio
    file under a folder, sorted."""
    if wav.is_dir():
        return find_audio_files(wav)
    return [wav]


def window_starts(n_samples: int, length: int, hop: int) -> list[int]:
    """Window starts every ``hop`` samples, plus one ending at the signal's end so the
    tail is scored too; a signal no longer than a window gives one (centred) window."""
    if n_samples <= length:
        return [0]
    starts = list(range(0, n_samples - length + 1, hop))
    if starts[-1] + length < n_samples:
        starts.append(n_samples - length)
    return starts


def signal_windows(signal: np.ndarray, length: int, hop: int | None) -> tuple[np.ndarray, list[int]]:
    """(windows, length) centred signal windows and their starts: the centred window
    (``hop`` None, as in training) or every window ``hop`` samples apart."""
    from timnet.features import mfcc

    if hop is None:
        return mfcc.centre_signal(signal, length)[None].astype(np.float32), [0]
    if signal.size == 0:
        raise ValueError("empty audio (no samples)")
    starts = window_starts(len(signal), length, hop)
    return np.stack([mfcc.centre_signal(signal[s:s + length], length) for s in starts]).astype(np.float32), starts


def waveform_one(task: tuple[int, str, int, int, int | None]) -> FileFeatures:
    """The signal windows of one file (a worker's job) for a model with the MFCC front end inside."""
    from timnet.features import mfcc

    index, path, length, _n_mfcc, hop = task
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", FutureWarning)
            signal = read_signal(path)
        if signal.size == 0:
            raise ValueError("empty audio (no samples)")
        windows, starts = signal_windows(signal, length, hop)
        return index, path, windows, starts, len(signal), ""
    except Exception as exc:  # noqa: BLE001 - one bad file is reported in its row
        return index, path, None, [], 0, mfcc.failure_reason(exc, path)


def featurise_one(task: tuple[int, str, int, int, int | None]) -> FileFeatures:
    """MFCCs of one file (a worker's job): the centred window (``hop`` None, as in
    training) or every window ``hop`` samples apart; or why the file failed."""
    from timnet.features import mfcc  # librosa: loaded by the work, not by the command's checks

    index, path, length, n_mfcc, hop = task
    try:
        with warnings.catch_warnings():  # librosa warns before trying audioread; the failure says it all
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", FutureWarning)
            signal = mfcc.load_signal(path)
        if hop is None:
            return index, path, mfcc.get_mfcc(signal, length, n_mfcc)[None], [0], len(signal), ""
        if signal.size == 0:
            raise ValueError("empty audio (no samples)")
        starts = window_starts(len(signal), length, hop)
        feats = np.stack([mfcc.get_mfcc(signal[s:s + length], length, n_mfcc) for s in starts])
        return index, path, feats.astype(np.float32), starts, len(signal), ""
    except Exception as exc:  # noqa: BLE001 - one bad file is reported in its row
        return index, path, None, [], 0, mfcc.failure_reason(exc, path)


def status_of(reason: str) -> str:
    """The status column of a file whose featurisation failed for ``reason``."""
    if reason == "file not found":
        return "missing"
    if "empty audio" in reason:
        return "empty"
    return "unreadable"


@dataclass
class Featurised:
    """MFCC windows of a list of files, made before (or without) loading a model.

    ``early`` holds ``(status, detail)`` of the files that failed before any decoding
    (missing, 0 bytes) and None elsewhere; ``results`` what :func:`featurise_one`
    returned for the others."""

    files: list[str]
    early: list[tuple[str, str] | None]
    results: list[FileFeatures]
    mean_signal_length: int
    n_mfcc: int
    window_hop: float | None


@functools.cache
def _blas_controller() -> Any:
    """Made once: finding the BLAS libraries costs milliseconds a call."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def _in_process(tasks: list[tuple], progress: bool, worker: Any = None) -> Iterator[FileFeatures]:
    """Features in this process with one BLAS thread, as the workers have (same values)."""
    controller = _blas_controller()
    limit = controller.limit(limits=1) if controller is not None else contextlib.nullcontext()
    with limit, tqdm(total=len(tasks), desc="MFCC", unit="file", disable=not progress) as bar:
        for task in tasks:
            yield (worker or featurise_one)(task)
            bar.update()


def featurise_files(files: Sequence[str | Path], mean_signal_length: int, n_mfcc: int = corpora.N_MFCC,
                    window_hop: float | None = None, jobs: int | None = None,
                    progress: bool | None = None, worker: Any = featurise_one) -> Featurised:
    """MFCCs of ``files`` as a model with these settings takes them.

    ``jobs`` worker processes (default all cores, via ``mfcc.parallel_map``) from
    :data:`PARALLEL_MIN_FILES` files on (:data:`PARALLEL_MIN_FILES_SPAWN` once
    TensorFlow is loaded); fewer files, or one, run in this process. ``worker``: what one
    file becomes (default its MFCC windows; a waveform-input model takes the signal windows)."""
    from timnet.features import mfcc  # librosa: loaded by the work, not by the command's checks

    if window_hop is not None and not window_hop > 0:
        raise UserError(f"--window_hop {window_hop}: give a positive number of seconds")
    if jobs is not None and jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    names = [str(f) for f in files]
    early: list[tuple[str, str] | None] = [None] * len(names)
    hop = None if window_hop is None else max(1, round(window_hop * corpora.SAMPLE_RATE))
    tasks = []
    for i, name in enumerate(names):
        p = Path(name)
        if not p.exists():
            early[i] = ("missing", "no such file")
        elif p.is_file() and p.stat().st_size == 0:
            early[i] = ("empty", "the file is empty (0 bytes)")
        else:
            tasks.append((i, name, mean_signal_length, n_mfcc, hop))
    spawn = "tensorflow" in sys.modules  # what mfcc.parallel_map will have to do
    enough = len(tasks) >= (PARALLEL_MIN_FILES_SPAWN if spawn else PARALLEL_MIN_FILES)
    workers = (jobs or mfcc.default_jobs()) if enough else 1
    show = len(tasks) >= PROGRESS_MIN_FILES if progress is None else progress
    if workers == 1:
        results = list(_in_process(tasks, show, worker))
    else:
        results = list(mfcc.parallel_map(worker, tasks, workers, show, desc="MFCC"))
    return Featurised(names, early, results, mean_signal_length, n_mfcc, window_hop)

"""Turn a corpus, as published, into the original's feature file ``MFCC/<NAME>.npy``.

    timnet extract --corpus EMODB --input data/EMODB --output MFCC
    timnet extract --corpus generic --input data/mine --name MINE --classes angry,happy

The file is the original format (a dict with ``x`` (N, T, 39) and one-hot ``y``), so
the original code reads it, plus ``speaker`` (and ``session`` where the corpus has
sessions), ``path`` (relative to the input folder)
and ``class_labels`` as numpy string arrays. Unreadable audio files are reported
and skipped; the file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from timnet.errors import UserError
from timnet.features.corpora import HOP_LENGTH
from timnet.features.corpus_prep import CorpusSpec, Utterance
from timnet.features.files import MIN_FRAMES, write_npy_dict
from timnet.features.mfcc import Failure, extract_many


@dataclass
class ExtractionReport:
    """What one extraction wrote, for the summary line and for tests."""

    output: Path
    shape: tuple[int, ...]
    class_counts: dict[str, int]
    failures: list[Failure]


def feature_dict(
    utterances: list[Utterance], classes: tuple[str, ...], x: np.ndarray, failures: list[Failure], root: Path,
) -> dict[str, Any]:
    """The file's content for the utterances that were read (``failures`` left out)."""
    failed = {f.index for f in failures}
    kept = [u for i, u in enumerate(utterances) if i not in failed]
    if len(kept) != len(x):
        raise ValueError(f"{len(kept)} utterances kept but {len(x)} feature matrices")
    index = {c: i for i, c in enumerate(classes)}
    y = np.zeros((len(kept), len(classes)), dtype=np.float32)
    y[np.arange(len(kept)), [index[u.label] for u in kept]] = 1.0
    data: dict[str, Any] = {"x": x, "y": y}
    if all(u.speaker is not None for u in kept):
        data["speaker"] = np.array([u.speaker for u in kept], dtype=str)
    if kept and all(u.session is not None for u in kept):  # group-kfold --group session
        data["session"] = np.array([u.session for u in kept], dtype=str)
    data["path"] = np.array([_relative(u.path, root) for u in kept], dtype=str)
    data["class_labels"] = np.array(classes, dtype=str)
    return data


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def extract_corpus(
    spec: CorpusSpec, root: Path, output_dir: Path, jobs: int | None = None, progress: bool = True,
) -> ExtractionReport:
    """List, extract and write one corpus to ``output_dir/<spec.name>.npy``.

    Raises UserError (nothing written) when no file matches the layout or none is readable.
    """
    root = Path(root)
    frames = 1 + spec.mean_signal_length // HOP_LENGTH
    if frames < MIN_FRAMES:
        raise UserError(f"--mean_signal_length {spec.mean_signal_length}: gives {frames} frame(s) per utterance; "
                        f"TIM-Net needs at least {MIN_FRAMES} (give at least {(MIN_FRAMES - 1) * HOP_LENGTH} samples)")
    utterances = spec.list_utterances(root)
    unknown = sorted({u.label for u in utterances} - set(spec.classes))
    if unknown:
        raise UserError(f"{root}: labels {', '.join(unknown)} are not in the class list {', '.join(spec.classes)}")
    print(f"{spec.name}: {len(utterances)} files under {root}, mean_signal_length {spec.mean_signal_length}")
    x, failures = extract_many(
        [u.path for u in utterances], spec.mean_signal_length, jobs, progress=progress, desc=spec.name,
    )
    for failure in failures:
        print(f"skipped {failure.path}: {failure.reason}", file=sys.stderr)
    if len(x) == 0:
        raise UserError(f"{root}: none of the {len(utterances)} audio files could be read; nothing written")
    data = feature_dict(utterances, spec.classes, x, failures, root)
    output = write_npy_dict(Path(output_dir) / f"{spec.name}.npy", data)
    counts = Counter(np.asarray(spec.classes)[data["y"].argmax(axis=1)].tolist())
    return ExtractionReport(output, x.shape, {c: counts.get(c, 0) for c in spec.classes}, failures)


def print_report(report: ExtractionReport) -> None:
    """One summary line: file, shape, per-class counts, skipped files."""
    counts = ", ".join(f"{c} {n}" for c, n in report.class_counts.items())
    print(f"wrote {report.output}: x {report.shape}; {counts}; skipped {len(report.failures)} file(s)")

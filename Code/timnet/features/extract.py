"""Turn a corpus, as published, into the original's feature file ``MFCC/<NAME>.npy``.

    python Code/extract_features.py --corpus EMODB --input data/EMODB --output MFCC
    python Code/extract_features.py --corpus generic --input data/mine --name MINE --classes angry,happy

The file is the original format (a dict with ``x`` (N, T, 39) and one-hot ``y``), so
the original code reads it, plus ``speaker``, ``path`` (relative to the input folder)
and ``class_labels`` as numpy string arrays. Unreadable audio files are reported
and skipped; the file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from timnet.features import corpus_prep
from timnet.features.corpora import CLASS_LABELS, MEAN_SIGNAL_LENGTH, SEED_SIGNAL_LENGTH, corpus_key
from timnet.features.corpus_prep import CorpusSpec, Utterance, esd, generic
from timnet.errors import UserError
from timnet.features.files import write_npy_dict
from timnet.features.mfcc import Failure, default_jobs, extract_many
from timnet.paths import MFCC_DIR, resolve


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


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", required=True, help=f"one of {', '.join(corpus_prep.CHOICES)}")
    parser.add_argument("--input", required=True, help="corpus folder as published (relative paths: cwd, else repo root)")
    parser.add_argument("--output", default=str(MFCC_DIR), help="folder for <NAME>.npy (default: MFCC/)")
    parser.add_argument("--name", help="output name (default: the corpus' name, e.g. RAVDE; generic: the folder name)")
    parser.add_argument("--mean_signal_length", type=positive_int,
                        help="samples per utterance at 22 050 Hz (default: the paper's value for the corpus)")
    parser.add_argument("--jobs", type=positive_int, default=default_jobs(), help="worker processes (default: all cores)")
    parser.add_argument("--classes", help="generic: comma-separated class folders, in column order")
    parser.add_argument("--split", default="train", choices=esd.SPLITS, help="ESD: which split (default train)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    return parser


def spec_from_args(args: argparse.Namespace, root: Path) -> CorpusSpec:
    """The parser the options ask for, with name and signal length overrides applied."""
    if args.corpus.lower() == "generic":
        name = args.name or root.name
        try:
            known = corpus_key(name)
        except KeyError:
            known = None
        if args.classes:
            classes = tuple(c.strip() for c in args.classes.split(",") if c.strip())
        elif known is not None:
            classes = CLASS_LABELS[known]
        else:
            classes = generic.class_folders(root)
        if len(set(classes)) != len(classes):
            raise UserError(f"--classes lists a class twice: {args.classes}")
        default_length = MEAN_SIGNAL_LENGTH.get(known or "", SEED_SIGNAL_LENGTH)
        return generic.spec(name, classes, args.mean_signal_length or default_length)
    if args.classes:
        raise UserError("--classes is only for --corpus generic (published layouts fix their classes)")
    spec = corpus_prep.get_spec(args.corpus)
    if spec.name.startswith("ESD"):
        spec = esd.spec(args.split, spec.mean_signal_length)
    return CorpusSpec(
        args.name or spec.name, spec.classes, args.mean_signal_length or spec.mean_signal_length,
        spec.list_utterances, spec.layout,
    )


def check_output_dir(output: Path) -> Path:
    """Refuse an output path that is an existing file before any work is done."""
    if output.exists() and not output.is_dir():
        raise UserError(f"{output}: --output must be a folder, not a file")
    return output


def check_name(name: str) -> str:
    """Output names become file names: no folders, no empty names."""
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise UserError(f"--name '{name}' must be a plain file name such as EMODB")
    return name


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        root = resolve(args.input)
        if not root.is_dir():
            raise UserError(f"{args.input}: input folder not found (give the corpus folder with --input)")
        output = check_output_dir(resolve(args.output))
        spec = spec_from_args(args, root)
        check_name(spec.name)
        report = extract_corpus(spec, root, output, args.jobs, progress=not args.no_progress)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Merge the corpora present in ``MFCC/`` into ``MFCC/INTERSECT.npy`` (the seed's training set).

    cd MFCC; python mix_data.py          # as in the seed's README
    python MFCC/mix_data.py              # from any folder

Every ``MFCC/*.npy`` except ``*test.npy``, ``*evaluation.npy`` and ``INTERSECT.npy`` is
read (sorted by name, with the project's safe loader), reduced to the five INTERSECT
classes (angry, happy, neutral, sad, surprise) with the original's per-corpus index
map, and zero-padded on the time axis to the longest corpus (floor(half) of the
missing frames before, the rest after).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from timnet.errors import UserError
from timnet.features.classes import canonical_class
from timnet.features.corpora import CLASS_LABELS, INTERSECT_MAP, corpus_key
from timnet.features.files import FeatureSet, load_features, read_npy

INTERSECT_CLASSES: tuple[str, ...] = CLASS_LABELS["INTERSECT"]
EXCLUDED_SUFFIXES = ("test.npy", "evaluation.npy")
OUTPUT_NAME = "INTERSECT.npy"


def find_inputs(mfcc_dir: Path, output: Path | None = None) -> list[Path]:
    """The feature files to merge, sorted by name."""
    output = None if output is None else output.resolve()
    return sorted(
        p for p in Path(mfcc_dir).glob("*.npy")
        if p.is_file() and not p.name.startswith(".") and p.name != OUTPUT_NAME
        and not p.name.endswith(EXCLUDED_SUFFIXES) and p.resolve() != output
    )


def known_name(name: str) -> str | None:
    """Canonical corpus name of a file stem, None when it is not a known corpus."""
    try:
        return corpus_key(name)
    except KeyError:
        return None


def mapping_by_name(class_labels: Sequence[str]) -> tuple[int, ...]:
    """INTERSECT index of each class by its name, synonyms included (``surprised`` is
    ``surprise``; -1: not an INTERSECT class)."""
    index = {canonical_class(c): i for i, c in enumerate(INTERSECT_CLASSES)}
    return tuple(index.get(canonical_class(c), -1) for c in class_labels)


def intersect_mapping(name: str, class_labels: Sequence[str]) -> tuple[int, ...]:
    """The original's map for a known corpus (section 4), else the map by class name."""
    key = known_name(name)
    if key in INTERSECT_MAP:
        mapping = INTERSECT_MAP[key]
        if len(mapping) != len(class_labels):
            raise UserError(f"{name}: {len(class_labels)} classes but the INTERSECT map has {len(mapping)}")
        return mapping
    return mapping_by_name(class_labels)


def remap(y: np.ndarray, mapping: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(rows kept, new one-hot y over the INTERSECT classes) for one-hot ``y``."""
    mapping = np.asarray(mapping)
    if y.shape[1] != len(mapping):
        raise ValueError(f"y has {y.shape[1]} classes but the mapping has {len(mapping)}")
    target = mapping[np.argmax(y, axis=1)]
    keep = target >= 0
    new_y = np.zeros((int(keep.sum()), len(INTERSECT_CLASSES)), dtype=y.dtype)
    new_y[np.arange(len(new_y)), target[keep]] = 1
    return keep, new_y


def pad_time(x: np.ndarray, frames: int) -> np.ndarray:
    """Zero-pad (N, T, F) to (N, frames, F): floor(half) before, the rest after."""
    missing = frames - x.shape[1]
    if missing < 0:
        raise ValueError(f"cannot pad {x.shape[1]} frames down to {frames}")
    if missing == 0:
        return x
    before = missing // 2
    return np.pad(x, ((0, 0), (before, missing - before), (0, 0)), mode="constant", constant_values=0)


def mix(sets: Sequence[FeatureSet]) -> dict[str, Any]:
    """The INTERSECT dict from feature sets (in the given order). ``speaker`` and ``path``
    are carried, prefixed with the corpus name, when every input has them."""
    if not sets:
        raise UserError("no feature file to merge")
    n_mfcc = {fs.x.shape[2] for fs in sets}
    if len(n_mfcc) != 1:
        raise UserError(f"the feature files disagree on the number of MFCCs: {sorted(n_mfcc)}")
    frames = max(fs.x.shape[1] for fs in sets)
    xs, ys, corpus, speakers, files = [], [], [], [], []
    for fs in sets:
        keep, y = remap(fs.y, intersect_mapping(fs.name, fs.class_labels))
        xs.append(pad_time(fs.x[keep], frames))
        ys.append(y)
        corpus.append(np.full(len(y), fs.name))
        if fs.speakers is not None:
            speakers.append(np.char.add(f"{fs.name}/", fs.speakers[keep].astype(str)))
        if fs.files is not None:
            files.append(np.char.add(f"{fs.name}/", fs.files[keep].astype(str)))
    data: dict[str, Any] = {"x": np.concatenate(xs), "y": np.concatenate(ys)}
    if len(speakers) == len(sets):
        data["speaker"] = np.concatenate(speakers).astype(str)
    if len(files) == len(sets):
        data["path"] = np.concatenate(files).astype(str)
    data["corpus"] = np.concatenate(corpus).astype(str)
    data["class_labels"] = np.array(INTERSECT_CLASSES, dtype=str)
    if len(data["y"]) == 0:
        raise UserError("no utterance of the INTERSECT classes in the feature files")
    return data


def load_inputs(paths: Sequence[Path]) -> list[FeatureSet]:
    """Load each file safely; files that are neither a known corpus nor carry a
    ``class_labels`` key are skipped with a warning."""
    sets = []
    for path in paths:
        key = known_name(path.stem)
        if key is None:
            content = read_npy(path)
            if not isinstance(content, dict) or "class_labels" not in content:
                print(f"skipped {path.name}: not a known corpus name and no class_labels key", file=sys.stderr)
                continue
        sets.append(load_features(path, CLASS_LABELS[key] if key is not None else None))
    return sets


def class_counts(y: np.ndarray) -> str:
    counts = y.sum(axis=0).astype(int)
    return ", ".join(f"{c} {n}" for c, n in zip(INTERSECT_CLASSES, counts))

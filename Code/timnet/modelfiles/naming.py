"""Names of the model files of a run, and ``--test_path`` lookup: the one place that knows them.

A run folder holds, per fold, a Keras 2 weights file (the original's names) and a
portable ``.keras`` file beside it:

- hold-out: ``weights_best.hdf5``
- k-fold: ``<k>-fold_weights_best_<i>.hdf5``
- LOSO: ``loso_weights_<i>_<speaker>.hdf5``
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from timnet.errors import UserError

HOLDOUT_STEM = "weights_best"
KFOLD_NAME = re.compile(r"^(\d+)-fold_weights_best_(\d+)\.(?:hdf5|h5|keras)$")
LOSO_NAME = re.compile(r"^loso_weights_(\d+)_(.+)\.(?:hdf5|h5|keras)$")
MODEL_SUFFIXES = (".keras", ".hdf5", ".h5")  # preferred first when a fold has several files
# Test mode evaluates the weights files (the original's format, with our metadata beside).
WEIGHTS_FIRST = (".hdf5", ".h5", ".keras")


def weights_file_name(protocol: str, fold: int, folds: int, speaker: str | None = None) -> str:
    """The weights file of one fold of a run (the original's names)."""
    if protocol == "holdout":
        return f"{HOLDOUT_STEM}.hdf5"
    if protocol == "kfold":
        return f"{folds}-fold_weights_best_{fold}.hdf5"
    return f"loso_weights_{fold}_{speaker}.hdf5"


def portable_name(weights: Path) -> Path:
    """The ``.keras`` file written beside a weights file."""
    return weights.with_suffix(".keras")


@dataclass(frozen=True)
class TrainedModel:
    """One model file of a run: which fold of which protocol it belongs to."""

    path: Path
    protocol: str = "single"  # single, holdout, kfold or loso
    fold: int = 1
    folds: int = 1
    speaker: str | None = None


def describe_file(path: Path) -> TrainedModel:
    """What a model file's name says about its protocol and fold."""
    if path.stem == HOLDOUT_STEM:
        return TrainedModel(path, "holdout")
    if m := KFOLD_NAME.match(path.name):
        return TrainedModel(path, "kfold", int(m.group(2)), int(m.group(1)))
    if m := LOSO_NAME.match(path.name):
        return TrainedModel(path, "loso", int(m.group(1)), speaker=m.group(2))
    return TrainedModel(path)


def _preferred(paths: list[Path], order: tuple[str, ...]) -> Path:
    return min(paths, key=lambda p: (order.index(p.suffix) if p.suffix in order else 9, p.name))


def run_models(folder: Path, order: tuple[str, ...] = MODEL_SUFFIXES) -> list[TrainedModel]:
    """Every fold's model in a run folder (one file per fold, the first suffix of
    ``order`` preferred), in fold order; empty when the folder holds no model file."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix in MODEL_SUFFIXES and not p.name.startswith(".")]
    holdout = [p for p in files if p.stem == HOLDOUT_STEM]
    if holdout:
        return [describe_file(_preferred(holdout, order))]
    by_fold: dict[int, list[Path]] = {}
    for p in files:
        info = describe_file(p)
        if info.protocol in ("kfold", "loso"):
            by_fold.setdefault(info.fold, []).append(p)
    if by_fold:
        models = [describe_file(_preferred(by_fold[i], order)) for i in sorted(by_fold)]
        if models[0].protocol == "loso":
            models = [TrainedModel(m.path, "loso", m.fold, len(models), m.speaker) for m in models]
        return models
    keras_files = sorted(p for p in files if p.suffix == ".keras")
    return [TrainedModel(keras_files[0])] if len(keras_files) == 1 else []


def find_trained_models(test_path: Path, order: tuple[str, ...] = MODEL_SUFFIXES) -> list[TrainedModel]:
    """``--test_path``: a model file, or a run folder (every fold's model, see :func:`run_models`)."""
    if test_path.is_file():
        return [describe_file(test_path)]
    if not test_path.is_dir():
        raise UserError(f"--test_path {test_path}: no such file or folder (put downloaded weights under Test_Models/)")
    models = run_models(test_path, order)
    if not models:
        raise UserError(f"--test_path {test_path}: no weights found (expected weights_best.keras/.hdf5, "
                        "<k>-fold_weights_best_<i> or loso_weights_<i>_<speaker> files, or one .keras file)")
    return models


def resolve_model_file(test_path: Path, fold: int | None = None) -> Path:
    """One model file: ``test_path`` itself, or fold ``fold`` (1-based, default 1) of a run folder."""
    if test_path.is_file():
        if fold not in (None, 1):
            raise UserError(f"--fold {fold}: --test_path {test_path} is a single model file, not a run folder")
        return test_path
    models = find_trained_models(test_path)
    if len(models) == 1 and models[0].protocol in ("holdout", "single"):
        if fold not in (None, 1):
            raise UserError(f"--fold {fold}: {test_path} holds a single model")
        return models[0].path
    want = 1 if fold is None else fold
    for m in models:
        if m.fold == want:
            return m.path
    raise UserError(f"--fold {want}: {test_path} has folds {', '.join(str(m.fold) for m in models)}")

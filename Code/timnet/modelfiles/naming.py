"""The model files of a run folder and ``--test_path`` lookup.

A run folder holds, per fold, a Keras 2 weights file and a portable ``.keras`` file
beside it, named by the fold's protocol (``timnet.protocols``: the original's names
``weights_best.hdf5``, ``<k>-fold_weights_best_<i>.hdf5``, ``loso_weights_<i>_<speaker>.hdf5``
and ours). Which fold a file is comes from its metadata when recorded; the name only
finds and orders the files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from timnet import protocols
from timnet.errors import UserError
from timnet.protocols import FoldIdentity

MODEL_SUFFIXES = (".keras", ".hdf5", ".h5")  # preferred first when a fold has several files
# Test mode evaluates the weights files (the original's format, with our metadata beside).
WEIGHTS_FIRST = (".hdf5", ".h5", ".keras")


def portable_name(weights: Path) -> Path:
    """The ``.keras`` file written beside a weights file."""
    return weights.with_suffix(".keras")


@dataclass(frozen=True)
class TrainedModel:
    """One model file of a run, with the fold its NAME gives (None: a single model)."""

    path: Path
    identity: FoldIdentity | None = None

    @property
    def protocol(self) -> str:
        return self.identity.protocol if self.identity else "single"

    @property
    def fold(self) -> int:
        return self.identity.fold if self.identity else 1


def describe_file(path: Path) -> TrainedModel:
    """What a model file's name says about its protocol and fold."""
    return TrainedModel(path, protocols.identify_file(path))


def _preferred(paths: list[Path], order: tuple[str, ...]) -> Path:
    return min(paths, key=lambda p: (order.index(p.suffix) if p.suffix in order else 9, p.name))


def run_models(folder: Path, order: tuple[str, ...] = MODEL_SUFFIXES) -> list[TrainedModel]:
    """Every fold's model in a run folder (one file per fold, the first suffix of
    ``order`` preferred), in fold order; empty when the folder holds no model file."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix in MODEL_SUFFIXES and not p.name.startswith(".")]
    by_fold: dict[tuple[str, int], list[Path]] = {}
    for p in files:
        info = describe_file(p)
        if info.identity is not None:
            by_fold.setdefault((info.protocol, info.fold), []).append(p)
    if by_fold:
        holdout = [key for key in by_fold if key[0] == "holdout"]
        keys = holdout[:1] if holdout else sorted(by_fold, key=lambda k: (k[1], k[0]))
        return [describe_file(_preferred(by_fold[k], order)) for k in keys]
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


def model_identity(path: Path, recorded: FoldIdentity | None) -> FoldIdentity | None:
    """Which fold a model file is: its metadata's record, else what its name says (the
    original's files; their seed is ``--random_seed``)."""
    return recorded if recorded is not None else protocols.identify_file(path)

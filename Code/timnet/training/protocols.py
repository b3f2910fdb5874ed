"""Train/test splits of the evaluation protocols (hold-out, k-fold, leave-one-speaker-out)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from timnet.config import TrainingConfig
from timnet.errors import UserError
from timnet.features.files import FeatureSet

PROTOCOLS = ("holdout", "kfold", "loso")
# A hold-out validation part smaller than this picks the "best" epoch by noise.
MIN_VALIDATION = 4


@dataclass(frozen=True)
class Split:
    """One fold: indices into the feature file. ``name`` labels reports."""

    fold: int
    train: np.ndarray
    test: np.ndarray
    name: str


def holdout_split(labels: np.ndarray, seed: int, validation: float = 0.1) -> list[Split]:
    """The seed's stratified 90/10 split."""
    from sklearn.model_selection import train_test_split  # here: scikit-learn takes seconds to load

    index = np.arange(len(labels))
    if len(index) < 2:
        raise UserError(f"the hold-out protocol needs at least 2 utterances, got {len(index)}")
    counts = np.bincount(labels)
    n_present = int(np.count_nonzero(counts))
    n_test = int(np.ceil(validation * len(index)))
    # Stratify whenever every class can appear on both sides (tiny corpora cannot).
    can_stratify = counts[counts > 0].min() >= 2 and min(n_test, len(index) - n_test) >= n_present
    stratify = labels if can_stratify else None
    train, test = train_test_split(index, test_size=validation, random_state=seed, shuffle=True, stratify=stratify)
    return [Split(1, np.sort(train), np.sort(test), "holdout")]


def kfold_splits(n: int, folds: int, seed: int) -> list[Split]:
    """The paper's ``KFold(n_splits, shuffle=True, random_state=seed)`` over the corpus."""
    if folds < 2 or folds > n:
        raise UserError(f"--split_fold {folds}: need 2 <= folds <= number of utterances ({n})")
    from sklearn.model_selection import KFold  # here: scikit-learn takes seconds to load

    kf = KFold(n_splits=folds, shuffle=True, random_state=seed)
    return [Split(i, tr, te, f"fold {i}") for i, (tr, te) in enumerate(kf.split(np.arange(n)), start=1)]


def loso_splits(speakers: np.ndarray | None, source: str) -> list[Split]:
    """Leave one speaker out: one fold per speaker, in sorted speaker order."""
    if speakers is None:
        raise UserError(
            f"{source}: --protocol loso needs a 'speaker' key in the feature file "
            "(re-extract it with timnet extract, which records the speakers)"
        )
    groups = np.asarray(speakers).astype(str)
    if len(np.unique(groups)) < 2:
        raise UserError(f"{source}: --protocol loso needs at least two speakers")
    from sklearn.model_selection import LeaveOneGroupOut  # here: scikit-learn takes seconds to load

    splits = []
    for i, (tr, te) in enumerate(LeaveOneGroupOut().split(groups, groups=groups), start=1):
        splits.append(Split(i, tr, te, f"speaker {groups[te[0]]}"))
    return splits


def make_splits(protocol: str, labels: np.ndarray, seed: int, folds: int,
                speakers: np.ndarray | None = None, source: str = "data") -> list[Split]:
    if protocol == "holdout":
        return holdout_split(labels, seed)
    if protocol == "kfold":
        return kfold_splits(len(labels), folds, seed)
    if protocol == "loso":
        return loso_splits(speakers, source)
    raise UserError(f"unknown protocol '{protocol}' (choose from {', '.join(PROTOCOLS)})")


def select_folds(splits: list[Split], first_fold: int = 1, max_folds: int | None = None) -> list[Split]:
    """Folds ``first_fold`` .. ``first_fold + max_folds - 1`` (1-based) of a protocol, so a
    long run can be split into parts; the splits themselves stay those of the full protocol."""
    if first_fold < 1 or first_fold > len(splits):
        raise UserError(f"--first_fold {first_fold}: must be between 1 and the number of folds ({len(splits)})")
    if max_folds is not None and max_folds < 1:
        raise UserError(f"--max_folds {max_folds}: must be at least 1")
    chosen = splits[first_fold - 1 :]
    return chosen if max_folds is None else chosen[:max_folds]


def check_training_data(splits: list[Split], labels: np.ndarray, class_labels: tuple[str, ...], protocol: str,
                        source: str = "data") -> None:
    """Refuse data a protocol cannot train on, naming the class or split and the fix.

    At least two classes must be present; every class present in the file needs an
    utterance in every training part (else the model never sees it, and the report
    scores it anyway); a hold-out validation part needs :data:`MIN_VALIDATION` utterances."""
    counts = np.bincount(labels, minlength=len(class_labels))
    present = np.flatnonzero(counts)
    if len(present) < 2:
        only = ", ".join(f"{class_labels[c]} ({counts[c]})" for c in present) or "none"
        raise UserError(f"{source}: training needs at least two classes, the file holds only {only}; "
                        "use a feature file with more classes")
    fixes = {"kfold": "use fewer folds (--split_fold), --protocol holdout, or more data of that class",
             "holdout": "use more data of that class",
             "loso": "use --protocol kfold or holdout, or more speakers of that class"}
    for split in splits:
        seen = np.bincount(labels[split.train], minlength=len(class_labels))
        missing = [int(c) for c in present if seen[c] == 0]
        if missing:
            c = missing[0]
            raise UserError(f"{source}: class '{class_labels[c]}' ({counts[c]} utterance(s)) has none in the training "
                            f"part of {split.name} (--protocol {protocol}); {fixes[protocol]}")
        if protocol == "holdout" and len(split.test) < MIN_VALIDATION:
            raise UserError(f"{source}: the hold-out split validates on {len(split.test)} utterance(s) of "
                            f"{len(labels)}; it needs at least {MIN_VALIDATION} (10%: at least "
                            f"{10 * MIN_VALIDATION - 9} utterances): use more data or --protocol kfold")


def training_splits(config: TrainingConfig, features: FeatureSet) -> list[Split]:
    """The folds ``config`` trains, checked by :func:`check_training_data` (no TensorFlow
    needed: the command line calls this before TensorFlow loads)."""
    source = str(features.path or features.name)
    splits = make_splits(config.protocol, features.labels, config.random_seed, config.split_fold,
                         features.speakers, source)
    splits = select_folds(splits, config.first_fold, config.max_folds)
    check_training_data(splits, features.labels, features.class_labels, config.protocol, source)
    return splits

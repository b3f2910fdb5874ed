"""The seed's hold-out, the paper's k-fold and leave-one-speaker-out."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from timnet.errors import UserError
from timnet.protocols.base import _SUFFIX, Protocol, ProtocolSettings, Split

if TYPE_CHECKING:
    import numpy as np

    from timnet.features.files import FeatureSet

HOLDOUT_STEM = "weights_best"


def holdout_split(labels: np.ndarray, seed: int, validation: float = 0.1) -> list[Split]:
    """The seed's stratified 90/10 split."""
    import numpy as np
    from sklearn.model_selection import train_test_split

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
    return [Split(1, np.sort(train), np.sort(test), "holdout", "holdout")]


def kfold_splits(n: int, folds: int, seed: int) -> list[Split]:
    """The paper's ``KFold(n_splits, shuffle=True, random_state=seed)`` over the corpus."""
    import numpy as np
    from sklearn.model_selection import KFold

    if folds < 2 or folds > n:
        raise UserError(f"--split_fold {folds}: need 2 <= folds <= number of utterances ({n})")
    kf = KFold(n_splits=folds, shuffle=True, random_state=seed)
    return [Split(i, tr, te, f"fold {i}", str(i)) for i, (tr, te) in enumerate(kf.split(np.arange(n)), start=1)]


def loso_splits(speakers: np.ndarray | None, source: str) -> list[Split]:
    """Leave one speaker out: one fold per speaker, in sorted speaker order."""
    import numpy as np
    if speakers is None:
        raise UserError(
            f"{source}: --protocol loso needs a 'speaker' key in the feature file "
            "(re-extract it with timnet extract, which records the speakers)"
        )
    groups = np.asarray(speakers).astype(str)
    if len(np.unique(groups)) < 2:
        raise UserError(f"{source}: --protocol loso needs at least two speakers")
    splits = []
    for i, speaker in enumerate(np.unique(groups), start=1):
        test = np.flatnonzero(groups == speaker)
        train = np.flatnonzero(groups != speaker)
        splits.append(Split(i, train, test, f"speaker {speaker}", str(speaker)))
    return splits


class HoldoutProtocol(Protocol):
    """The seed's stratified 90/10 split; the checkpoint is the epoch with the best
    validation loss. Its test mode scores the weights on the whole file, as the seed did."""

    name = "holdout"
    help = "stratified 90/10 (seed)"
    name_pattern = re.compile(rf"^{HOLDOUT_STEM}{_SUFFIX}")
    tests_whole_file = True

    def splits(self, features: FeatureSet, settings: ProtocolSettings, source: str = "data") -> list[Split]:
        return holdout_split(features.labels, settings.seed)

    def weights_name(self, split: Split, folds: int) -> str:
        return f"{HOLDOUT_STEM}.hdf5"

    def keeps_best_epoch(self, split: Split) -> bool:
        return True


class KFoldProtocol(Protocol):
    """The paper's shuffled k-fold cross-validation; every fold keeps its last epoch."""

    name = "kfold"
    help = "--split_fold CV (paper)"
    name_pattern = re.compile(rf"^(?P<folds>\d+)-fold_weights_best_(?P<fold>\d+){_SUFFIX}")
    fix = "use fewer folds (--split_fold), --protocol holdout, or more data of that class"

    def splits(self, features: FeatureSet, settings: ProtocolSettings, source: str = "data") -> list[Split]:
        return kfold_splits(len(features.labels), settings.folds, settings.seed)

    def weights_name(self, split: Split, folds: int) -> str:
        return f"{folds}-fold_weights_best_{split.fold}.hdf5"

    def report_kind(self, folds: int) -> str:
        return f"{folds}fold"


class LosoProtocol(Protocol):
    """Leave one speaker out (the feature file's ``speaker`` key); last epoch of every fold."""

    name = "loso"
    help = "leave one speaker out"
    name_pattern = re.compile(rf"^loso_weights_(?P<fold>\d+)_(?P<held_out>.+){_SUFFIX}")
    fix = "use --protocol kfold or holdout, or more speakers of that class"

    def splits(self, features: FeatureSet, settings: ProtocolSettings, source: str = "data") -> list[Split]:
        return loso_splits(features.speakers, source)

    def weights_name(self, split: Split, folds: int) -> str:
        return f"loso_weights_{split.fold}_{split.held_out}.hdf5"

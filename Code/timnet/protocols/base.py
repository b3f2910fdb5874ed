"""What a protocol is: its folds (:class:`Split`), the identity a model file records
(:class:`FoldIdentity`), the settings it reads (:class:`ProtocolSettings`) and the
:class:`Protocol` interface every protocol class implements. Free of TensorFlow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from timnet.errors import UserError

if TYPE_CHECKING:
    import numpy as np

    from timnet.features.files import FeatureSet

# A hold-out validation part smaller than this picks the "best" epoch by noise.
MIN_VALIDATION = 4
WEIGHTS_SUFFIXES = ("hdf5", "h5", "keras")
_SUFFIX = r"\.(?:hdf5|h5|keras)$"


@dataclass(frozen=True)
class Split:
    """One fold: indices into the feature file.

    ``test`` is the part the fold is scored on; ``valid`` the part whose loss picks the
    best epoch when it differs from ``test`` (None: the test part validates, as the seed's
    hold-out and the paper's k-fold do). ``held_out`` is the fold's identity as a user
    names it (a fold number, a speaker, groups, a split file's fold); ``name`` labels reports.
    """

    fold: int
    train: np.ndarray
    test: np.ndarray
    name: str
    held_out: str = ""
    valid: np.ndarray | None = None

    @property
    def validation(self) -> np.ndarray:
        """The utterances validated on every epoch (the loss that picks a best epoch)."""
        return self.test if self.valid is None else self.valid


@dataclass(frozen=True)
class ProtocolSettings:
    """The settings a protocol's splits depend on (a run's configuration, or a model file's record)."""

    seed: int = 46
    folds: int = 10
    group: str = "speaker"
    splits: str | None = None  # a split file (or EmoBox folder) for the "splits" protocol


@dataclass(frozen=True)
class FoldIdentity:
    """Which fold of which protocol a model file is: recorded in our model files, read
    from the original's file names (with ``--random_seed``) otherwise."""

    protocol: str
    fold: int = 1
    folds: int = 1
    seed: int | None = None
    held_out: str = ""
    options: dict[str, Any] = field(default_factory=dict)  # group key; split file and its digest
    recorded: bool = False  # True: from the file's metadata; False: from its name

    def to_dict(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "fold": self.fold, "folds": self.folds, "seed": self.seed,
                "held_out": self.held_out, "options": dict(self.options)}

    @classmethod
    def from_dict(cls, values: Any) -> FoldIdentity:
        """A model file's record; ValueError when malformed."""
        if not isinstance(values, dict) or not isinstance(values.get("protocol"), str):
            raise ValueError("the protocol record must be an object with a 'protocol' name")
        seed = values.get("seed")
        options = values.get("options") or {}
        if not isinstance(options, dict):
            raise ValueError("the protocol record's options must be an object")
        return cls(values["protocol"], int(values.get("fold", 1)), int(values.get("folds", 1)),
                   None if seed is None else int(seed), str(values.get("held_out") or ""), options, True)

    def settings(self, default_seed: int) -> ProtocolSettings:
        seed = self.seed if self.seed is not None else default_seed
        return ProtocolSettings(seed=seed, folds=self.folds, group=str(self.options.get("group", "speaker")),
                                splits=self.options.get("splits"))


class Protocol:
    """One evaluation protocol. Subclasses set :attr:`name` and implement :meth:`splits`,
    the weights-file name (:meth:`weights_name`, :attr:`name_pattern`) and the rules below."""

    name: ClassVar[str]
    help: ClassVar[str]
    # Weights file names: a regex whose groups give (folds, fold, held_out) by name.
    name_pattern: ClassVar[re.Pattern[str]]
    # The fix a training-data error suggests.
    fix: ClassVar[str] = "use more data of that class"
    # The seed's test mode scores hold-out weights on the whole file (not only the held-out part).
    tests_whole_file: ClassVar[bool] = False

    def splits(self, features: FeatureSet, settings: ProtocolSettings, source: str = "data") -> list[Split]:
        raise NotImplementedError

    def weights_name(self, split: Split, folds: int) -> str:
        raise NotImplementedError

    def keeps_best_epoch(self, split: Split) -> bool:
        """The checkpoint rule: the epoch with the best validation loss, or the last epoch."""
        return split.valid is not None

    def report_kind(self, folds: int) -> str:
        """The workbook's ``<kind>`` in ``<data>_<kind>_<WAR>_<seed>_<time>.xlsx``."""
        return self.name

    def options(self, settings: ProtocolSettings) -> dict[str, Any]:
        """What a model file records besides seed and folds to rebuild the splits."""
        return {}

    def identity(self, split: Split, folds: int, settings: ProtocolSettings) -> FoldIdentity:
        return FoldIdentity(self.name, split.fold, folds, settings.seed, split.held_out, self.options(settings), True)

    def parse_name(self, file_name: str) -> FoldIdentity | None:
        """The identity an original-style file name gives (seed unknown), or None."""
        m = self.name_pattern.match(file_name)
        if not m:
            return None
        values = m.groupdict()
        return FoldIdentity(self.name, int(values.get("fold") or 1), int(values.get("folds") or 1),
                            held_out=values.get("held_out") or "")

    def check(self, splits: list[Split], features: FeatureSet, source: str) -> None:
        """Refuse folds this protocol cannot train on (see :func:`check_training_data`)."""
        check_training_data(splits, features.labels, features.class_labels, self, source)

    def rebuild(self, identity: FoldIdentity, features: FeatureSet, default_seed: int, source: str) -> Split:
        """The fold ``identity`` names, recomputed on ``features`` (its training and test parts)."""
        splits = self.splits(features, identity.settings(default_seed), source)
        if identity.held_out:
            for split in splits:
                if split.held_out == identity.held_out:
                    return split
            if not identity.recorded or self.name == "loso":
                raise UserError(f"{source}: the model's held-out part ({identity.protocol} '{identity.held_out}') has "
                                "no utterance in this feature file; test it on the feature file it was trained on")
        if not 1 <= identity.fold <= len(splits):
            raise UserError(f"{source}: the model is fold {identity.fold} of {identity.protocol}, but the protocol "
                            f"gives {len(splits)} folds on this file; use the feature file it was trained on")
        split = splits[identity.fold - 1]
        if identity.held_out and split.held_out != identity.held_out:
            raise UserError(f"{source}: fold {identity.fold} holds out {split.held_out} here but the model held out "
                            f"{identity.held_out}; use the feature file it was trained on")
        return split


def check_training_data(splits: list[Split], labels: np.ndarray, class_labels: tuple[str, ...], protocol: Protocol,
                        source: str = "data") -> None:
    """Refuse data a protocol cannot train on, naming the class or split and the fix.

    At least two classes must be present; every class present in the file needs an
    utterance in every training part (else the model never sees it, and the report
    scores it anyway); a validation part that picks a best epoch needs :data:`MIN_VALIDATION`."""
    import numpy as np
    counts = np.bincount(labels, minlength=len(class_labels))
    present = np.flatnonzero(counts)
    if len(present) < 2:
        only = ", ".join(f"{class_labels[c]} ({counts[c]})" for c in present) or "none"
        raise UserError(f"{source}: training needs at least two classes, the file holds only {only}; "
                        "use a feature file with more classes")
    for split in splits:
        seen = np.bincount(labels[split.train], minlength=len(class_labels))
        missing = [int(c) for c in present if seen[c] == 0]
        if missing:
            c = missing[0]
            raise UserError(f"{source}: class '{class_labels[c]}' ({counts[c]} utterance(s)) has none in the training "
                            f"part of {split.name} (--protocol {protocol.name}); {protocol.fix}")
        if protocol.keeps_best_epoch(split) and len(split.validation) < MIN_VALIDATION:
            what = "the hold-out split" if protocol.name == "holdout" else split.name
            raise UserError(f"{source}: {what} validates on {len(split.validation)} utterance(s) of "
                            f"{len(labels)}; it needs at least {MIN_VALIDATION}"
                            + (f" (10%: at least {10 * MIN_VALIDATION - 9} utterances): use more data or "
                               "--protocol kfold" if protocol.name == "holdout" else ": use a larger validation part"))


def file_stem(path: str) -> str:
    """A file's stem whatever its folder separators and extension (EmoBox's paths differ from ours)."""
    return Path(str(path).replace("\\", "/")).stem


def digest_of(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]

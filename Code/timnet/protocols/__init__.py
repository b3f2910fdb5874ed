"""Evaluation protocols: one class per protocol, registered in :data:`REGISTRY`.

A protocol owns its splits, its folds' names and identities, its weights-file names
(written and parsed, the original's included), its checkpoint rule (best epoch on a
validation part, or the last epoch) and its report name; nothing else parses fold
names. Free of TensorFlow (the command line checks the splits before it loads).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from timnet.errors import UserError
from timnet.protocols.base import (
    MIN_VALIDATION,
    FoldIdentity,
    Protocol,
    ProtocolSettings,
    Split,
    check_training_data,
)
from timnet.protocols.cross_corpus import CrossCorpusProtocol
from timnet.protocols.groups import GROUP_KEYS, GroupKFoldProtocol
from timnet.protocols.split_files import SplitFileProtocol
from timnet.protocols.standard import (
    HOLDOUT_STEM,
    HoldoutProtocol,
    KFoldProtocol,
    LosoProtocol,
    holdout_split,
    kfold_splits,
    loso_splits,
)

if TYPE_CHECKING:
    from timnet.features.files import FeatureSet

REGISTRY: dict[str, Protocol] = {p.name: p for p in (HoldoutProtocol(), KFoldProtocol(), LosoProtocol(),
                                                     GroupKFoldProtocol(), SplitFileProtocol(),
                                                     CrossCorpusProtocol())}
NAMES: tuple[str, ...] = tuple(REGISTRY)

__all__ = ["GROUP_KEYS", "HOLDOUT_STEM", "MIN_VALIDATION", "NAMES", "REGISTRY", "FoldIdentity", "Protocol", "ProtocolSettings",
           "Split", "check_training_data", "get", "holdout_split", "identify_file", "kfold_splits", "loso_splits",
           "planned_splits", "select_folds"]


def get(name: str) -> Protocol:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UserError(f"unknown protocol '{name}' (choose from {', '.join(NAMES)})") from None


def identify_file(path: Path) -> FoldIdentity | None:
    """The fold a model file's NAME gives (the original's names and ours), or None."""
    for protocol in REGISTRY.values():
        identity = protocol.parse_name(Path(path).name)
        if identity is not None:
            return identity
    return None


def select_folds(splits: list[Split], first_fold: int = 1, max_folds: int | None = None) -> list[Split]:
    """Folds ``first_fold`` .. ``first_fold + max_folds - 1`` (1-based) of a protocol, so a
    long run can be split into parts; the splits themselves stay those of the full protocol."""
    if first_fold < 1 or first_fold > len(splits):
        raise UserError(f"--first_fold {first_fold}: must be between 1 and the number of folds ({len(splits)})")
    if max_folds is not None and max_folds < 1:
        raise UserError(f"--max_folds {max_folds}: must be at least 1")
    chosen = splits[first_fold - 1 :]
    return chosen if max_folds is None else chosen[:max_folds]


def planned_splits(protocol: str, features: FeatureSet, settings: ProtocolSettings, first_fold: int = 1,
                   max_folds: int | None = None) -> tuple[list[Split], int]:
    """The folds a run trains (checked: every class in every training part) and the
    protocol's total number of folds."""
    source = str(features.path or features.name)
    chosen = get(protocol)
    splits = chosen.splits(features, settings, source)
    selected = select_folds(splits, first_fold, max_folds)
    chosen.check(selected, features, source)
    return selected, len(splits)

"""K folds with disjoint groups (speakers, or IEMOCAP's sessions), stratified by class where possible."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from timnet.errors import UserError
from timnet.protocols.base import _SUFFIX, Protocol, ProtocolSettings, Split

if TYPE_CHECKING:
    import numpy as np

    from timnet.features.files import FeatureSet

GROUP_KEYS = ("speaker", "session")


def group_values(features: FeatureSet, key: str, source: str) -> np.ndarray:
    """The group of every utterance: the feature file's ``speaker`` or ``session`` key."""
    import numpy as np
    if key not in GROUP_KEYS:
        raise UserError(f"--group {key}: choose from {', '.join(GROUP_KEYS)}")
    values = features.speakers if key == "speaker" else features.extra.get("session")
    if values is None:
        raise UserError(f"{source}: --group {key} needs a '{key}' key in the feature file (re-extract it with "
                        "timnet extract, which records the speakers, and the sessions where the corpus has them)")
    values = np.asarray(values).astype(str)
    if len(values) != len(features.labels):
        raise UserError(f"{source}: '{key}' has {len(values)} entries for {len(features.labels)} utterances")
    return values


def group_kfold_splits(labels: np.ndarray, groups: np.ndarray, folds: int, seed: int, key: str,
                       source: str) -> list[Split]:
    """scikit-learn's ``StratifiedGroupKFold(folds, shuffle=True, random_state=seed)``:
    no group in two folds; the classes as balanced over the folds as the groups allow."""
    import numpy as np
    from sklearn.model_selection import StratifiedGroupKFold

    n_groups = len(np.unique(groups))
    if folds < 2 or folds > n_groups:
        raise UserError(f"--split_fold {folds}: group-kfold needs 2 <= folds <= number of {key}s ({n_groups} in "
                        f"{source})")
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    splits = []
    for i, (train, test) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups), start=1):
        held = ",".join(sorted(np.unique(groups[test])))
        splits.append(Split(i, np.sort(train), np.sort(test), f"fold {i} ({key}s {held})", held))
    return splits


class GroupKFoldProtocol(Protocol):
    """K folds, each group (``--group``: speaker or session) in one fold only; last epoch of every fold."""

    name = "group-kfold"
    help = "--split_fold folds with disjoint --group (speakers or sessions)"
    name_pattern = re.compile(rf"^(?P<folds>\d+)-groupfold_weights_(?P<fold>\d+){_SUFFIX}")
    fix = "use fewer folds (--split_fold), or more groups with that class"

    def splits(self, features: FeatureSet, settings: ProtocolSettings, source: str = "data") -> list[Split]:
        groups = group_values(features, settings.group, source)
        return group_kfold_splits(features.labels, groups, settings.folds, settings.seed, settings.group, source)

    def weights_name(self, split: Split, folds: int) -> str:
        return f"{folds}-groupfold_weights_{split.fold}.hdf5"

    def report_kind(self, folds: int) -> str:
        return f"{folds}groupfold"

    def options(self, settings: ProtocolSettings) -> dict:
        return {"group": settings.group}

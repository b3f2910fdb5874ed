"""Evaluation protocols: k-fold as scikit-learn's, stratified hold-out, leave one speaker out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import KFold

from timnet import protocols
from timnet.errors import UserError
from timnet.features.files import FeatureSet
from timnet.protocols import FoldIdentity, ProtocolSettings, holdout_split, kfold_splits, loso_splits


def _labels(n: int = 200, n_classes: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.choice(n_classes, size=n, p=[0.4, 0.25, 0.15, 0.12, 0.08][:n_classes])


@pytest.mark.parametrize(("n", "folds", "seed"), [(50, 10, 46), (37, 3, 0), (535, 10, 46)])
def test_kfold_equals_sklearn(n: int, folds: int, seed: int) -> None:
    ours = kfold_splits(n, folds, seed)
    ref = list(KFold(n_splits=folds, shuffle=True, random_state=seed).split(np.arange(n)))
    assert len(ours) == folds
    for i, (split, (train, test)) in enumerate(zip(ours, ref), start=1):
        assert split.fold == i and split.name == f"fold {i}"
        np.testing.assert_array_equal(split.train, train)
        np.testing.assert_array_equal(split.test, test)
    np.testing.assert_array_equal(np.sort(np.concatenate([s.test for s in ours])), np.arange(n))


def test_kfold_rejects_impossible_fold_counts() -> None:
    for folds in (1, 11):
        with pytest.raises(UserError, match="--split_fold"):
            kfold_splits(10, folds, 0)


def test_holdout_is_stratified_90_10_and_deterministic() -> None:
    labels = _labels()
    (split,) = holdout_split(labels, seed=46)
    assert split.fold == 1 and split.name == "holdout"
    assert len(split.test) == 20 and len(split.train) == 180
    assert not set(split.train) & set(split.test)
    np.testing.assert_array_equal(np.sort(np.concatenate([split.train, split.test])), np.arange(len(labels)))
    # Stratified: every class keeps its share (to within one utterance) in the test part.
    for c, count in enumerate(np.bincount(labels)):
        assert abs(np.sum(labels[split.test] == c) - count * 0.1) <= 1
    (again,) = holdout_split(labels, seed=46)
    np.testing.assert_array_equal(again.test, split.test)
    (other,) = holdout_split(labels, seed=47)
    assert not np.array_equal(other.test, split.test)


def test_holdout_on_a_corpus_too_small_to_stratify() -> None:
    """40 utterances, 5 classes: a 4-utterance test part cannot hold every class."""
    labels = np.arange(40) % 5
    (split,) = holdout_split(labels, seed=46)
    assert len(split.test) == 4 and len(split.train) == 36
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 2])  # class 2 has a single utterance
    (split,) = holdout_split(labels, seed=0)
    assert len(split.test) == 1
    with pytest.raises(UserError):
        holdout_split(np.array([0]), seed=0)


def test_loso_one_fold_per_speaker() -> None:
    speakers = np.array(["03", "08", "03", "10", "08", "03", "10", "16"])
    splits = loso_splits(speakers, "toy.npy")
    assert [s.name for s in splits] == ["speaker 03", "speaker 08", "speaker 10", "speaker 16"]
    assert [s.fold for s in splits] == [1, 2, 3, 4]
    for split in splits:
        speaker = split.name.removeprefix("speaker ")
        np.testing.assert_array_equal(split.test, np.flatnonzero(speakers == speaker))
        np.testing.assert_array_equal(split.train, np.flatnonzero(speakers != speaker))


def test_loso_needs_speakers() -> None:
    with pytest.raises(UserError, match="toy.npy.*speaker"):
        loso_splits(None, "toy.npy")
    with pytest.raises(UserError, match="two speakers"):
        loso_splits(np.array(["a", "a"]), "toy.npy")


def _features(labels: np.ndarray, speakers: np.ndarray | None = None) -> FeatureSet:
    n_classes = int(labels.max()) + 1
    return FeatureSet(np.zeros((len(labels), 4, 2), np.float32), np.eye(n_classes, dtype=np.float32)[labels],
                      tuple(f"c{i}" for i in range(n_classes)), "toy", speakers=speakers)


def test_one_registry_dispatches_every_protocol() -> None:
    labels = _labels(60)
    features = _features(labels, np.asarray([f"s{i % 3}" for i in range(60)]))
    settings = ProtocolSettings(seed=1, folds=4)
    assert len(protocols.get("holdout").splits(features, settings)) == 1
    assert len(protocols.get("kfold").splits(features, settings)) == 4
    assert len(protocols.get("loso").splits(features, settings)) == 3
    from timnet.config import PROTOCOLS

    assert PROTOCOLS == protocols.NAMES == tuple(protocols.REGISTRY)
    with pytest.raises(UserError, match="unknown protocol"):
        protocols.get("bootstrap")


def test_weights_names_are_written_and_parsed_by_their_protocol() -> None:
    """The original's names (hold-out, k-fold, LOSO) and ours parse back to the fold that wrote them."""
    labels = np.arange(40) % 4
    features = _features(labels, np.asarray([f"spk{i % 4}" for i in range(40)]))
    settings = ProtocolSettings(seed=46, folds=4)
    for name in ("holdout", "kfold", "loso", "group-kfold"):  # splits: in test_split_protocols.py
        protocol = protocols.get(name)
        splits = protocol.splits(features, settings)
        for split in splits:
            file_name = protocol.weights_name(split, len(splits))
            for suffix in (".hdf5", ".keras"):
                parsed = protocols.identify_file(Path(file_name).with_suffix(suffix))
                assert parsed is not None and parsed.protocol == name and parsed.fold == split.fold, file_name
                if name != "holdout":
                    assert protocol.rebuild(parsed, features, 46, "toy").held_out == split.held_out
    # The original's published names.
    assert protocols.identify_file(Path("10-fold_weights_best_3.hdf5")) == FoldIdentity("kfold", 3, 10)
    assert protocols.identify_file(Path("weights_best.hdf5")).protocol == "holdout"
    assert protocols.identify_file(Path("loso_weights_2_08.hdf5")).held_out == "08"
    assert protocols.identify_file(Path("model.keras")) is None
    assert protocols.identify_file(Path("splits_weights_2.keras")) == FoldIdentity("splits", 2)


def test_checkpoint_rule_and_report_names() -> None:
    labels = np.arange(40) % 4
    features = _features(labels, np.asarray([f"spk{i % 4}" for i in range(40)]))
    settings = ProtocolSettings(seed=46, folds=5)
    rules = {name: protocols.get(name).keeps_best_epoch(protocols.get(name).splits(features, settings)[0])
             for name in ("holdout", "kfold", "loso")}
    assert rules == {"holdout": True, "kfold": False, "loso": False}
    assert [protocols.get(n).report_kind(10) for n in ("holdout", "kfold", "loso")] == ["holdout", "10fold", "loso"]


def test_a_recorded_fold_identity_round_trips_and_rebuilds_its_split() -> None:
    labels = _labels(60)
    features = _features(labels)
    settings = ProtocolSettings(seed=7, folds=3)
    kfold = protocols.get("kfold")
    split = kfold.splits(features, settings)[1]
    identity = kfold.identity(split, 3, settings)
    again = FoldIdentity.from_dict(identity.to_dict())
    assert again == identity and again.seed == 7 and again.held_out == "2"
    # The recorded seed wins over the one a user types (the original's files have none).
    rebuilt = kfold.rebuild(again, features, default_seed=46, source="toy")
    np.testing.assert_array_equal(rebuilt.test, split.test)
    with pytest.raises(ValueError):
        FoldIdentity.from_dict({"fold": 1})


def test_select_folds_runs_a_protocol_in_parts():
    from timnet.errors import UserError
    from timnet.protocols import kfold_splits, select_folds

    splits = kfold_splits(30, 10, 46)
    assert [s.fold for s in select_folds(splits)] == list(range(1, 11))
    assert [s.fold for s in select_folds(splits, 5)] == list(range(5, 11))
    assert [s.fold for s in select_folds(splits, 5, 2)] == [5, 6]
    assert [s.fold for s in select_folds(splits, max_folds=3)] == [1, 2, 3]
    part = select_folds(splits, 4, 1)[0]
    assert (part.test == splits[3].test).all()
    for bad in ({"first_fold": 0}, {"first_fold": 11}, {"max_folds": 0}):
        with pytest.raises(UserError):
            select_folds(splits, **bad)

"""Testing trained weights on a feature file, as the original did (single model, k-fold or LOSO files)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from timnet.config import TrainingConfig
from timnet.errors import UserError
from timnet.evaluation.class_mapping import match_data
from timnet.evaluation.reports import EvaluationReport, FoldResult
from timnet.evaluation.scoring import class_centroids, evaluate, predict_array
from timnet.features.files import FeatureSet
from timnet.modelfiles.loading import load_model
from timnet.modelfiles.naming import WEIGHTS_FIRST, TrainedModel, find_trained_models
from timnet.training.protocols import Split, make_splits


def test(config: TrainingConfig, features: FeatureSet, test_path: Path, overrides: dict[str, Any],
         with_fused: bool = True) -> EvaluationReport:
    """Evaluate trained weights on ``features`` as the original did: a single model on
    the whole file; k-fold files fold by fold on the test parts of the same KFold
    splits (``config.random_seed``); LOSO files on their speaker's utterances.

    Classes are matched by name (:mod:`timnet.evaluation.class_mapping`): utterances of
    classes the model lacks are left out and counted. On data other than the model's
    training data (its recorded fingerprint differs), every model is scored on the whole file."""
    models = find_trained_models(test_path, WEIGHTS_FIRST)
    input_shape = tuple(features.x.shape[1:])
    folds: list[FoldResult] = []
    notes: list[str] = []
    head = None
    splits: list[Split] | None = None
    labels: tuple[str, ...] | None = None
    true_classes: tuple[int, ...] | None = None
    for trained in models:
        fold_start = time.perf_counter()
        loaded = load_model(trained.path, config.data, overrides, input_shape=input_shape)
        head = loaded.metadata.head
        match = match_data(trained.path, loaded.model, loaded.metadata, features)
        if labels is not None and match.mapping.model_labels != labels:
            raise UserError(f"{trained.path}: classes {', '.join(match.mapping.model_labels)} differ from the other "
                            f"models' in {test_path} ({', '.join(labels)})")
        labels, true_classes = match.mapping.model_labels, match.true_classes
        notes += [n for n in match.notes if n not in notes]
        kept = match.kept
        if not match.same_data:  # no folds of other data to rebuild: the whole file
            index, name = kept, _fold_name(trained)
            name = f"model of {name}" if trained.protocol in ("kfold", "loso") else name
        elif trained.protocol == "kfold":
            if splits is None or len(splits) != trained.folds:
                splits = make_splits("kfold", match.labels[kept], config.random_seed, trained.folds)
            index, name = kept[splits[trained.fold - 1].test], _fold_name(trained)
        elif trained.protocol == "loso":
            index, name = np.intersect1d(_speaker_index(trained, features), kept), _fold_name(trained)
        else:
            index, name = kept, "all"
        n_classes = len(labels)
        centroids = loaded.metadata.centroids
        if head == "embedding" and centroids is None:
            emb = predict_array(loaded.model, features.x, index)
            centroids = class_centroids(emb, match.labels[index], n_classes)
            notes.append(f"{trained.path.name}: no saved class centroids; scored with centroids of the "
                         "evaluated data itself (optimistic)")
        if centroids is not None and centroids.shape[0] != n_classes:
            raise UserError(f"{trained.path}: the model has {centroids.shape[0]} class centroids but "
                            f"{n_classes} classes ({', '.join(labels)})")
        folds.append(evaluate(loaded.model, features, index, trained.fold, name, centroids, str(trained.path),
                              with_fused=with_fused, labels=match.labels))
        folds[-1].seconds = time.perf_counter() - fold_start
    settings = {**config.as_dict(), "test_path": str(test_path)}
    return EvaluationReport(features.name, labels or features.class_labels, head or config.head, folds, settings,
                            notes, true_classes=true_classes)


def _fold_name(trained: TrainedModel) -> str:
    return {"kfold": f"fold {trained.fold}", "loso": f"speaker {trained.speaker}"}.get(trained.protocol, "all")


def _speaker_index(trained: TrainedModel, features: FeatureSet) -> np.ndarray:
    if features.speakers is None:
        raise UserError(f"{features.path}: LOSO weights need a 'speaker' key in the feature file")
    index = np.flatnonzero(features.speakers.astype(str) == trained.speaker)
    if not len(index):
        raise UserError(f"{trained.path.name}: speaker '{trained.speaker}' has no utterance in "
                        f"{features.path}; test LOSO weights on the feature file they were trained on")
    return index

"""Testing trained weights on a feature file, as the original did (single model, k-fold or LOSO files)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from timnet.config import TrainingConfig
from timnet.errors import UserError
from timnet.evaluation.reports import EvaluationReport, FoldResult
from timnet.evaluation.scoring import class_centroids, evaluate, predict_array
from timnet.features.files import FeatureSet
from timnet.modelfiles.loading import LoadedModel, load_model
from timnet.modelfiles.naming import WEIGHTS_FIRST, TrainedModel, find_trained_models
from timnet.training.protocols import Split, make_splits


def test(config: TrainingConfig, features: FeatureSet, test_path: Path, overrides: dict[str, Any],
         with_fused: bool = True) -> EvaluationReport:
    """Evaluate trained weights on ``features`` as the original did: a single model on
    the whole file; k-fold files fold by fold on the test parts of the same KFold
    splits (``config.random_seed``); LOSO files on their speaker's utterances."""
    models = find_trained_models(test_path, WEIGHTS_FIRST)
    input_shape = tuple(features.x.shape[1:])
    n_classes = len(features.class_labels)
    folds: list[FoldResult] = []
    notes: list[str] = []
    head = None
    splits: list[Split] | None = None
    for trained in models:
        fold_start = time.perf_counter()
        loaded = load_model(trained.path, config.data, overrides, input_shape=input_shape)
        head = loaded.metadata.head
        _check_classes(loaded, features)
        if trained.protocol == "kfold":
            if splits is None or len(splits) != trained.folds:
                splits = make_splits("kfold", features.labels, config.random_seed, trained.folds)
            index, name = splits[trained.fold - 1].test, f"fold {trained.fold}"
        elif trained.protocol == "loso":
            index, name = _speaker_index(trained, features), f"speaker {trained.speaker}"
        else:
            index, name = np.arange(len(features.x)), "all"
        centroids = loaded.metadata.centroids
        if head == "embedding" and centroids is None:
            emb = predict_array(loaded.model, features.x, index)
            centroids = class_centroids(emb, features.labels[index], n_classes)
            notes.append(f"{trained.path.name}: no saved class centroids; scored with centroids of the "
                         "evaluated data itself (optimistic)")
        if centroids is not None and centroids.shape[0] != n_classes:
            raise UserError(f"{trained.path}: the model has {centroids.shape[0]} class centroids but "
                            f"{features.path} has {n_classes} classes")
        folds.append(evaluate(loaded.model, features, index, trained.fold, name, centroids, str(trained.path),
                              with_fused=with_fused))
        folds[-1].seconds = time.perf_counter() - fold_start
    settings = {**config.as_dict(), "test_path": str(test_path)}
    return EvaluationReport(features.name, features.class_labels, head or config.head, folds, settings, notes)


def _speaker_index(trained: TrainedModel, features: FeatureSet) -> np.ndarray:
    if features.speakers is None:
        raise UserError(f"{features.path}: LOSO weights need a 'speaker' key in the feature file")
    index = np.flatnonzero(features.speakers.astype(str) == trained.speaker)
    if not len(index):
        raise UserError(f"{trained.path.name}: speaker '{trained.speaker}' has no utterance in "
                        f"{features.path}; test LOSO weights on the feature file they were trained on")
    return index


def _check_classes(loaded: LoadedModel, features: FeatureSet) -> None:
    """The model must take these features and predict these classes, in this order."""
    path, model, meta = loaded.path, loaded.model, loaded.metadata
    n = len(features.class_labels)
    if meta.head == "softmax":
        out = int(model.output_shape[-1])
        if out != n:
            raise UserError(f"{path}: the model predicts {out} classes but {features.path} has {n} "
                            f"({', '.join(features.class_labels)})")
    if meta.class_labels and meta.class_labels != tuple(features.class_labels):
        raise UserError(f"{path}: the model's classes ({', '.join(meta.class_labels)}) differ from "
                        f"{features.path}'s ({', '.join(features.class_labels)})")
    if meta.n_mfcc != features.x.shape[-1]:
        raise UserError(f"{path}: the model takes {meta.n_mfcc} MFCCs but {features.path} has {features.x.shape[-1]}")
    frames = model.input_shape[1]
    if frames is not None and frames != features.x.shape[1]:
        raise UserError(f"{path}: the model takes {frames} frames per utterance but {features.path} has "
                        f"{features.x.shape[1]}")

"""Testing trained weights on a feature file, as the original did: a single model on the whole file,
a fold's model on its fold's test part (the protocol rebuilds the split)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from timnet import protocols
from timnet.config import TrainingConfig
from timnet.errors import UserError
from timnet.evaluation.reports import EvaluationReport, FoldResult
from timnet.evaluation.scoring import class_centroids, evaluate, predict_array
from timnet.features.files import FeatureSet
from timnet.modelfiles.loading import LoadedModel, load_model
from timnet.modelfiles.naming import WEIGHTS_FIRST, find_trained_models, model_identity


def test(config: TrainingConfig, features: FeatureSet, test_path: Path, overrides: dict[str, Any],
         with_fused: bool = True) -> EvaluationReport:
    """Evaluate trained weights on ``features`` as the original did: a single model on
    the whole file; a fold's model on the test part of its fold, rebuilt by its
    protocol from what the model file records (protocol, fold, seed, held-out part),
    or, for the original's files, from the file name and ``config.random_seed``.
    ``report.kind`` is the protocol's report name."""
    models = find_trained_models(test_path, WEIGHTS_FIRST)
    input_shape = tuple(features.x.shape[1:])
    n_classes = len(features.class_labels)
    folds: list[FoldResult] = []
    notes: list[str] = []
    head = None
    kind = "test"
    source = str(features.path or features.name)
    for trained in models:
        fold_start = time.perf_counter()
        loaded = load_model(trained.path, config.data, overrides, input_shape=input_shape)
        head = loaded.metadata.head
        _check_classes(loaded, features)
        identity = model_identity(trained.path, loaded.metadata.fold)
        protocol = protocols.get(identity.protocol) if identity is not None else None
        if protocol is None or protocol.tests_whole_file:
            index, name = np.arange(len(features.x)), "all"
        else:
            split = protocol.rebuild(identity, features, config.random_seed, source)
            index, name = split.test, split.name
            kind = protocol.report_kind(len(models))
        centroids = loaded.metadata.centroids
        if head == "embedding" and centroids is None:
            emb = predict_array(loaded.model, features.x, index)
            centroids = class_centroids(emb, features.labels[index], n_classes)
            notes.append(f"{trained.path.name}: no saved class centroids; scored with centroids of the "
                         "evaluated data itself (optimistic)")
        if centroids is not None and centroids.shape[0] != n_classes:
            raise UserError(f"{trained.path}: the model has {centroids.shape[0]} class centroids but "
                            f"{features.path} has {n_classes} classes")
        fold = identity.fold if identity is not None else 1
        folds.append(evaluate(loaded.model, features, index, fold, name, centroids, str(trained.path),
                              with_fused=with_fused))
        folds[-1].seconds = time.perf_counter() - fold_start
    settings = {**config.as_dict(), "test_path": str(test_path)}
    return EvaluationReport(features.name, features.class_labels, head or config.head, folds, settings, notes,
                            kind=kind if len(folds) > 1 else "test")


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

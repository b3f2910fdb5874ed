"""Testing trained weights on a feature file, as the original did: a single model on the whole file,
a fold's model on its fold's test part (the protocol rebuilds the split)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from timnet import protocols
from timnet.config import TrainingConfig
from timnet.errors import UserError
from timnet.evaluation.class_mapping import match_data
from timnet.evaluation.reports import EvaluationReport, FoldResult
from timnet.evaluation.scoring import class_centroids, evaluate, predict_array
from timnet.features.classes import select_classes
from timnet.features.files import FeatureSet
from timnet.modelfiles.loading import load_model
from timnet.modelfiles.naming import WEIGHTS_FIRST, find_trained_models, model_identity


def test(config: TrainingConfig, features: FeatureSet, test_path: Path, overrides: dict[str, Any],
         with_fused: bool = True) -> EvaluationReport:
    """Evaluate trained weights on ``features`` as the original did: a single model on
    the whole file; a fold's model on the test part of its fold, rebuilt by its
    protocol from what the model file records (protocol, fold, seed, held-out part),
    or, for the original's files, from the file name and ``config.random_seed``.
    ``report.kind`` is the protocol's report name.

    Classes are matched by name (:mod:`timnet.evaluation.class_mapping`): utterances of
    classes the model lacks are left out and counted. On data other than the model's
    training data (its recorded fingerprint differs), every model is scored on the whole file."""
    models = find_trained_models(test_path, WEIGHTS_FIRST)
    input_shape = tuple(features.x.shape[1:])
    folds: list[FoldResult] = []
    notes: list[str] = []
    head = None
    labels: tuple[str, ...] | None = None
    true_classes: tuple[int, ...] | None = None
    kind = "test"
    source = str(features.path or features.name)
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
        identity = model_identity(trained.path, loaded.metadata.fold)
        protocol = protocols.get(identity.protocol) if identity is not None else None
        if protocol is None or protocol.tests_whole_file:
            index, name = kept, "all"
        elif not match.same_data:  # no folds of other data to rebuild: the whole file
            index, name = kept, f"model of {_fold_name(identity)}"
        else:  # the fold's test part, rebuilt on what the model trained on (a --classes subset: its classes)
            trained_on = features if len(kept) == len(features.x) else \
                select_classes(features, match.mapping.model_labels).features
            split = protocol.rebuild(identity, trained_on, config.random_seed, source)
            index, name = kept[split.test], split.name
            kind = protocol.report_kind(len(models))
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
        fold = identity.fold if identity is not None else 1
        folds.append(evaluate(loaded.model, features, index, fold, name, centroids, str(trained.path),
                              with_fused=with_fused, labels=match.labels))
        folds[-1].seconds = time.perf_counter() - fold_start
    settings = {**config.as_dict(), "test_path": str(test_path)}
    return EvaluationReport(features.name, labels or features.class_labels, head or config.head, folds, settings,
                            notes, true_classes=true_classes, kind=kind if len(folds) > 1 else "test")


def _fold_name(identity: protocols.FoldIdentity) -> str:
    """How a report names a fold's model scored on other data (no fold of that data)."""
    if identity.protocol == "loso":
        return f"speaker {identity.held_out}"
    held = f" ({identity.held_out})" if identity.held_out and identity.held_out != str(identity.fold) else ""
    return f"fold {identity.fold}{held}"

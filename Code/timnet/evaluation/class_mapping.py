"""A model meets a feature file: do the inputs fit, which classes do they share, and is
it the data the model was trained on?

:func:`match_data` answers all three for ``test``, ``TimNetModel.evaluate`` (and, for the
classes, ``export``): the frame counts and MFCCs must fit (else one error naming
``--mean_signal_length``); the file's classes are matched to the model's by name
(:func:`timnet.features.classes.map_classes`, synonyms included), utterances of classes
the model lacks are left out and counted; and the fingerprint the model file records of
its training data (``ModelMetadata.training_data``) says whether the file's folds are to
be rebuilt (the training data) or the file is to be scored whole (other data).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from timnet.errors import UserError
from timnet.features.classes import ClassMapping, map_classes
from timnet.features.corpora import HOP_LENGTH
from timnet.features.files import FeatureSet
from timnet.modelfiles.metadata import ModelMetadata


@dataclass
class DataMatch:
    """How one model file meets one feature file."""

    mapping: ClassMapping
    labels: np.ndarray  # the model's class index of every utterance of the file, -1: left out
    same_data: bool  # the file is the model's training data (its folds can be rebuilt)
    notes: list[str] = field(default_factory=list)

    @property
    def kept(self) -> np.ndarray:
        """Positions in the file of the utterances the model can be scored on."""
        return np.flatnonzero(self.labels >= 0)

    @property
    def true_classes(self) -> tuple[int, ...] | None:
        """The confusion matrix's rows (None: every model class, the usual square matrix)."""
        return None if self.mapping.identity else self.mapping.shared


def check_inputs(path: str | Path, model: Any, meta: ModelMetadata, features: FeatureSet) -> None:
    """The model must take these features: the same MFCCs and frames per utterance."""
    source = features.path or features.name
    if meta.n_mfcc != features.x.shape[-1]:
        raise UserError(f"{path}: the model takes {meta.n_mfcc} MFCCs but {source} has {features.x.shape[-1]}")
    frames = features.x.shape[1]
    expected = [model.input_shape[1]]
    if meta.mean_signal_length:
        expected.append(1 + meta.mean_signal_length // HOP_LENGTH)  # mfcc.n_frames, without librosa
    for want in expected:
        if want is not None and want != frames:
            length = f" ({meta.mean_signal_length} samples)" if meta.mean_signal_length else ""
            same = meta.mean_signal_length or (want - 1) * HOP_LENGTH
            raise UserError(f"{path}: the model takes {want} frames per utterance{length} but {source} has {frames}: "
                            f"extract both corpora alike (timnet extract ... --mean_signal_length {same})")


def model_labels(path: str | Path, model: Any, meta: ModelMetadata, features: FeatureSet) -> tuple[str, ...]:
    """The model's class names; a file without them (the original's) is taken to predict
    the feature file's classes, in order, when the number of outputs agrees."""
    if meta.class_labels:
        return tuple(meta.class_labels)
    n = len(features.class_labels)
    if meta.head == "softmax" and int(model.output_shape[-1]) != n:
        raise UserError(f"{path}: the model predicts {model.output_shape[-1]} classes but {features.path} has {n} "
                        f"({', '.join(features.class_labels)}), and the file names none to match by: export it "
                        "with --data <its training corpus> first")
    return tuple(features.class_labels)


def match_data(path: str | Path, model: Any, meta: ModelMetadata, features: FeatureSet) -> DataMatch:
    """Inputs checked, classes matched by name, training data recognised (see the module)."""
    check_inputs(path, model, meta, features)
    labels = model_labels(path, model, meta, features)
    if meta.head == "softmax" and int(model.output_shape[-1]) != len(labels):
        raise UserError(f"{path}: the model predicts {model.output_shape[-1]} classes but names {len(labels)}")
    source = str(features.path or features.name)
    mapping = map_classes(labels, features.class_labels, model=str(path), data=source)
    recorded = meta.training_data
    if recorded:
        same = recorded.get("sha256") == features.fingerprint()["sha256"]
    else:  # files written before the fingerprint, and the original's: the same classes, the same data
        same = mapping.identity
    match = DataMatch(mapping, mapping.model_labels_of(features.labels), same)
    if not mapping.identity:
        match.notes.append(f"classes matched by name between the model and {source}: {mapping.describe()}")
    left_out = mapping.left_out(features.labels)
    if left_out:
        detail = ", ".join(f"{c} {n}" for c, n in left_out.items())
        match.notes.append(f"{sum(left_out.values())} of {len(features.labels)} utterances of {source} left out: "
                           f"classes the model lacks ({detail})")
    if mapping.model_only:
        match.notes.append(f"the model's classes {', '.join(mapping.model_only)} have no utterance in {source}: "
                           "predicted-only columns of the confusion matrix (such a prediction counts as wrong)")
    if not same:
        trained_on = f" ({recorded.get('name')}, {recorded.get('utterances')} utterances)" if recorded else ""
        match.notes.append(f"{source} is not the data the model was trained on{trained_on}: every model is scored "
                           "on all of its utterances of shared classes (no folds to rebuild)")
    return match

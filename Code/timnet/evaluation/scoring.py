"""Scoring trained networks: batched inference, class centroids, cosine scores, one fold's evaluation.

The one place where embeddings become class scores: softmax models score with their
probabilities, embedding (N-pair) models with the cosine similarity to class centroids.
"""

from __future__ import annotations

import keras
import numpy as np

from timnet.evaluation.reports import FoldResult
from timnet.features.files import FeatureSet
from timnet.network.layers import model_head
from timnet.network.outputs import (  # noqa: F401  (the scoring API: re-exported)
    _PREDICT_FUNCTIONS,
    _predict_function,
    class_centroids,
    cosine_scores,
    inference_batch_size,
    predict_array,
)


def fusion_model(model: keras.Model) -> keras.Model:
    """The sub-network that outputs the fused 39-d features (before the head)."""
    return keras.Model(model.inputs, model.get_layer("fusion").output)


def evaluate(model: keras.Model, features: FeatureSet, index: np.ndarray, fold: int, name: str,
             centroids: np.ndarray | None, weights: str = "", with_fused: bool = False,
             labels: np.ndarray | None = None) -> FoldResult:
    """Predict the utterances ``index`` and compare with their labels: the file's, or
    ``labels`` (the model's class of every utterance, when the file has other classes:
    ``timnet.features.classes.ClassMapping``). The predicted class is the argmax over
    all of the model's classes."""
    outputs = predict_array(model, features.x, index)
    y_true = (features.labels if labels is None else np.asarray(labels))[index]
    embeddings = None
    if model_head(model) == "softmax":
        scores = outputs
    else:
        if centroids is None:
            raise ValueError("an embedding model needs class centroids to classify")
        embeddings, scores = outputs, cosine_scores(outputs, centroids)
    fused = predict_array(fusion_model(model), features.x, index) if with_fused else None
    files = features.files[index] if features.files is not None else None
    speakers = features.speakers[index] if features.speakers is not None else None
    return FoldResult(fold, name, np.asarray(index), y_true, np.argmax(scores, axis=1), scores, weights,
                      embeddings, fused, files, speakers)

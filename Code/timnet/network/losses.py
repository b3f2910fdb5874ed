"""Losses: the seed's N-pair (class-centroid) loss on L2-normalised embeddings."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


def batch_centroid_logits(y_true: Any, embeddings: Any) -> tuple[Any, Any]:
    """Logits ``e_i . c_k`` against the centroids of the classes present in the batch.

    Returns ``(logits, present)``. Classes absent from the batch get a very negative
    logit, so they take no probability mass (the original divided by a zero count and
    returned NaN for every sample of such a batch).
    """
    y_true = ops.cast(y_true, "float32")
    embeddings = ops.cast(embeddings, "float32")
    counts = ops.sum(y_true, axis=0)  # (C,)
    present = counts > 0
    sums = ops.matmul(ops.transpose(y_true), embeddings)  # (C, F)
    centroids = sums / ops.maximum(counts, 1.0)[:, None]
    logits = ops.matmul(embeddings, ops.transpose(centroids))  # (B, C)
    logits = ops.where(present[None, :], logits, ops.full_like(logits, -1e9))
    return logits, present


@keras.saving.register_keras_serializable(package="TIMNet")
class NPairLoss(keras.losses.Loss):
    """Softmax cross-entropy of embedding-to-batch-centroid similarities."""

    def __init__(self, name: str = "npair_loss", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        logits, _ = batch_centroid_logits(y_true, y_pred)
        log_probs = logits - ops.logsumexp(logits, axis=-1, keepdims=True)
        return -ops.sum(ops.cast(y_true, "float32") * log_probs, axis=-1)


@keras.saving.register_keras_serializable(package="TIMNet")
class NPairAccuracy(keras.metrics.MeanMetricWrapper):
    """Accuracy of the nearest batch centroid: what the N-pair loss optimises."""

    def __init__(self, name: str = "accuracy", dtype: Any = None) -> None:
        super().__init__(fn=_npair_accuracy, name=name, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype}


def _npair_accuracy(y_true: Any, y_pred: Any) -> Any:
    logits, _ = batch_centroid_logits(y_true, y_pred)
    return ops.cast(ops.equal(ops.argmax(logits, axis=-1), ops.argmax(y_true, axis=-1)), "float32")


def smooth_labels(y: Any, smoothing: float) -> Any:
    """The paper's label smoothing of the training targets: y (1 - s) + s / C."""
    if smoothing <= 0:
        return y
    return y * (1.0 - smoothing) + smoothing / y.shape[-1]


@keras.saving.register_keras_serializable(package="TIMNet")
class ConfusionUAR(keras.metrics.Metric):
    """Unweighted average recall (mean recall over the classes present) of a softmax head,
    from a confusion matrix accumulated batch by batch. Compiled into the model, so that
    ``fit``'s one validation pass gives ``val_uar`` beside ``val_loss`` and ``val_accuracy``;
    :attr:`counts` (rows: true class, columns: predicted) is what the exact figure is computed
    from (:func:`uar_from_counts`)."""

    def __init__(self, num_classes: int, name: str = "uar", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)
        self.num_classes = int(num_classes)
        self.counts = self.add_variable(shape=(self.num_classes, self.num_classes), initializer="zeros",
                                        dtype="float32", aggregation="sum", name="counts")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        truth = ops.one_hot(ops.argmax(y_true, axis=-1), self.num_classes, dtype="float32")
        predicted = ops.one_hot(ops.argmax(y_pred, axis=-1), self.num_classes, dtype="float32")
        self.counts.assign_add(ops.matmul(ops.transpose(truth), predicted))

    def result(self) -> Any:
        support = ops.sum(self.counts, axis=1)
        present = ops.cast(support > 0, "float32")
        recall = ops.diagonal(self.counts) / ops.maximum(support, 1.0)
        return ops.sum(recall * present) / ops.maximum(ops.sum(present), 1.0)

    def reset_state(self) -> None:
        self.counts.assign(ops.zeros_like(self.counts))

    def get_config(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "name": self.name, "dtype": self.dtype}


def find_metric(model: Any, kind: type) -> Any:
    """The compiled metric of type ``kind`` in ``model`` (Keras nests them), or None."""
    pending = list(getattr(model, "metrics", []))
    while pending:
        metric = pending.pop(0)
        if isinstance(metric, kind):
            return metric
        pending.extend(getattr(metric, "metrics", []) or [])
    return None

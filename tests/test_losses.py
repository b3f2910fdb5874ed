"""The N-pair (batch-centroid) loss and its accuracy against a NumPy computation."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from timnet.network.losses import NPairAccuracy, NPairLoss, batch_centroid_logits, smooth_labels


def _batch(labels: list[int], n_classes: int, dim: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    e = rng.normal(size=(len(labels), dim)).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    return np.eye(n_classes, dtype=np.float32)[labels], e


def _numpy_npair(y: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample loss and the predicted class, over the classes present in the batch only."""
    labels = y.argmax(axis=1)
    present = np.unique(labels)
    centroids = np.stack([e[labels == c].mean(axis=0) for c in present])  # mean embedding per class
    logits = e.astype(np.float64) @ centroids.T.astype(np.float64)  # e_i . c_k
    logits -= logits.max(axis=1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    target = np.searchsorted(present, labels)
    return -log_probs[np.arange(len(labels)), target], present[log_probs.argmax(axis=1)]


def _np(x) -> np.ndarray:
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("labels", [
    [0, 1, 2, 3, 0, 1, 2, 3, 0, 2],  # every class present
    [0, 0, 2, 2, 2, 3, 0, 3],  # class 1 missing from the batch
    [4, 4, 4, 4],  # a single class present
], ids=["all_classes", "missing_class", "one_class"])
def test_npair_loss_equals_numpy(labels: list[int]) -> None:
    y, e = _batch(labels, n_classes=5)
    per_sample, predicted = _numpy_npair(y, e)
    loss = NPairLoss()
    ours = _np(loss.call(y, e))
    assert np.all(np.isfinite(ours))
    np.testing.assert_allclose(ours, per_sample, rtol=1e-5, atol=1e-6)
    # The reduced value Keras trains on is the batch mean.
    np.testing.assert_allclose(float(_np(loss(y, e))), per_sample.mean(), rtol=1e-5)
    accuracy = NPairAccuracy()
    accuracy.update_state(y, e)
    np.testing.assert_allclose(float(_np(accuracy.result())), np.mean(predicted == y.argmax(axis=1)), rtol=1e-6)


def test_centroid_logits_and_present_mask() -> None:
    y, e = _batch([0, 0, 2, 2, 2], n_classes=4)
    logits, present = batch_centroid_logits(y, e)
    logits, present = _np(logits), _np(present)
    np.testing.assert_array_equal(present, [True, False, True, False])
    np.testing.assert_allclose(logits[:, 0], e @ e[:2].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(logits[:, 2], e @ e[2:].mean(axis=0), rtol=1e-5)
    assert np.all(logits[:, [1, 3]] < -1e8)


def test_gradient_is_finite_with_a_missing_class() -> None:
    y, e = _batch([0, 0, 2, 2, 3], n_classes=5)
    e = tf.Variable(e)
    with tf.GradientTape() as tape:
        value = NPairLoss()(y, e)
    grad = tape.gradient(value, e).numpy()
    assert np.isfinite(float(value)) and np.all(np.isfinite(grad)) and np.abs(grad).sum() > 0


def test_loss_prefers_embeddings_near_their_class() -> None:
    y = np.eye(2, dtype=np.float32)[[0, 0, 1, 1]]
    separated = np.asarray([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=np.float32)
    mixed = np.asarray([[1, 0], [0, 1], [1, 0], [0, 1]], dtype=np.float32)
    assert float(_np(NPairLoss()(y, separated))) < float(_np(NPairLoss()(y, mixed)))


def test_smooth_labels() -> None:
    y = np.eye(4, dtype=np.float32)[[0, 3]]
    np.testing.assert_allclose(smooth_labels(y, 0.1), y * 0.9 + 0.025)
    np.testing.assert_allclose(smooth_labels(y, 0.1).sum(axis=1), 1.0, rtol=1e-6)
    assert smooth_labels(y, 0.0) is y


def test_loss_and_metric_serialise() -> None:
    for obj in (NPairLoss(), NPairAccuracy()):
        revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(obj))
        assert type(revived) is type(obj) and revived.name == obj.name

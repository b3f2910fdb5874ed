"""Running a network on arrays: batched inference through one compiled function per
model, class centroids and cosine scores (below model files and evaluation, which
both need them; ``timnet.evaluation.scoring`` re-exports them).
"""

from __future__ import annotations

import weakref
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from timnet.config import CPU_INFERENCE_BATCH, GPU_INFERENCE_BATCH


def class_centroids(embeddings: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Mean embedding per class (zeros for a class with no sample)."""
    centroids = np.zeros((num_classes, embeddings.shape[1]), dtype=np.float32)
    for c in range(num_classes):
        members = embeddings[labels == c]
        if len(members):
            centroids[c] = members.mean(axis=0)
    return centroids


def cosine_scores(embeddings: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Cosine similarity of every embedding to every class centroid."""
    e = embeddings / (np.linalg.norm(embeddings, axis=1, keepdims=True) + 1e-12)
    c = centroids / (np.linalg.norm(centroids, axis=1, keepdims=True) + 1e-12)
    return (e @ c.T).astype(np.float32)


def inference_batch_size(device: str | None = None) -> int:
    """The batch size of predict, test and evaluate on ``device`` ("CPU" or "GPU"; by
    default the GPU when TensorFlow sees one): cache-sized on the CPU, large on a GPU
    (the figures are in benchmarks/bench_inference_batch.py and the README)."""
    if device is None:
        device = "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
    if device.upper() not in ("CPU", "GPU"):
        raise ValueError(f"device must be CPU or GPU, not {device!r}")
    return GPU_INFERENCE_BATCH if device.upper() == "GPU" else CPU_INFERENCE_BATCH


def predict_array(model: keras.Model, x: np.ndarray, index: np.ndarray | None = None,
                  batch_size: int | None = None) -> np.ndarray:
    """Model outputs for ``x[index]`` without copying the whole selection: batches of
    ``batch_size`` (default :func:`inference_batch_size`) through one compiled (graph)
    function per model, not eager calls."""
    index = np.arange(len(x)) if index is None else index
    batch_size = batch_size or inference_batch_size()
    if not len(index):
        return np.zeros((0,))
    predict = _predict_function(model)
    outputs = [predict(np.asarray(x[index[i : i + batch_size]], dtype=np.float32))
               for i in range(0, len(index), batch_size)]
    return np.concatenate([keras.ops.convert_to_numpy(o) for o in outputs])


_PREDICT_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _predict_function(model: keras.Model) -> Any:
    """A cached ``tf.function`` of the model in inference mode, any batch size. It runs
    on this process's copy of the weights (no cross-worker collectives), so one
    worker alone may call it."""
    fn = _PREDICT_FUNCTIONS.get(model)
    if fn is None:
        spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
        ref = weakref.ref(model)  # the cache must not keep the model alive
        fn = tf.function(lambda batch: ref()(batch, training=False), input_signature=[spec])
        _PREDICT_FUNCTIONS[model] = fn
    return fn

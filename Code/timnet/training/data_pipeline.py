"""tf.data input pipelines that gather batches from the one in-memory copy of the features.

``tf.data.Dataset.from_tensor_slices(x)`` would copy the whole feature array into the
graph; here only indices live in the dataset and each batch is gathered from the
NumPy array, so training holds one float32 copy of the features plus a few batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import tensorflow as tf

PARALLEL_BATCHES = 2  # batches gathered ahead of the training step


def make_dataset(
    x: np.ndarray,
    y: np.ndarray,
    index: np.ndarray | None = None,
    batch_size: int = 64,
    shuffle: bool = False,
    seed: int = 0,
) -> tf.data.Dataset:
    """Batches ``(x[i], y[i])`` for ``i`` in ``index`` (all rows by default);
    reshuffled every epoch, deterministically for a seed, when ``shuffle``."""
    index = np.arange(len(x)) if index is None else np.asarray(index, dtype=np.int64)
    x_shape, y_shape = x.shape[1:], y.shape[1:]

    def gather(batch_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order = np.sort(batch_index)  # sorted reads are faster; the batch is a set anyway
        return x[order].astype(np.float32, copy=False), y[order].astype(np.float32, copy=False)

    ds = tf.data.Dataset.from_tensor_slices(index)
    if shuffle:
        ds = ds.shuffle(len(index), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)

    def load(batch_index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        bx, by = tf.numpy_function(gather, [batch_index], [tf.float32, tf.float32], stateful=False)
        bx.set_shape((None, *x_shape))
        by.set_shape((None, *y_shape))
        return bx, by

    ds = ds.map(load, num_parallel_calls=PARALLEL_BATCHES, deterministic=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    # tf.data's autotuner stalls the start of about every other epoch by ~0.5 s while
    # the previous epoch's iterator shuts down (as long as an EMO-DB epoch of training);
    # a fixed pipeline depth keeps the cores as busy without it.
    options.autotune.enabled = False
    return ds.with_options(options).prefetch(PARALLEL_BATCHES)


def epoch_dataset(
    x: np.ndarray,
    y: np.ndarray,
    order_of_epoch: Callable[[], np.ndarray],
    batch_size: int = 64,
) -> tf.data.Dataset:
    """Batches ``(x[i], y[i])`` in the order ``order_of_epoch()`` returns, asked anew at the
    start of every pass, so that a callback can make each epoch's order a function of
    (seed, fold, epoch) alone: a resumed run then sees the same batches as an
    uninterrupted one. The cardinality stays unknown on purpose: Keras then opens the
    iterator of an epoch after ``on_epoch_begin`` (with a known one it opens the next
    epoch's iterator at the end of the previous epoch, before the callbacks run)."""
    x_shape, y_shape = x.shape[1:], y.shape[1:]

    def batches() -> Iterator[np.ndarray]:
        order = np.asarray(order_of_epoch(), dtype=np.int64)
        for start in range(0, len(order), batch_size):
            yield np.sort(order[start : start + batch_size])  # sorted reads are faster; a batch is a set

    def gather(batch_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x[batch_index].astype(np.float32, copy=False), y[batch_index].astype(np.float32, copy=False)

    def load(batch_index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        bx, by = tf.numpy_function(gather, [batch_index], [tf.float32, tf.float32], stateful=False)
        bx.set_shape((None, *x_shape))
        by.set_shape((None, *y_shape))
        return bx, by

    ds = tf.data.Dataset.from_generator(batches, output_signature=tf.TensorSpec((None,), tf.int64))
    ds = ds.map(load, num_parallel_calls=PARALLEL_BATCHES, deterministic=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.autotune.enabled = False  # see make_dataset
    return ds.with_options(options).prefetch(PARALLEL_BATCHES)

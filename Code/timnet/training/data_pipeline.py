"""tf.data input pipelines that gather batches from the one in-memory copy of the features.

``tf.data.Dataset.from_tensor_slices(x)`` would copy the whole feature array into the
graph; here only indices live in the dataset and each batch is gathered from the
NumPy array, so training holds one float32 copy of the features plus a few batches.
"""

from __future__ import annotations

from collections.abc import Callable

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
    order_of_epoch: Callable[[int], np.ndarray],
    first_epoch: int = 0,
    batch_size: int = 64,
) -> tuple[tf.data.Dataset, int]:
    """An endless stream of epochs ``first_epoch, first_epoch + 1, ...``: epoch k batches
    ``(x[i], y[i])`` in the order ``order_of_epoch(k)`` returns, so that each epoch's order
    is a function of (seed, fold, epoch) alone and a resumed run sees the same batches as
    an uninterrupted one. Returns the dataset and the steps of one epoch: pass both to
    ``fit`` (``steps_per_epoch``), which then keeps one iterator across the epochs. The
    epoch number lives in the pipeline, not in Python state, so prefetching the next
    epoch's first batches is harmless (and the pipeline keeps a known batch count: an
    unknown one made Keras' epochs about twice as slow)."""
    x_shape, y_shape = x.shape[1:], y.shape[1:]
    n = len(order_of_epoch(first_epoch))
    steps = -(-n // batch_size)

    def order(epoch: np.ndarray) -> np.ndarray:
        return np.asarray(order_of_epoch(int(epoch)), dtype=np.int64)

    def epoch_batches(epoch: tf.Tensor) -> tf.data.Dataset:
        index = tf.numpy_function(order, [epoch], tf.int64, stateful=False)
        index.set_shape((n,))
        return tf.data.Dataset.from_tensor_slices(index).batch(batch_size)

    def gather(batch_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = np.sort(batch_index)  # sorted reads are faster; a batch is a set
        return x[rows].astype(np.float32, copy=False), y[rows].astype(np.float32, copy=False)

    def load(batch_index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        bx, by = tf.numpy_function(gather, [batch_index], [tf.float32, tf.float32], stateful=False)
        bx.set_shape((None, *x_shape))
        by.set_shape((None, *y_shape))
        return bx, by

    ds = tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max).flat_map(epoch_batches)
    ds = ds.map(load, num_parallel_calls=PARALLEL_BATCHES, deterministic=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.autotune.enabled = False  # see make_dataset
    return ds.with_options(options).prefetch(PARALLEL_BATCHES), steps

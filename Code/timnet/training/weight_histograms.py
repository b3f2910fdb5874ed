"""TensorBoard weight histograms, cheap enough to write every epoch.

The original logged a histogram of every weight every epoch
(``keras.callbacks.TensorBoard(histogram_freq=1)``). Keras builds each histogram with a
dozen eager TensorFlow ops per weight; for TIM-Net's 101 weights that costs about 0.7 s
per epoch, more than an epoch of training on EMO-DB (the whole-epoch figure of
``benchmarks/bench_speed.py`` includes it). Here each weight is copied to NumPy and
bucketed there with TensorBoard's own rule (30 equal-width buckets from min to max), and
written as the same summary under the same tag: one TensorFlow op per weight.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tensorboard.plugins.histogram import metadata as histogram_metadata

BUCKETS = 30  # TensorBoard's default


def histogram_buckets(values: Any, bucket_count: int = BUCKETS) -> np.ndarray:
    """TensorBoard's histogram tensor: one ``[left edge, right edge, count]`` row per
    bucket, equal-width buckets from the minimum to the maximum (the maximum falls in
    the last bucket); a constant array puts every count in the last bucket."""
    data = np.asarray(values, dtype=np.float64).ravel()
    if data.size == 0:
        return np.zeros((bucket_count, 3))
    low, high = data.min(), data.max()
    if low == high:
        counts = np.zeros(bucket_count)
        counts[-1] = data.size
        edges = np.full(bucket_count, high)
        return np.stack([edges, edges, counts], axis=1)
    width = (high - low) / bucket_count
    index = np.minimum(np.floor((data - low) / width).astype(np.int64), bucket_count - 1)
    counts = np.bincount(index, minlength=bucket_count).astype(np.float64)
    edges = np.linspace(low, high, bucket_count + 1)
    edges[-1] = high
    return np.stack([edges[:-1], edges[1:], counts], axis=1)


class WeightHistograms(keras.callbacks.Callback):
    """Every ``freq`` epochs (0: never), a histogram of every weight into
    ``log_dir/train``, tagged ``<weight path>/histogram`` as Keras' TensorBoard callback
    tags them, so the Histograms and Distributions dashboards show them as before."""

    def __init__(self, log_dir: str | Path, freq: int = 1) -> None:
        super().__init__()
        self.log_dir = Path(log_dir)
        self.freq = int(freq)
        self._writer: Any = None
        self._metadata = histogram_metadata.create_summary_metadata(display_name=None, description=None)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.freq <= 0 or epoch % self.freq:
            return
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self.log_dir / "train"))
        weights = [weight for layer in self.model.layers for weight in layer.weights]
        with self._writer.as_default():
            for weight in weights:
                tag = f"{weight.path.replace(':', '_')}/histogram"
                buckets = histogram_buckets(keras.ops.convert_to_numpy(weight.value))
                tf.summary.write(tag=tag, tensor=buckets, step=epoch, metadata=self._metadata)
        self._writer.flush()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

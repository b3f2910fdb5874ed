"""Weight histograms: TensorBoard's buckets, under the tags Keras' TensorBoard uses."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.histogram import summary_v2

from timnet.network.layers import build_timnet_model
from timnet.training.weight_histograms import WeightHistograms, histogram_buckets


@pytest.mark.parametrize(
    "values",
    [
        np.random.default_rng(0).normal(size=(39, 39)),
        np.random.default_rng(1).uniform(-0.05, 0.05, size=(8, 1)),
        np.full(39, 0.25),  # a constant array (a fresh bias, BN gamma)
        np.array([1.0, 2.0]),
    ],
)
def test_buckets_equal_tensorboards(values: np.ndarray) -> None:
    expected = summary_v2._buckets(tf.constant(values), tf.constant(30)).numpy()
    np.testing.assert_allclose(histogram_buckets(values), expected, rtol=1e-12, atol=1e-12)


def _histogram_tags(log_dir: Path) -> dict[str, int]:
    """Tag -> number of histogram events, from every event file under ``log_dir/train``."""
    accumulator = EventAccumulator(str(log_dir / "train"), size_guidance={"tensors": 0})
    accumulator.Reload()
    return {tag: len(accumulator.Tensors(tag)) for tag in accumulator.Tags()["tensors"]
            if tag.endswith("/histogram")}


def test_callback_writes_what_keras_tensorboard_writes(tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    model = build_timnet_model((12, 5), 3, filters=5, dilation_size=2, bidirection=True)
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(16, 12, 5)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[np.arange(16) % 3]
    ours, keras_dir = tmp_path / "ours", tmp_path / "keras"
    model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[
        WeightHistograms(ours, freq=2), keras.callbacks.TensorBoard(str(keras_dir), histogram_freq=2)])
    ours_tags, keras_tags = _histogram_tags(ours), _histogram_tags(keras_dir)
    assert len(ours_tags) == len(model.weights)
    assert ours_tags == keras_tags  # the same tags, each written at epochs 0 and 2
    assert set(ours_tags.values()) == {2}
    accumulator = EventAccumulator(str(ours / "train"), size_guidance={"tensors": 0})
    accumulator.Reload()
    kernel = model.get_layer("dense").kernel
    last = tf.make_ndarray(accumulator.Tensors(f"{kernel.path}/histogram")[-1].tensor_proto)
    np.testing.assert_allclose(last, histogram_buckets(keras.ops.convert_to_numpy(kernel)))

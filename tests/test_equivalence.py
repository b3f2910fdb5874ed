"""The fast TIM-Net (branches stacked in each layer) computes what the plain
layer-by-layer network (``plain_timnet.py``) computes, for the same weights."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from timnet.evaluation.scoring import predict_array
from timnet.network.layers import build_timnet_model, legacy_weight_order, set_legacy_weight_order
from timnet.network.losses import NPairLoss
from timnet.network.reference import (
    build_plain_timnet,
    copy_weights_from_plain,
    copy_weights_to_plain,
    plain_legacy_weight_order,
)

T, F, C = 24, 6, 4
ARCH = dict(filters=5, kernel_size=2, stack_size=1, dilation_size=3, activation="relu")


def _rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _pair(head: str, bidirection: bool, dropout: float = 0.0) -> tuple[keras.Model, keras.Model]:
    keras.utils.set_random_seed(1)
    ours = build_timnet_model((T, F), C, head=head, dropout=dropout, bidirection=bidirection, **ARCH)
    plain = build_plain_timnet((T, F), C, head=head, dropout=dropout, bidirection=bidirection, **ARCH)
    # Non-trivial BN statistics and affine terms, so that a wrong branch/slot shows.
    entries = []
    for i, (kind, arrays) in enumerate(legacy_weight_order(ours)):
        if kind == "batch_normalization":
            gamma, beta, mean, var = (_rand(*a.shape, seed=10 * i + j) for j, a in enumerate(arrays))
            arrays = [1 + 0.1 * gamma, beta, mean, 1 + np.abs(var)]
        entries.append((kind, arrays))
    set_legacy_weight_order(ours, entries)
    copy_weights_to_plain(ours, plain)
    return ours, plain


def _assert_same_weights(ours: keras.Model, plain: keras.Model, **tol: float) -> None:
    for (k1, a1), (k2, a2) in zip(legacy_weight_order(ours), plain_legacy_weight_order(plain), strict=True):
        assert k1 == k2
        for x, y in zip(a1, a2, strict=True):
            np.testing.assert_allclose(x, y, **tol)


@pytest.mark.parametrize("head", ["softmax", "embedding"])
@pytest.mark.parametrize("bidirection", [True, False])
def test_inference_outputs_match_plain(head: str, bidirection: bool) -> None:
    ours, plain = _pair(head, bidirection, dropout=0.3)
    x = _rand(9, T, F, seed=5)
    expected = keras.ops.convert_to_numpy(plain(x, training=False))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours(x, training=False)), expected, rtol=1e-5, atol=1e-6)
    # The compiled batched inference path of the project gives the same numbers.
    np.testing.assert_allclose(predict_array(ours, x, batch_size=4), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(predict_array(ours, x, np.array([7, 2])), expected[[7, 2]], rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("head", ["softmax", "embedding"])
@pytest.mark.parametrize("bidirection", [True, False])
def test_training_step_matches_plain(head: str, bidirection: bool) -> None:
    """Training mode with dropout 0: the same loss, and after one SGD step (lr 1, so the
    step is the gradient) the same weights, BN moving statistics included."""
    ours, plain = _pair(head, bidirection)
    loss = keras.losses.CategoricalCrossentropy() if head == "softmax" else NPairLoss()
    for model in (ours, plain):
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), loss=loss, jit_compile=False)
    x = _rand(8, T, F, seed=6)
    y = np.eye(C, dtype=np.float32)[np.arange(8) % C]
    loss_ours = ours.train_on_batch(x, y)
    loss_plain = plain.train_on_batch(x, y)
    np.testing.assert_allclose(loss_ours, loss_plain, rtol=1e-5)
    _assert_same_weights(ours, plain, rtol=1e-4, atol=1e-5)


def test_weight_copy_round_trip() -> None:
    ours, plain = _pair("softmax", True)
    other = build_timnet_model((T, F), C, dropout=0.0, bidirection=True, **ARCH)
    copy_weights_from_plain(plain, other)
    for (_, a), (_, b) in zip(legacy_weight_order(ours), legacy_weight_order(other), strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)


def test_mixed_precision_head_is_float32() -> None:
    """Under mixed_float16 the network computes in float16 but the head in float32."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_timnet_model((T, F), C, dropout=0.0, **ARCH)
        assert model.get_layer("timnet").compute_dtype == "float16"
        out = model(_rand(3, T, F), training=False)
        assert keras.backend.standardize_dtype(out.dtype) == "float32"
        np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.ops.sum(out, axis=1)), 1.0, rtol=1e-5)
    finally:
        keras.mixed_precision.set_global_policy("float32")

"""TIM-Net layers: shapes, causality, serialisation, parameter count, receptive field."""

from __future__ import annotations

import logging

import keras
import numpy as np
import pytest

from timnet.network import layers as TIMNET
from timnet.network.layers import (
    BranchBatchNormalization,
    BranchCausalConv1D,
    BranchSpatialDropout1D,
    DynamicFusion,
    L2Normalize,
    TemporalAwareBlock,
    TIMNet,
    build_timnet_model,
)

B, T, F = 3, 20, 39


def _rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


# --- shapes --------------------------------------------------------------------------------


@pytest.mark.parametrize("branches", [1, 2])
def test_branch_layer_shapes(branches: int) -> None:
    x = _rand(branches, B, T, F)
    conv = BranchCausalConv1D(16, kernel_size=2, dilation_rate=4, branches=branches)
    assert tuple(conv(x).shape) == (branches, B, T, 16)
    assert tuple(conv.kernel.shape) == (branches, 2, F, 16)
    assert conv.compute_output_shape(x.shape) == (branches, B, T, 16)
    bn = BranchBatchNormalization()
    assert tuple(bn(x, training=True).shape) == x.shape
    assert tuple(bn.gamma.shape) == (branches, F)
    drop = BranchSpatialDropout1D(0.5, seed=1)
    dropped = keras.ops.convert_to_numpy(drop(x, training=True))
    assert dropped.shape == x.shape
    # Spatial dropout zeroes whole channels of a sequence: a column is all zero or none.
    zero = dropped == 0
    assert np.array_equal(zero.all(axis=2), zero.any(axis=2))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(drop(x, training=False)), x)
    tab = TemporalAwareBlock(F, 2, 2, 0.1, "relu", branches)
    assert tuple(tab(x).shape) == x.shape


@pytest.mark.parametrize(("bidirection", "stack_size", "dilation_size"), [(True, 1, 3), (False, 1, 3), (True, 2, 2)])
def test_timnet_output_shape(bidirection: bool, stack_size: int, dilation_size: int) -> None:
    net = TIMNet(filters=F, stack_size=stack_size, dilation_size=dilation_size, bidirection=bidirection)
    out = net(_rand(B, T, F))
    assert tuple(out.shape) == (B, stack_size * dilation_size, F)
    assert net.scales == stack_size * dilation_size
    assert net.branches == (2 if bidirection else 1)
    assert len(net.blocks) == stack_size * dilation_size
    assert net.compute_output_shape((B, T, F)) == (B, stack_size * dilation_size, F)
    for head, width in (("softmax", 4), ("embedding", F)):
        model = build_timnet_model((T, F), 4, head=head, stack_size=stack_size, dilation_size=dilation_size,
                                   bidirection=bidirection)
        assert tuple(model(_rand(B, T, F)).shape) == (B, width)


def test_timnet_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError):
        TIMNet(dilation_size=0)
    with pytest.raises(ValueError):
        build_timnet_model((T, F), 4, head="logits")


# --- the mathematics -----------------------------------------------------------------------


@pytest.mark.parametrize(("kernel_size", "dilation"), [(2, 1), (2, 4), (3, 2), (2, T), (3, 16)])
def test_branch_conv_equals_keras_causal_conv_per_branch(kernel_size: int, dilation: int) -> None:
    x = _rand(2, B, T, F)
    layer = BranchCausalConv1D(8, kernel_size=kernel_size, dilation_rate=dilation, branches=2)
    ours = keras.ops.convert_to_numpy(layer(x))
    for b in range(2):
        ref = keras.layers.Conv1D(8, kernel_size, padding="causal", dilation_rate=dilation)
        ref.build((None, T, F))
        ref.set_weights([keras.ops.convert_to_numpy(layer.kernel)[b], keras.ops.convert_to_numpy(layer.bias)[b]])
        np.testing.assert_allclose(ours[b], keras.ops.convert_to_numpy(ref(x[b])), rtol=1e-5, atol=1e-5)


def test_inference_block_folds_batch_norm_into_the_convolution() -> None:
    """In inference the TAB folds BN into the conv kernel and bias: the same as conv,
    then BN, then relu, computed one layer after the other."""
    x = _rand(2, B, T, F)
    tab = TemporalAwareBlock(F, 2, 4, 0.3, "relu", 2)
    tab.build(x.shape)
    for conv, bn in ((tab.conv_1, tab.bn_1), (tab.conv_2, tab.bn_2)):
        conv.set_weights([keras.ops.convert_to_numpy(conv.kernel), _rand(*conv.bias.shape, seed=9)])
        gamma, beta, mean, var = (_rand(*w.shape, seed=i + 1) for i, w in enumerate(bn.weights))
        bn.set_weights([1 + 0.1 * gamma, beta, mean, 1 + np.abs(var)])
    h = x
    for conv, bn in ((tab.conv_1, tab.bn_1), (tab.conv_2, tab.bn_2)):
        h = keras.ops.relu(bn(conv(h), training=False))
    expected = x * keras.ops.convert_to_numpy(keras.ops.sigmoid(h))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(tab(x, training=False)), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_training_block_folds_dropout_into_batch_norm(activation: str) -> None:
    """In training the TAB applies BN and the dropout mask as one multiply-add before the
    activation: the same as BN, activation, dropout one after the other with the same masks."""
    x = _rand(2, B, T, F)
    fused, steps = (TemporalAwareBlock(F, 2, 2, 0.5, activation, 2, name=f"tab_{i}") for i in range(2))
    for tab in (fused, steps):
        tab.build(x.shape)
    steps.set_weights(fused.get_weights())
    for tab in (fused, steps):  # the same dropout masks: same seeds, drawn in the same order
        tab.drop_1.seed_generator = keras.random.SeedGenerator(7)
        tab.drop_2.seed_generator = keras.random.SeedGenerator(8)
    h = x
    for conv, bn, drop in ((steps.conv_1, steps.bn_1, steps.drop_1), (steps.conv_2, steps.bn_2, steps.drop_2)):
        h = drop(keras.activations.get(activation)(bn(conv(h), training=True)), training=True)
    expected = x * keras.ops.convert_to_numpy(keras.ops.sigmoid(h))
    out = keras.ops.convert_to_numpy(fused(x, training=True))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    for a, b in zip(fused.get_weights(), steps.get_weights(), strict=True):  # moving statistics too
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_batch_norm_matches_keras_per_branch() -> None:
    x = _rand(2, B, T, F) * 3 + 1
    ours = BranchBatchNormalization()
    out_train = keras.ops.convert_to_numpy(ours(x, training=True))
    for b in range(2):
        ref = keras.layers.BatchNormalization()
        ref.build((None, T, F))
        np.testing.assert_allclose(out_train[b], keras.ops.convert_to_numpy(ref(x[b], training=True)),
                                   rtol=1e-4, atol=1e-4)
        ref(x[b], training=True)  # a second update, to compare the moving statistics below
    ours(x, training=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours.moving_mean)[1],
                               keras.ops.convert_to_numpy(ref.moving_mean), rtol=1e-5, atol=1e-6)


def test_backward_branch_sees_reversed_time() -> None:
    """Forward-only output changes when the input is reversed; the bi-directional network with
    both branches' weights swapped gives the same output on the reversed input."""
    x = _rand(B, T, F)
    net = TIMNet(filters=F, dilation_size=2, bidirection=True)
    out = keras.ops.convert_to_numpy(net(x))
    swapped = [np.flip(keras.ops.convert_to_numpy(w), axis=0) for w in net.weights]
    net.set_weights(swapped)
    out_rev = keras.ops.convert_to_numpy(net(np.flip(x, axis=1)))
    np.testing.assert_allclose(out, out_rev, rtol=1e-4, atol=1e-5)


def test_dynamic_fusion_and_l2_normalize() -> None:
    h = _rand(B, 5, F)
    fusion = DynamicFusion()
    out = keras.ops.convert_to_numpy(fusion(h))
    w = keras.ops.convert_to_numpy(fusion.kernel)[:, 0]
    np.testing.assert_allclose(out, np.einsum("bjc,j->bc", h, w), rtol=1e-5, atol=1e-6)
    e = keras.ops.convert_to_numpy(L2Normalize()(out))
    np.testing.assert_allclose(e, out / (np.linalg.norm(out, axis=1, keepdims=True) + 1e-5), rtol=1e-5)


# --- parameters and receptive field --------------------------------------------------------


def test_paper_model_has_106992_parameters() -> None:
    """Defaults, --bidirection, softmax head, 7 classes (EMO-DB): the paper's network."""
    model = build_timnet_model((T, F), 7, head="softmax", bidirection=True)
    assert model.count_params() == 106_992


def test_forward_only_embedding_parameter_count() -> None:
    # 1x1 conv (39*39+39) + 8 TABs x (2 convs of 2*39*39+39, 2 BN of 4*39) + fusion 8.
    model = build_timnet_model((T, F), 5, head="embedding", bidirection=False)
    assert model.count_params() == 1560 + 8 * (2 * 3081 + 2 * 156) + 8


@pytest.mark.parametrize(("kernel_size", "stack_size", "dilation_size", "expected"),
                         [(2, 1, 8, 511), (2, 1, 10, 2047), (2, 2, 8, 1021), (3, 1, 3, 29)])
def test_receptive_field(kernel_size: int, stack_size: int, dilation_size: int, expected: int) -> None:
    net = TIMNet(kernel_size=kernel_size, stack_size=stack_size, dilation_size=dilation_size)
    assert net.receptive_field == expected


def test_receptive_field_is_what_the_forward_branch_sees() -> None:
    """A frame further back than the receptive field cannot change the last frame's output of
    the last block, one inside it can (checked on the block stack itself)."""
    # tanh: no dead ReLU zone can hide the one path from the oldest frame.
    net = TIMNet(filters=4, kernel_size=2, dilation_size=3, dropout=0.0, activation="tanh", bidirection=False)
    rf = net.receptive_field  # 1 + 2 * (1 + 2 + 4) = 15
    time = rf + 5
    net.build((1, time, 4))

    def last_frame(x: np.ndarray) -> np.ndarray:
        h = net.input_conv(x[None])
        for block in net.blocks:
            h = block(h, training=False)
        return keras.ops.convert_to_numpy(h)[0, 0, -1]

    x = _rand(time, 4)[None]
    base = last_frame(x[0:1])
    outside, inside = x.copy(), x.copy()
    outside[0, time - rf - 1] += 10.0
    inside[0, time - rf] += 10.0
    np.testing.assert_allclose(last_frame(outside[0:1]), base, rtol=1e-6, atol=1e-6)
    assert np.abs(last_frame(inside[0:1]) - base).max() > 1e-6


def test_receptive_field_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=TIMNET.__name__):
        build_timnet_model((511, F), 4, dilation_size=8)
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger=TIMNET.__name__):
        build_timnet_model((512, F), 4, dilation_size=8)
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "511" in message and "512" in message and "--dilation_size" in message


# --- serialisation -------------------------------------------------------------------------


@pytest.mark.parametrize("head", ["softmax", "embedding"])
def test_keras_file_round_trip(head: str, tmp_path) -> None:
    model = build_timnet_model((T, F), 5, head=head, stack_size=2, dilation_size=2, bidirection=True)
    x = _rand(4, T, F, seed=3)
    # Non-trivial BN statistics, so that a lost moving mean/variance would show.
    for i, layer in enumerate(model.get_layer("timnet")._flatten_layers()):
        if isinstance(layer, BranchBatchNormalization):
            layer.moving_mean.assign(_rand(*layer.moving_mean.shape, seed=i))
            layer.moving_variance.assign(1.0 + np.abs(_rand(*layer.moving_variance.shape, seed=100 + i)))
    path = tmp_path / f"{head}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(x, training=False)),
                                  keras.ops.convert_to_numpy(loaded(x, training=False)))
    assert TIMNET.model_head(loaded) == head
    assert loaded.get_layer("timnet").get_config() == model.get_layer("timnet").get_config()


@pytest.mark.parametrize("layer", [
    BranchCausalConv1D(7, kernel_size=3, dilation_rate=4, branches=1, name="c"),
    BranchBatchNormalization(momentum=0.9, epsilon=1e-4, name="bn"),
    BranchSpatialDropout1D(0.3, seed=4, name="d"),
    TemporalAwareBlock(12, 3, 8, 0.2, "elu", 1, name="tab"),
    TIMNet(filters=12, kernel_size=3, stack_size=2, dilation_size=4, dropout=0.2, activation="tanh",
           bidirection=False, name="net"),
    DynamicFusion(name="f"),
    L2Normalize(epsilon=1e-3, name="l2"),
], ids=lambda layer: type(layer).__name__)
def test_get_config_round_trip(layer: keras.layers.Layer) -> None:
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    # Also through Keras' registry, as a .keras file deserialises it.
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(revived) is type(layer) and revived.get_config() == config

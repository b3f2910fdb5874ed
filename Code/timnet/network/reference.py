"""TIM-Net written layer by layer with standard Keras layers: the reference.

Every branch is its own chain of ``Conv1D(padding="causal")``, ``BatchNormalization``,
``Activation`` and ``SpatialDropout1D`` layers, created in the original's order, so
the network is the obvious reading of the paper. ``TIMNET.py`` computes the same
function with both branches stacked into one tensor; the equivalence tests and
``benchmarks/bench_speed.py`` compare the two with the same weights.
"""

from __future__ import annotations

import re
from typing import Any

import keras
from keras import ops

from timnet.network.layers import HEADS, LEGACY_BN, LEGACY_CONV, LEGACY_DENSE, LEGACY_FUSION, DynamicFusion, L2Normalize
from timnet.network.layers import legacy_weight_order as fast_legacy_weight_order
from timnet.network.layers import set_legacy_weight_order as fast_set_legacy_weight_order

_LEGACY_KIND = {
    keras.layers.Conv1D: LEGACY_CONV,
    keras.layers.BatchNormalization: LEGACY_BN,
    DynamicFusion: LEGACY_FUSION,
    keras.layers.Dense: LEGACY_DENSE,
}


@keras.saving.register_keras_serializable(package="TIMNetPlain")
class TimeReverse(keras.layers.Layer):
    """Reverses the time axis of ``(batch, time, channels)``: the backward branch's input."""

    def call(self, inputs: Any) -> Any:
        return ops.flip(inputs, axis=1)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape


def _temporal_aware_block(x: Any, filters: int, kernel_size: int, dilation: int, dropout: float,
                          activation: str, name: str) -> Any:
    """(causal conv -> BN -> activation -> spatial dropout) x 2, sigmoid gate on the input."""
    h = x
    for stage in (1, 2):
        h = keras.layers.Conv1D(filters, kernel_size, dilation_rate=dilation, padding="causal",
                                name=f"{name}_conv_{stage}")(h)
        h = keras.layers.BatchNormalization(name=f"{name}_bn_{stage}")(h)
        h = keras.layers.Activation(activation, name=f"{name}_act_{stage}")(h)
        h = keras.layers.SpatialDropout1D(dropout, name=f"{name}_drop_{stage}")(h)
    gate = keras.layers.Activation("sigmoid", name=f"{name}_gate")(h)
    return keras.layers.Multiply(name=f"{name}_mul")([x, gate])


def build_plain_timnet(
    input_shape: tuple[int, int],
    num_classes: int,
    head: str = "softmax",
    filters: int = 39,
    kernel_size: int = 2,
    stack_size: int = 1,
    dilation_size: int = 8,
    dropout: float = 0.1,
    activation: str = "relu",
    bidirection: bool = True,
    name: str = "TIMNetPlain",
) -> keras.Model:
    """The same classifier as :func:`TIMNET.build_timnet_model` (same arguments), one
    standard Keras layer per operation and branch."""
    if head not in HEADS:
        raise ValueError(f"unknown head '{head}' (choose from {', '.join(HEADS)})")
    inputs = keras.Input(shape=tuple(input_shape), name="mfcc")
    branches = {"fwd": inputs}
    if bidirection:
        branches["bwd"] = TimeReverse(name="time_reverse")(inputs)
    h = {
        key: keras.layers.Conv1D(filters, 1, padding="causal", name=f"{key}_input_conv")(x)
        for key, x in branches.items()
    }
    pooled = []
    for s in range(stack_size):
        for dilation in (2**i for i in range(dilation_size)):
            for key in h:
                h[key] = _temporal_aware_block(h[key], filters, kernel_size, dilation, dropout, activation,
                                               name=f"{key}_tab_s{s}_d{dilation}")
            summed = keras.layers.Add(name=f"add_s{s}_d{dilation}")(list(h.values())) if len(h) > 1 else h["fwd"]
            mean = keras.layers.GlobalAveragePooling1D(name=f"pool_s{s}_d{dilation}")(summed)
            pooled.append(keras.layers.Reshape((1, filters), name=f"scale_s{s}_d{dilation}")(mean))
    multi_scale = keras.layers.Concatenate(axis=1, name="scales")(pooled) if len(pooled) > 1 else pooled[0]
    fused = DynamicFusion(name="fusion")(multi_scale)
    if head == "softmax":
        outputs = keras.layers.Dense(num_classes, activation="softmax", name="dense")(fused)
    else:
        outputs = L2Normalize(name="l2_normalize")(fused)
    return keras.Model(inputs, outputs, name=name)


_BRANCH = {"fwd": 0, "bwd": 1}
_STAGE = {"conv_1": 0, "bn_1": 1, "conv_2": 2, "bn_2": 3}
_TAB_NAME = re.compile(r"^(fwd|bwd)_tab_s(\d+)_d(\d+)_(conv_1|bn_1|conv_2|bn_2)$")


def _creation_key(name: str) -> tuple[int, ...]:
    """Position of a weighted layer in the original's creation order: input convs, then
    per block the forward branch's (conv, BN, conv, BN) and the backward branch's,
    then fusion and dense. ``model.layers`` is topological, which interleaves them."""
    if name.endswith("_input_conv"):
        return (0, _BRANCH[name.split("_")[0]])
    if m := _TAB_NAME.match(name):
        return (1, int(m.group(2)), int(m.group(3)), _BRANCH[m.group(1)], _STAGE[m.group(4)])
    return (2, 0) if name == "fusion" else (3, 0)


def _weighted_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Weighted layers in creation order (branch by branch, as the original)."""
    return sorted((layer for layer in model.layers if layer.weights), key=lambda layer: _creation_key(layer.name))


def plain_legacy_weight_order(model: keras.Model) -> list[tuple[str, list[Any]]]:
    """The plain model's weights as ``(Keras 2 type, [arrays])`` in creation order: the
    format of :func:`TIMNET.legacy_weight_order`."""
    return [(_LEGACY_KIND[type(layer)], [ops.convert_to_numpy(w) for w in layer.weights])
            for layer in _weighted_layers(model)]


def set_plain_legacy_weight_order(model: keras.Model, entries: list[tuple[str, list[Any]]]) -> None:
    layers = _weighted_layers(model)
    kinds = [_LEGACY_KIND[type(layer)] for layer in layers]
    if kinds != [k for k, _ in entries]:
        raise ValueError("layer types differ from the plain model's")
    for layer, (_, arrays) in zip(layers, entries):
        layer.set_weights(list(arrays))


def copy_weights_to_plain(model: keras.Model, plain: keras.Model) -> None:
    """Give ``plain`` the weights of the stacked-branch ``model`` (same architecture)."""
    set_plain_legacy_weight_order(plain, fast_legacy_weight_order(model))


def copy_weights_from_plain(plain: keras.Model, model: keras.Model) -> None:
    """Give the stacked-branch ``model`` the weights of ``plain`` (same architecture)."""
    fast_set_legacy_weight_order(model, plain_legacy_weight_order(plain))

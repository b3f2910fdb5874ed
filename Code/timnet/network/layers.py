"""TIM-Net: Temporal-aware bI-direction Multi-scale Network (Ye et al., ICASSP 2023).

The forward and the time-reversed (backward) branch share their structure but not
their weights. Instead of building every layer twice, each layer here holds the
weights of all branches stacked on a leading *branch* axis. Called on its own, a
layer takes ``(branches, batch, time, channels)``. Inside ``TIMNet`` each branch
stays its own ``(batch, time, channels)`` tensor (the ``call_branches`` methods),
and every operation runs on one branch's tensor. Two formulations make it fast on a
CPU without changing the mathematics: a causal dilated convolution is computed as one
matmul over the time-delayed input copies (no space-to-batch reshuffling), and the
per-channel factors of batch norm and spatial dropout are folded into one
multiply-add before a relu (in inference, batch norm is folded into the matmul's
kernel and bias). Delayed copies are cut with ``ops.slice``, whose gradient is a pad:
a strided slice's gradient kernel alone took a quarter of a training step.
``benchmarks/bench_speed.py`` measures the gain. The mathematics is exactly the
original's (``Code/plain_timnet.py`` is the layer-by-layer reference used by the
equivalence tests and benchmarks).

Layers:
- ``BranchCausalConv1D``: causal dilated Conv1D, one kernel per branch.
- ``BranchBatchNormalization``: BatchNormalization per branch and channel.
- ``BranchSpatialDropout1D``: SpatialDropout1D per branch.
- ``TemporalAwareBlock``: (conv, BN, activation, spatial dropout) x 2, sigmoid gate
  multiplied with the block input.
- ``TIMNet``: 1x1 causal conv, then ``stack_size`` x ``dilation_size`` TABs with
  dilations 1, 2, 4, ...; after each, branches summed and averaged over time.
  Output ``(batch, scales, filters)``.
- ``DynamicFusion``: the original ``WeightLayer``, a learnt weighted sum of scales.
- ``L2Normalize``: the seed's embedding head, ``x / (||x|| + 1e-5)``.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import keras
from keras import ops

from timnet.config import HEADS, ArchitectureConfig

logger = logging.getLogger(__name__)
# The layer's defaults are the configuration's (one source of truth).
_ARCH = ArchitectureConfig()

# Keras 2 layer-type names used by the original files, in creation order.
LEGACY_CONV = "conv1d"
LEGACY_BN = "batch_normalization"
LEGACY_FUSION = "weight_layer"
LEGACY_DENSE = "dense"


def _replicas_in_sync() -> int:
    """Replicas training one model together (a distribution strategy's), 1 otherwise."""
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    return int(context.num_replicas_in_sync) if context is not None else 1


def _branches(stacked: Any, n: int) -> list[Any]:
    """``(branches, batch, time, channels)`` -> one ``(batch, time, channels)`` per branch."""
    return [stacked[b] for b in range(n)]


def _stacked(branches: list[Any]) -> Any:
    return ops.stack(branches, axis=0)


@keras.saving.register_keras_serializable(package="TIMNet")
class BranchCausalConv1D(keras.layers.Layer):
    """Causal dilated 1-D convolution with an independent kernel per branch.

    Input and output are ``(branches, batch, time, channels)``. The kernel has
    Keras' Conv1D layout per branch: ``(branches, kernel_size, in, filters)``.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int = 2,
        dilation_rate: int = 1,
        branches: int = 2,
        kernel_initializer: Any = "glorot_uniform",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.dilation_rate = int(dilation_rate)
        self.branches = int(branches)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        channels = int(input_shape[-1])
        fan_shape = (self.kernel_size, channels, self.filters)
        init = self.kernel_initializer
        # Initialise each branch like a Keras Conv1D kernel (same fan-in/fan-out).
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.branches, *fan_shape),
            initializer=lambda shape, dtype=None: ops.stack(
                [init(fan_shape, dtype=dtype) for _ in range(shape[0])]
            ),
        )
        self.bias = self.add_weight(name="bias", shape=(self.branches, self.filters), initializer="zeros")

    def call(self, inputs: Any) -> Any:
        return _stacked(self.call_branches(_branches(inputs, self.branches)))

    def call_branches(
        self,
        inputs: list[Any],
        affine: list[tuple[Any, Any]] | None = None,
        activation: Any = None,
    ) -> list[Any]:
        """One ``(batch, time, in)`` tensor per branch -> one ``(batch, time, filters)`` each.

        A causal convolution is one matmul: tap ``j`` sees the input delayed by
        ``(kernel_size - 1 - j) * dilation`` frames, so the delayed copies side by side
        times the kernel flattened to ``(kernel_size * in, filters)`` is the output.
        On the CPU this is faster than the native dilated convolution, which
        reshuffles the tensor (space-to-batch) before and after every kernel.

        ``affine`` (per branch ``(scale, shift)`` of a following inference-mode batch
        norm) is folded into the kernel and bias, and ``activation`` applied, so that
        matmul, bias and activation run as one fused kernel.
        """
        outs = []
        for b, x in enumerate(inputs):
            channels = x.shape[2]
            taps = [self._delayed(x, (self.kernel_size - 1 - j) * self.dilation_rate) for j in range(self.kernel_size)]
            stacked_taps = taps[0] if len(taps) == 1 else ops.concatenate(taps, axis=-1)
            kernel = ops.reshape(ops.cast(self.kernel[b], x.dtype), (self.kernel_size * channels, self.filters))
            bias = ops.cast(self.bias[b], x.dtype)
            if affine is not None:
                scale, shift = affine[b]
                kernel, bias = kernel * scale, bias * scale + shift
            out = ops.matmul(ops.reshape(stacked_taps, (-1, self.kernel_size * channels)), kernel) + bias
            if activation is not None:
                out = activation(out)
            outs.append(ops.reshape(out, (-1, ops.shape(x)[1], self.filters)))
        return outs

    @staticmethod
    def _delayed(x: Any, delay: int) -> Any:
        """``x`` delayed by ``delay`` frames along time, zeros shifted in (causal padding)."""
        if delay == 0:
            return x
        # ops.slice, not [:, :time]: its gradient is a cheap pad, a strided slice's is not.
        return ops.slice(ops.pad(x, [[0, 0], [delay, 0], [0, 0]]), (0, 0, 0), ops.shape(x))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (*input_shape[:-1], self.filters)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "dilation_rate": self.dilation_rate,
            "branches": self.branches,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }


@keras.saving.register_keras_serializable(package="TIMNet")
class BranchBatchNormalization(keras.layers.Layer):
    """BatchNormalization over (batch, time) for every branch and channel, with
    Keras' defaults (momentum 0.99, epsilon 1e-3) as the original used."""

    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        shape = (int(input_shape[0]), int(input_shape[-1]))
        self.gamma = self.add_weight(name="gamma", shape=shape, initializer="ones")
        self.beta = self.add_weight(name="beta", shape=shape, initializer="zeros")
        self.moving_mean = self.add_weight(
            name="moving_mean", shape=shape, initializer="zeros", trainable=False, autocast=False,
            aggregation="mean",  # replicas of a distributed run average their updates
        )
        self.moving_variance = self.add_weight(
            name="moving_variance", shape=shape, initializer="ones", trainable=False, autocast=False,
            aggregation="mean",  # replicas of a distributed run average their updates
        )

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        return _stacked(self.call_branches(_branches(inputs, int(self.gamma.shape[0])), training))

    def call_branches(self, inputs: list[Any], training: bool | None = None) -> list[Any]:
        """One ``(batch, time, channels)`` tensor per branch."""
        return [x * scale + shift for x, (scale, shift) in zip(inputs, self.affine_branches(inputs, training))]

    def affine_branches(self, inputs: list[Any], training: bool | None = None) -> list[tuple[Any, Any]]:
        """Per branch, the ``(scale, shift)`` with which the layer maps ``x`` to
        ``x * scale + shift``; in training, from the batch statistics (and the moving
        statistics are updated). Lets a block fold more per-channel factors in."""
        if training:
            # Several replicas (--gpu 0,1, several workers) normalise with the statistics of
            # the whole global batch, as one device does, not of their own share of it.
            sync = _replicas_in_sync() > 1
            stats = [ops.moments(ops.cast(x, "float32"), axes=(0, 1), synchronized=sync) for x in inputs]
            mean = ops.stack([m for m, _ in stats])
            variance = ops.stack([v for _, v in stats])
            m = self.momentum
            self.moving_mean.assign(self.moving_mean * m + mean * (1 - m))
            self.moving_variance.assign(self.moving_variance * m + variance * (1 - m))
        else:
            mean, variance = ops.cast(self.moving_mean, "float32"), ops.cast(self.moving_variance, "float32")
        scale = ops.cast(self.gamma, "float32") * ops.rsqrt(variance + self.epsilon)
        shift = ops.cast(self.beta, "float32") - mean * scale
        return [(ops.cast(scale[b], x.dtype), ops.cast(shift[b], x.dtype)) for b, x in enumerate(inputs)]

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="TIMNet")
class BranchSpatialDropout1D(keras.layers.Layer):
    """SpatialDropout1D for each branch: drops whole channels of a sequence."""

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        return _stacked(self.call_branches(_branches(inputs, int(inputs.shape[0])), training))

    def call_branches(self, inputs: list[Any], training: bool | None = None) -> list[Any]:
        masks = self.mask_branches(inputs, training)
        return [x if mask is None else x * mask for x, mask in zip(inputs, masks)]

    def mask_branches(self, inputs: list[Any], training: bool | None = None) -> list[Any]:
        """Per branch, a ``(batch, 1, channels)`` factor: 0 for a dropped channel,
        ``1 / (1 - rate)`` for a kept one; ``None`` when nothing is dropped."""
        if not training or self.rate <= 0:
            return [None] * len(inputs)
        masks = []
        for x in inputs:
            noise = keras.random.uniform((ops.shape(x)[0], 1, x.shape[2]), seed=self.seed_generator)
            masks.append(ops.cast(noise >= self.rate, x.dtype) * ops.cast(1.0 / (1.0 - self.rate), x.dtype))
        return masks

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


@keras.saving.register_keras_serializable(package="TIMNet")
class TemporalAwareBlock(keras.layers.Layer):
    """TAB: two (causal dilated conv -> BN -> activation -> spatial dropout) stages
    whose sigmoid gates the block input element-wise."""

    def __init__(
        self,
        filters: int = _ARCH.filters,
        kernel_size: int = _ARCH.kernel_size,
        dilation_rate: int = 1,
        dropout: float = _ARCH.dropout,
        activation: str = _ARCH.activation,
        branches: int = 2,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.dilation_rate = int(dilation_rate)
        self.dropout = float(dropout)
        self.activation = activation
        self.branches = int(branches)
        self._activation_fn = keras.activations.get(activation)
        conv = dict(filters=filters, kernel_size=kernel_size, dilation_rate=dilation_rate, branches=branches)
        self.conv_1 = BranchCausalConv1D(**conv, name="conv_1")
        self.bn_1 = BranchBatchNormalization(name="bn_1")
        self.drop_1 = BranchSpatialDropout1D(dropout, name="drop_1")
        self.conv_2 = BranchCausalConv1D(**conv, name="conv_2")
        self.bn_2 = BranchBatchNormalization(name="bn_2")
        self.drop_2 = BranchSpatialDropout1D(dropout, name="drop_2")

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        if int(input_shape[-1]) != self.filters:
            # The original would add a 1x1 projection here; TIM-Net's 1x1 input conv
            # always maps to `filters` channels first, so it never exists.
            raise ValueError(f"TemporalAwareBlock expects {self.filters} channels, got {input_shape[-1]}")
        out_shape = (*input_shape[:-1], self.filters)
        self.conv_1.build(input_shape)
        self.bn_1.build(out_shape)
        self.conv_2.build(out_shape)
        self.bn_2.build(out_shape)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        return _stacked(self.call_branches(_branches(inputs, self.branches), training))

    def call_branches(self, inputs: list[Any], training: bool | None = None) -> list[Any]:
        h = inputs
        for conv, bn, drop in ((self.conv_1, self.bn_1, self.drop_1), (self.conv_2, self.bn_2, self.drop_2)):
            if not training:
                # Inference: the batch norm is a fixed per-channel affine map (moving
                # statistics; `h` only gives the dtype); fold it into the convolution.
                # Dropout is the identity.
                h = conv.call_branches(h, affine=bn.affine_branches(h, training), activation=self._activation_fn)
                continue
            h = conv.call_branches(h)
            affine = bn.affine_branches(h, training)
            h = [self._normalise_activate_drop(x, scale, shift, mask)
                 for x, (scale, shift), mask in zip(h, affine, drop.mask_branches(h, training))]
        return [x * ops.sigmoid(g) for x, g in zip(inputs, h)]

    def _normalise_activate_drop(self, x: Any, scale: Any, shift: Any, mask: Any) -> Any:
        """``activation(x * scale + shift) * mask`` (no mask: no dropout). For relu,
        relu(z) * m == relu(z * m) with m >= 0, so the channel-sized mask rides on BN's
        factors and the tensor gets no pass of its own for it."""
        if mask is None:
            return self._activation_fn(x * scale + shift)
        if self.activation == "relu":
            return self._activation_fn(x * (scale * mask) + shift * mask)
        return self._activation_fn(x * scale + shift) * mask


    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "dilation_rate": self.dilation_rate,
            "dropout": self.dropout,
            "activation": self.activation,
            "branches": self.branches,
        }


@keras.saving.register_keras_serializable(package="TIMNet")
class TIMNet(keras.layers.Layer):
    """The bi-directional multi-scale temporal network.

    Input ``(batch, time, features)``; output ``(batch, stack_size * dilation_size,
    filters)``: one time-averaged vector per temporal-aware block (scale), the
    forward and backward branches summed. Without ``bidirection`` only the
    forward branch exists.
    """

    def __init__(
        self,
        filters: int = _ARCH.filters,
        kernel_size: int = _ARCH.kernel_size,
        stack_size: int = _ARCH.stack_size,
        dilation_size: int = _ARCH.dilation_size,
        dropout: float = _ARCH.dropout,
        activation: str = _ARCH.activation,
        bidirection: bool = _ARCH.bidirection,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.stack_size = int(stack_size)
        self.dilation_size = int(dilation_size)
        self.dropout = float(dropout)
        self.activation = activation
        self.bidirection = bool(bidirection)
        if min(self.filters, self.kernel_size, self.stack_size, self.dilation_size) < 1:
            raise ValueError("filters, kernel_size, stack_size and dilation_size must be >= 1")
        branches = self.branches
        self.input_conv = BranchCausalConv1D(filters, kernel_size=1, branches=branches, name="input_conv")
        self.blocks = [
            TemporalAwareBlock(
                filters, kernel_size, dilation, dropout, activation, branches, name=f"tab_s{s}_d{dilation}"
            )
            for s in range(self.stack_size)
            for dilation in self.dilations
        ]

    @property
    def branches(self) -> int:
        return 2 if self.bidirection else 1

    @property
    def dilations(self) -> list[int]:
        """Dilation rates of the blocks in one stack: 1, 2, 4, ..."""
        return [2**i for i in range(self.dilation_size)]

    @property
    def scales(self) -> int:
        return self.stack_size * self.dilation_size

    @property
    def receptive_field(self) -> int:
        """Frames that the last block of a branch can see (two convs per block)."""
        return 1 + 2 * (self.kernel_size - 1) * self.stack_size * sum(self.dilations)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        time = input_shape[1]
        if time is not None and self.receptive_field < time:
            logger.warning(
                "TIM-Net receptive field (%d frames) is shorter than the input (%d frames): "
                "raise --dilation_size or --stack_size to cover it",
                self.receptive_field,
                time,
            )
        branch_shape = (self.branches, input_shape[0], time, int(input_shape[-1]))
        self.input_conv.build(branch_shape)
        block_shape = (*branch_shape[:-1], self.filters)
        for block in self.blocks:
            block.build(block_shape)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        h = [inputs, ops.flip(inputs, axis=1)] if self.bidirection else [inputs]
        h = self.input_conv.call_branches(h)
        pooled = []
        for block in self.blocks:
            h = block.call_branches(h, training)
            # Time mean of the branch sum = sum of the branches' time means.
            pooled.append(sum(ops.mean(x, axis=1) for x in h[1:]) + ops.mean(h[0], axis=1))
        return ops.stack(pooled, axis=1)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], self.scales, self.filters)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "stack_size": self.stack_size,
            "dilation_size": self.dilation_size,
            "dropout": self.dropout,
            "activation": self.activation,
            "bidirection": self.bidirection,
        }

    # --- weights in the original's (Keras 2) creation order -------------------------

    def legacy_layers(self) -> list[tuple[str, keras.layers.Layer, int]]:
        """(Keras 2 type, our layer, branch index) for every weighted layer of the
        original network, in the order the original created them."""
        order: list[tuple[str, keras.layers.Layer, int]] = [
            (LEGACY_CONV, self.input_conv, b) for b in range(self.branches)
        ]
        for block in self.blocks:
            for b in range(self.branches):
                order += [
                    (LEGACY_CONV, block.conv_1, b),
                    (LEGACY_BN, block.bn_1, b),
                    (LEGACY_CONV, block.conv_2, b),
                    (LEGACY_BN, block.bn_2, b),
                ]
        return order


@keras.saving.register_keras_serializable(package="TIMNet")
class DynamicFusion(keras.layers.Layer):
    """The original ``WeightLayer``: ``out[b, c] = sum_j h[b, j, c] * w[j]``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.kernel = self.add_weight(
            name="kernel",
            shape=(int(input_shape[1]), 1),
            initializer=keras.initializers.RandomUniform(-0.05, 0.05),
        )

    def call(self, inputs: Any) -> Any:
        return ops.einsum("bjc,j->bc", inputs, ops.cast(self.kernel[:, 0], inputs.dtype))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], input_shape[2])


@keras.saving.register_keras_serializable(package="TIMNet")
class L2Normalize(keras.layers.Layer):
    """The seed's embedding head: ``x / (||x||_2 + epsilon)``."""

    def __init__(self, epsilon: float = 1e-5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, inputs: Any) -> Any:
        return inputs / (ops.sqrt(ops.sum(ops.square(inputs), axis=-1, keepdims=True)) + self.epsilon)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "epsilon": self.epsilon}




def build_timnet_model(
    input_shape: tuple[int | None, int],
    num_classes: int,
    architecture: ArchitectureConfig | None = None,
    head: str = "softmax",
    name: str = "TIMNet",
    **fields: Any,
) -> keras.Model:
    """The full classifier: TIM-Net -> dynamic fusion -> head.

    ``head="softmax"`` is the paper's Dense(C, softmax); ``head="embedding"`` is the
    seed's L2-normalised fused vector (classified by cosine similarity to class
    centroids). The fused vector is the output of the layer named ``fusion``.
    ``fields`` override single fields of ``architecture`` (``dilation_size=4``).
    """
    if head not in HEADS:
        raise ValueError(f"unknown head '{head}' (choose from {', '.join(HEADS)})")
    arch = dataclasses.replace(architecture or ArchitectureConfig(), **fields)
    inputs = keras.Input(shape=tuple(input_shape), name="mfcc")
    multi_scale = TIMNet(**arch.as_dict(), name="timnet")(inputs)
    fused = DynamicFusion(name="fusion")(multi_scale)
    # Under a mixed-precision policy the head (softmax / normalisation) runs in float32.
    head_dtype = {"dtype": "float32"} if keras.config.dtype_policy().name.startswith("mixed") else {}
    if head == "softmax":
        outputs = keras.layers.Dense(num_classes, activation="softmax", name="dense", **head_dtype)(fused)
    else:
        outputs = L2Normalize(name="l2_normalize", **head_dtype)(fused)
    return keras.Model(inputs, outputs, name=name)


def timnet_layer(model: keras.Model) -> TIMNet:
    return model.get_layer("timnet")


def model_head(model: keras.Model) -> str:
    names = {layer.name for layer in model.layers}
    return "softmax" if "dense" in names else "embedding"


def legacy_weight_order(model: keras.Model) -> list[tuple[str, list[Any]]]:
    """Weights of ``model`` as the original Keras 2 model lists them: one
    ``(type, [arrays])`` entry per weighted layer, in creation order."""
    entries: list[tuple[str, list[Any]]] = []
    for kind, layer, b in timnet_layer(model).legacy_layers():
        entries.append((kind, [ops.convert_to_numpy(v)[b] for v in layer.weights]))
    entries.append((LEGACY_FUSION, [ops.convert_to_numpy(model.get_layer("fusion").kernel)]))
    if model_head(model) == "softmax":
        dense = model.get_layer("dense")
        entries.append((LEGACY_DENSE, [ops.convert_to_numpy(w) for w in dense.weights]))
    return entries


def set_legacy_weight_order(model: keras.Model, entries: list[tuple[str, list[Any]]]) -> None:
    """Inverse of :func:`legacy_weight_order` (shapes and types must match)."""
    import numpy as np

    expected = legacy_weight_order(model)
    if [k for k, _ in entries] != [k for k, _ in expected]:
        raise ValueError("layer types differ from the model's")
    targets: list[tuple[Any, int | None]] = []
    for _kind, layer, b in timnet_layer(model).legacy_layers():
        targets.append((layer, b))
    targets.append((model.get_layer("fusion"), None))
    if model_head(model) == "softmax":
        targets.append((model.get_layer("dense"), None))
    staged: dict[int, list[Any]] = {}
    for (layer, b), (_, arrays), (_, want) in zip(targets, entries, expected):
        if len(arrays) != len(want) or any(np.shape(a) != np.shape(w) for a, w in zip(arrays, want)):
            raise ValueError(
                f"shape mismatch for {layer.name}: got {[np.shape(a) for a in arrays]}, "
                f"expected {[np.shape(w) for w in want]}"
            )
        if b is None:
            layer.set_weights([np.asarray(a) for a in arrays])
            continue
        current = staged.setdefault(id(layer), [ops.convert_to_numpy(v).copy() for v in layer.weights])
        for slot, array in zip(current, arrays):
            slot[b] = array
        layer.set_weights(current)

"""Weights files of the original Keras 2 TIM-Net load into our network with identical outputs.

The reference networks are built here with tf_keras (legacy Keras 2) layer for
layer as the original builds them, trained a step, saved with ``save_weights`` and
loaded through ``legacy_weights``.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from timnet.modelfiles.keras2 import (
    LegacyWeightsError,
    build_model_from_weights,
    check_compatible,
    infer_architecture,
    load_into_model,
    read_weight_file,
    write_weight_file,
)
from timnet.network import layers as TIMNET

T, F = 24, 39


# --- the original network, in Keras 2 ----------------------------------------------------


def _keras2():
    import tensorflow as tf
    import tf_keras as keras2

    return tf, keras2


def _original_layers():
    tf, keras2 = _keras2()

    class Reverse(keras2.layers.Layer):
        def call(self, x):
            return tf.reverse(x, axis=[1])

    class WeightLayer(keras2.layers.Layer):
        def build(self, input_shape):
            self.kernel = self.add_weight(name="kernel", shape=(input_shape[1], 1), initializer="uniform")

        def call(self, x):
            return tf.squeeze(tf.matmul(tf.transpose(x, [0, 2, 1]), self.kernel), axis=-1)

    return Reverse, WeightLayer


def build_original(dilations: int, classes: int | None, bidirection: bool = True, dropout: float = 0.1):
    """The original TIM-Net in Keras 2, layers created in the original's order."""
    tf, keras2 = _keras2()
    L = keras2.layers
    Reverse, WeightLayer = _original_layers()

    def tab(x, d):
        h = x
        for _ in range(2):
            h = L.Conv1D(F, 2, dilation_rate=d, padding="causal")(h)
            h = L.BatchNormalization()(h)
            h = L.Activation("relu")(h)
            h = L.SpatialDropout1D(dropout)(h)
        return L.Multiply()([x, L.Activation("sigmoid")(h)])

    inputs = keras2.Input((T, F))
    forward = L.Conv1D(F, 1, padding="causal")(inputs)
    backward = L.Conv1D(F, 1, padding="causal")(Reverse()(inputs)) if bidirection else None
    scales = []
    for d in [2**i for i in range(dilations)]:
        forward = tab(forward, d)
        if bidirection:
            backward = tab(backward, d)
            merged = L.Add()([forward, backward])
        else:
            merged = forward
        pooled = L.GlobalAveragePooling1D()(merged)
        scales.append(L.Lambda(lambda t: tf.expand_dims(t, 1))(pooled))
    multi = L.Concatenate(axis=1)(scales) if len(scales) > 1 else scales[0]
    fused = WeightLayer()(multi)
    if classes:
        out = L.Dense(classes, activation="softmax")(fused)
    else:
        out = L.Lambda(lambda v: v / (tf.norm(v, axis=-1, keepdims=True) + 1e-5))(fused)
    return keras2.Model(inputs, out)


def train_and_save(model, path: Path, rng: np.random.Generator) -> None:
    """One training step (weights and batch-norm statistics move), then random BN
    statistics so that every BN weight matters, then ``save_weights``."""
    _, keras2 = _keras2()
    x = rng.normal(size=(8, T, F)).astype("float32")
    width = model.output_shape[-1]
    y = np.eye(width, dtype="float32")[rng.integers(0, width, 8)]
    model.compile(optimizer=keras2.optimizers.Adam(1e-2), loss="mse", run_eagerly=True)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    for layer in model.layers:
        if isinstance(layer, keras2.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights(
                [
                    gamma + rng.normal(0, 0.3, gamma.shape),
                    beta + rng.normal(0, 0.3, beta.shape),
                    mean + rng.normal(0, 0.3, mean.shape),
                    var * rng.uniform(0.5, 2.0, var.shape),
                ]
            )
    model.save_weights(str(path))


CASES = {
    # name: (dilations, classes, bidirection, clear the Keras 2 session first)
    "bi_softmax": (8, 7, True, True),
    "bi_embedding": (8, None, True, True),
    "forward_only": (8, 4, False, True),
    "ten_dilations": (10, 4, True, True),
    "after_another_model": (8, 7, True, False),  # names continue from the previous model
}


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """name -> (weights path, input batch, Keras 2 outputs)."""
    _, keras2 = _keras2()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, T, F)).astype("float32")
    out = {}
    tmp = tmp_path_factory.mktemp("legacy")
    for name, (dilations, classes, bidirection, clear) in CASES.items():
        if clear:
            keras2.backend.clear_session()
        model = build_original(dilations, classes, bidirection)
        path = tmp / f"{name}.hdf5"
        train_and_save(model, path, rng)
        out[name] = (path, x, model(x, training=False).numpy())
    keras2.backend.clear_session()
    return out


# --- loading the original's files -----------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_original_weights_give_identical_outputs(originals, name):
    path, x, expected = originals[name]
    dilations, classes, bidirection, _ = CASES[name]
    model, wf, arch = build_model_from_weights(path)
    assert arch == {
        "bidirection": bidirection,
        "dilation_size": dilations,
        "stack_size": 1,
        "filters": F,
        "kernel_size": 2,
        "n_mfcc": F,
        "head": "softmax" if classes else "embedding",
        "num_classes": classes,
        "activation": "relu",
    }
    assert wf.metadata is None and wf.centroids is None
    got = np.asarray(model(x, training=False))
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_suffixes_need_not_start_at_zero(originals):
    wf = read_weight_file(originals["after_another_model"][0])
    assert wf.by_type["conv1d"][0].name == "conv1d_42" and wf.by_type["dense"][0].name == "dense_1"


def test_creation_order_is_numeric_not_lexical(originals):
    """conv1d_10 was created after conv1d_9 although it sorts before it as text."""
    wf = read_weight_file(originals["ten_dilations"][0])
    convs = [layer.name for layer in wf.by_type["conv1d"]]
    assert convs == ["conv1d"] + [f"conv1d_{i}" for i in range(1, 42)]
    assert sorted(convs) != convs


def test_loading_by_file_position_swaps_branches(originals):
    """Keras 2 lists layers by depth; filling our creation-order slots in that order
    keeps every shape but gives other outputs: the loader must not do it."""
    path, x, expected = originals["bi_embedding"]
    model, wf, _ = build_model_from_weights(path)
    per_type: dict[str, list] = {}
    for layer in wf.layer_order:
        per_type.setdefault(layer.kind, []).append(layer)
    assert [la.name for la in per_type["conv1d"]][:4] == ["conv1d", "conv1d_1", "conv1d_2", "conv1d_4"]
    cursor = dict.fromkeys(per_type, 0)
    entries = []
    for kind, _ in TIMNET.legacy_weight_order(model):
        entries.append((kind, per_type[kind][cursor[kind]].weights))
        cursor[kind] += 1
    TIMNET.set_legacy_weight_order(model, entries)
    wrong = np.asarray(model(x, training=False))
    assert np.max(np.abs(wrong - expected)) > 1e-2


def test_weights_inside_a_layer_are_matched_by_name(originals, tmp_path):
    """A file listing a layer's weights in another order still loads correctly."""
    src, x, expected = originals["bi_embedding"]
    path = tmp_path / "shuffled.hdf5"
    path.write_bytes(src.read_bytes())
    with h5py.File(path, "r+") as f:
        for name in f.attrs["layer_names"]:
            names = list(f[name].attrs["weight_names"])
            if len(names) > 1:
                f[name].attrs["weight_names"] = names[::-1]
    model, _, _ = build_model_from_weights(path)
    np.testing.assert_allclose(np.asarray(model(x, training=False)), expected, atol=1e-5, rtol=0)


# --- our own files ------------------------------------------------------------------------------


def test_round_trip_keeps_outputs_metadata_and_centroids(originals, tmp_path):
    path, x, expected = originals["bi_embedding"]
    model, _, _ = build_model_from_weights(path, input_shape=(T, F))
    centroids = np.random.default_rng(1).normal(size=(5, F)).astype("float32")
    meta = {"class_labels": ["angry", "happy", "neutral", "sad", "surprise"], "data": "INTERSECT",
            "mean_signal_length": 100000, "sample_rate": 22050, "n_mfcc": F, "input_shape": [T, F],
            "seed": np.int64(46)}
    out = write_weight_file(model, tmp_path / "ours" / "weights_best.hdf5", meta, centroids=centroids)
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp file left
    again, wf, arch = build_model_from_weights(out)
    assert again.input_shape == (None, T, F)
    np.testing.assert_allclose(np.asarray(again(x, training=False)), expected, atol=1e-5, rtol=0)
    assert wf.metadata["class_labels"] == meta["class_labels"] and wf.metadata["seed"] == 46
    assert wf.metadata["architecture"]["dilation_size"] == 8 and arch["head"] == "embedding"
    np.testing.assert_array_equal(wf.centroids, centroids)


def test_our_file_loads_into_the_original_keras2_model(originals, tmp_path):
    """Layer names and their Keras 2 depth order let the original code's load_weights
    (by position, and by name) read our files."""
    _, keras2 = _keras2()
    path, x, expected = originals["bi_softmax"]
    model, _, _ = build_model_from_weights(path)
    ours = write_weight_file(model, tmp_path / "ours.hdf5", {"data": "EMODB"})
    keras2.backend.clear_session()
    original = build_original(8, 7)
    original.load_weights(str(ours))
    np.testing.assert_allclose(original(x, training=False).numpy(), expected, atol=1e-5, rtol=0)
    keras2.backend.clear_session()
    original = build_original(8, 7)
    original.load_weights(str(ours), by_name=True)
    np.testing.assert_allclose(original(x, training=False).numpy(), expected, atol=1e-5, rtol=0)
    keras2.backend.clear_session()


def test_round_trip_with_stacks_uses_the_metadata(tmp_path):
    x = np.random.default_rng(2).normal(size=(4, 20, 13)).astype("float32")
    model = TIMNET.build_timnet_model((20, 13), 3, filters=13, stack_size=2, dilation_size=2, kernel_size=3)
    path = write_weight_file(model, tmp_path / "stacked.hdf5")
    again, _, arch = build_model_from_weights(path, input_shape=(20, 13))
    assert (arch["stack_size"], arch["dilation_size"], arch["kernel_size"], arch["filters"]) == (2, 2, 3, 13)
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(model(x)), atol=1e-6, rtol=0)
    with pytest.raises(LegacyWeightsError, match=r"--stack_size 1 but the weights file has 2 stacks"):
        build_model_from_weights(path, overrides={"stack_size": 1})


# --- architecture flags --------------------------------------------------------------------


def test_explicit_flags_must_agree_with_the_file(originals):
    path = originals["bi_softmax"][0]
    with pytest.raises(LegacyWeightsError, match=r"bi_softmax.hdf5: --dilation_size 10 but the weights file has 8 dil"):
        build_model_from_weights(path, overrides={"dilation_size": 10})
    with pytest.raises(LegacyWeightsError, match=r"--bidirection False but .* bi-directional"):
        build_model_from_weights(path, overrides={"bidirection": False})
    with pytest.raises(LegacyWeightsError, match=r"--stack_size 3 but the weights file has 8 scales"):
        build_model_from_weights(path, overrides={"stack_size": 3})
    with pytest.raises(LegacyWeightsError, match=r"weights have 39 input MFCCs but the data has 40"):
        build_model_from_weights(path, input_shape=(T, 40))
    # flags that agree, or were not given, are fine; stacks may split a legacy file's scales
    _, _, arch = build_model_from_weights(
        path, overrides={"dilation_size": None, "num_classes": 7, "bidirection": True, "dropout": 0.5}
    )
    assert arch["num_classes"] == 7
    _, _, arch = build_model_from_weights(path, overrides={"stack_size": 2})
    assert (arch["stack_size"], arch["dilation_size"]) == (2, 4)


def test_check_compatible_names_file_and_mismatch(originals):
    path = originals["bi_softmax"][0]
    arch = infer_architecture(read_weight_file(path))
    check_compatible(arch, F, 7, path)
    with pytest.raises(LegacyWeightsError, match=r"x.hdf5: weights have 39 input MFCCs but the data has 40"):
        check_compatible(arch, 40, 7, "Test_Models/x.hdf5")
    with pytest.raises(LegacyWeightsError, match=r"weights have 7 classes but the data has 4"):
        check_compatible(arch, F, 4, path)


def test_load_into_a_model_of_another_shape_fails(originals):
    path = originals["bi_softmax"][0]
    with pytest.raises(LegacyWeightsError, match=r"layer dense has weights of shape \(39, 7\), \(7,\) but the model expects \(39, 4\)"):
        load_into_model(TIMNET.build_timnet_model((T, F), 4, bidirection=True), path)
    with pytest.raises(LegacyWeightsError, match=r"the file has 34 conv1d layers but the model has 17"):
        load_into_model(TIMNET.build_timnet_model((T, F), 7, dilation_size=8, bidirection=False), path)


# --- files that are not TIM-Net weights --------------------------------------------------------


def test_text_and_truncated_files_are_rejected(originals, tmp_path):
    text = tmp_path / "notes.hdf5"
    text.write_text("not weights\n")
    with pytest.raises(LegacyWeightsError, match=r"notes.hdf5: not a readable HDF5"):
        read_weight_file(text)
    data = originals["bi_softmax"][0].read_bytes()
    cut = tmp_path / "cut.hdf5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(LegacyWeightsError, match=r"cut.hdf5"):
        read_weight_file(cut)
    with pytest.raises(LegacyWeightsError, match=r"missing.hdf5: no such weights file"):
        read_weight_file(tmp_path / "missing.hdf5")


def test_hdf5_without_layer_names_is_rejected(tmp_path):
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(LegacyWeightsError, match=r"plain.h5: not a Keras weights file.*layer_names"):
        read_weight_file(path)


def test_keras2_file_of_another_network_is_rejected(tmp_path):
    _, keras2 = _keras2()
    keras2.backend.clear_session()
    inputs = keras2.Input((T, F))
    model = keras2.Model(inputs, keras2.layers.Dense(3)(keras2.layers.LSTM(4)(inputs)))
    path = tmp_path / "lstm.hdf5"
    model.save_weights(str(path))
    keras2.backend.clear_session()
    with pytest.raises(LegacyWeightsError, match=r"lstm.hdf5: not a TIM-Net weights file.*found layers .*lstm"):
        build_model_from_weights(path)

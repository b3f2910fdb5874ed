"""Weight files in the original TIM-Net's Keras 2 HDF5 layout, read and written.

Users bring ``save_weights`` files made by the original TensorFlow 2.x code. Keras 2
lists their layers by graph depth, so a bi-directional model's forward and backward
layers alternate in ``layer_names``: loading them by position into a model whose
layer order differs silently swaps branches. This module therefore never loads by
position. It sorts every weighted layer type by the numeric suffix of Keras 2's
automatic names (``conv1d_7`` was created after ``conv1d_6``), which gives the
original's creation order, and fills :func:`TIMNET.legacy_weight_order`'s slots type
by type.

Our own training writes the same layout (so the original code can still read our
files), plus a JSON ``timnet_metadata`` root attribute (architecture, class labels,
feature settings) and an optional ``timnet_centroids`` dataset for embedding models.
Old and new files thus go through one loader.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from timnet.features.files import atomic_path
from timnet.jsonable import json_default
from timnet.modelfiles.metadata import DESCRIBE, ModelFileError, override_conflict
from timnet.network import layers as TIMNET

LEGACY_TYPES = (TIMNET.LEGACY_CONV, TIMNET.LEGACY_BN, TIMNET.LEGACY_FUSION, TIMNET.LEGACY_DENSE)
# Keras 2's weight order inside a layer, by weight name.
WEIGHT_ORDER = {
    TIMNET.LEGACY_CONV: ("kernel", "bias"),
    TIMNET.LEGACY_BN: ("gamma", "beta", "moving_mean", "moving_variance"),
    TIMNET.LEGACY_FUSION: ("kernel",),
    TIMNET.LEGACY_DENSE: ("kernel", "bias"),
}
METADATA_ATTR = "timnet_metadata"
CENTROIDS_DATASET = "timnet_centroids"
FORMAT_NAME = "timnet-keras2-weights"
FORMAT_VERSION = 1
# Architecture keys that the weights (or our metadata) determine.
ARCH_KEYS = ("bidirection", "dilation_size", "stack_size", "filters", "kernel_size", "n_mfcc", "head", "num_classes")

_NAME_RE = re.compile(r"^(?P<kind>.*?)(?:_(?P<index>\d+))?$")


class LegacyWeightsError(ModelFileError):
    """A weights file that cannot be read, is not TIM-Net's, or does not fit the model or data."""


@dataclass
class LegacyLayer:
    """One weighted layer of a file: its Keras 2 name, type and weights in Keras order."""

    name: str
    kind: str
    index: int
    weight_names: list[str]
    weights: list[np.ndarray]


@dataclass
class WeightFile:
    """The content of a Keras 2 weights file.

    ``by_type`` maps each Keras 2 layer type to its layers in creation order;
    ``layer_order`` lists the weighted layers as the file's ``layer_names`` does.
    """

    path: Path
    layer_names: list[str]
    by_type: dict[str, list[LegacyLayer]]
    layer_order: list[LegacyLayer]
    backend: str | None = None
    keras_version: str | None = None
    metadata: dict[str, Any] | None = None
    centroids: np.ndarray | None = None
    unknown_types: list[str] = field(default_factory=list)

    def count(self, kind: str) -> int:
        return len(self.by_type.get(kind, []))


# --- reading -------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _attr_list(group: Any, name: str) -> list[str] | None:
    """A list-of-strings attribute; Keras 2 splits large ones into name0, name1, ..."""
    if name in group.attrs:
        return [_text(v) for v in np.atleast_1d(group.attrs[name])]
    if f"{name}0" not in group.attrs:
        return None
    values: list[str] = []
    chunk = 0
    while f"{name}{chunk}" in group.attrs:
        values += [_text(v) for v in np.atleast_1d(group.attrs[f"{name}{chunk}"])]
        chunk += 1
    return values


def _split_name(name: str) -> tuple[str, int]:
    match = _NAME_RE.match(name)
    assert match is not None  # the pattern matches any string
    return match.group("kind"), int(match.group("index") or 0)


def _weight_base(weight_name: str) -> str:
    """``conv1d_2/kernel:0`` -> ``kernel``."""
    return weight_name.rsplit("/", 1)[-1].split(":", 1)[0]


def _order_weights(path: Path, layer: str, kind: str, names: list[str], arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Arrays in Keras' order for ``kind``, chosen by weight name rather than file order."""
    wanted = WEIGHT_ORDER[kind]
    by_base = {_weight_base(n): a for n, a in zip(names, arrays)}
    if sorted(by_base) != sorted(wanted) or len(names) != len(wanted):
        raise LegacyWeightsError(
            f"{path}: not a TIM-Net weights file: layer {layer} has weights {', '.join(names) or 'none'}, "
            f"expected {', '.join(wanted)}"
        )
    return [by_base[base] for base in wanted]


def _read_hdf5(path: Path) -> WeightFile:
    import h5py

    with h5py.File(path, "r") as f:
        root: Any = f
        layer_names = _attr_list(f, "layer_names")
        if layer_names is None and "model_weights" in f:  # a whole-model save: weights live one level down
            root = f["model_weights"]
            layer_names = _attr_list(root, "layer_names")
        if layer_names is None:
            raise LegacyWeightsError(
                f"{path}: not a Keras weights file: the HDF5 file has no 'layer_names' attribute"
            )
        by_type: dict[str, list[LegacyLayer]] = {}
        layer_order: list[LegacyLayer] = []
        unknown: list[str] = []
        for name in layer_names:
            if name not in root:
                raise LegacyWeightsError(f"{path}: layer '{name}' is listed in 'layer_names' but has no group")
            group = root[name]
            weight_names = _attr_list(group, "weight_names") or []
            if not weight_names:
                continue
            kind, index = _split_name(name)
            if kind not in WEIGHT_ORDER:
                if kind not in unknown:
                    unknown.append(kind)
                continue
            arrays = [np.asarray(group[w][()]) for w in weight_names]
            layer = LegacyLayer(name, kind, index, weight_names, _order_weights(path, name, kind, weight_names, arrays))
            by_type.setdefault(kind, []).append(layer)
            layer_order.append(layer)
        for layers in by_type.values():
            layers.sort(key=lambda item: item.index)
            indices = [item.index for item in layers]
            if len(set(indices)) != len(indices):
                raise LegacyWeightsError(f"{path}: two layers of type {layers[0].kind} have the same name number")
        metadata = None
        if METADATA_ATTR in f.attrs:
            try:
                metadata = json.loads(_text(f.attrs[METADATA_ATTR]))
            except ValueError as exc:
                raise LegacyWeightsError(f"{path}: unreadable '{METADATA_ATTR}' attribute ({exc})") from exc
            if not isinstance(metadata, dict):
                raise LegacyWeightsError(f"{path}: '{METADATA_ATTR}' is not a JSON object")
        centroids = np.asarray(f[CENTROIDS_DATASET][()]) if CENTROIDS_DATASET in f else None
        return WeightFile(
            path=path,
            layer_names=layer_names,
            by_type=by_type,
            layer_order=layer_order,
            backend=_text(f.attrs["backend"]) if "backend" in f.attrs else None,
            keras_version=_text(f.attrs["keras_version"]) if "keras_version" in f.attrs else None,
            metadata=metadata,
            centroids=centroids,
            unknown_types=unknown,
        )


def read_weight_file(path: str | Path) -> WeightFile:
    """Read a Keras 2 ``save_weights`` HDF5 file (the original's or ours).

    Raises :class:`LegacyWeightsError` naming the file when it is missing, not HDF5,
    truncated, or not a Keras weights file.
    """
    path = Path(path)
    if not path.is_file():
        raise LegacyWeightsError(f"{path}: no such weights file")
    try:
        return _read_hdf5(path)
    except LegacyWeightsError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise LegacyWeightsError(f"{path}: not a readable HDF5 weights file ({exc})") from exc


# --- architecture ----------------------------------------------------------------------


def _not_timnet(wf: WeightFile, why: str) -> LegacyWeightsError:
    found = list(dict.fromkeys(layer.kind for layer in wf.layer_order)) + wf.unknown_types
    return LegacyWeightsError(
        f"{wf.path}: not a TIM-Net weights file: {why} (found layers {', '.join(found) or 'none'})"
    )


def infer_architecture(weight_file: WeightFile) -> dict[str, Any]:
    """The TIM-Net hyper-parameters that the weights imply.

    Keys: bidirection, dilation_size, stack_size, filters, kernel_size, n_mfcc, head,
    num_classes (None for the embedding head), activation. Legacy files cannot tell
    stacks from dilations (the layer sequence is the same), so stack_size is 1
    unless our metadata records it.
    """
    wf = weight_file
    if wf.unknown_types:
        raise _not_timnet(wf, f"unexpected layer type {', '.join(wf.unknown_types)}")
    convs = wf.by_type.get(TIMNET.LEGACY_CONV, [])
    bns = wf.by_type.get(TIMNET.LEGACY_BN, [])
    fusions = wf.by_type.get(TIMNET.LEGACY_FUSION, [])
    denses = wf.by_type.get(TIMNET.LEGACY_DENSE, [])
    if len(fusions) != 1 or len(denses) > 1 or not convs:
        raise _not_timnet(wf, "expected conv1d layers, one weight_layer and at most one dense")
    fusion = fusions[0].weights[0]
    if fusion.ndim != 2 or fusion.shape[1] != 1 or fusion.shape[0] < 1:
        raise _not_timnet(wf, f"weight_layer kernel has shape {fusion.shape}, expected (scales, 1)")
    n_scales = int(fusion.shape[0])
    per_branch = 1 + 2 * n_scales
    if len(convs) % per_branch or len(convs) // per_branch not in (1, 2):
        raise _not_timnet(wf, f"{len(convs)} conv1d layers do not fit {n_scales} scales")
    branches = len(convs) // per_branch
    if len(bns) != branches * 2 * n_scales:
        raise _not_timnet(wf, f"{len(bns)} batch_normalization layers, expected {branches * 2 * n_scales}")
    first = convs[0].weights[0]
    tab_kernel = convs[branches].weights[0]
    if first.ndim != 3 or tab_kernel.ndim != 3:
        raise _not_timnet(wf, "conv1d kernels are not 3-dimensional")
    arch: dict[str, Any] = {
        "bidirection": branches == 2,
        "dilation_size": n_scales,
        "stack_size": 1,
        "filters": int(first.shape[2]),
        "kernel_size": int(tab_kernel.shape[0]),
        "n_mfcc": int(first.shape[1]),
        "head": "softmax" if denses else "embedding",
        "num_classes": int(denses[0].weights[1].shape[0]) if denses else None,
        "activation": "relu",
    }
    recorded = (wf.metadata or {}).get("architecture")
    if isinstance(recorded, dict):
        stack_size = int(recorded.get("stack_size", 1))
        if stack_size < 1 or n_scales % stack_size:
            raise LegacyWeightsError(
                f"{wf.path}: metadata says stack_size {stack_size} but the weights have {n_scales} scales"
            )
        arch["stack_size"] = stack_size
        arch["dilation_size"] = n_scales // stack_size
        for key in ARCH_KEYS + ("activation",):
            if key in recorded and recorded[key] != arch[key]:
                raise LegacyWeightsError(
                    f"{wf.path}: metadata says {key} {recorded[key]!r} but the weights imply {arch[key]!r}"
                )
    return arch


def check_compatible(arch: dict[str, Any], n_mfcc: int | None, num_classes: int | None, path: str | Path) -> None:
    """Fail early, naming the file, when weights and data disagree (None skips a check)."""
    if n_mfcc is not None and arch["n_mfcc"] != n_mfcc:
        raise LegacyWeightsError(f"{path}: weights have {arch['n_mfcc']} input MFCCs but the data has {n_mfcc}")
    if num_classes is not None and arch.get("num_classes") is not None and arch["num_classes"] != num_classes:
        raise LegacyWeightsError(
            f"{path}: weights have {arch['num_classes']} classes but the data has {num_classes}"
        )


# --- loading -----------------------------------------------------------------------------


def _shapes(arrays: list[Any]) -> str:
    return ", ".join(str(tuple(np.shape(a))) for a in arrays)


def load_into_model(model: Any, weight_file_or_path: WeightFile | str | Path) -> WeightFile:
    """Set ``model``'s weights from a Keras 2 file, matching layers by creation order
    (name suffix) within each type, never by file position. Returns the file read."""
    wf = weight_file_or_path if isinstance(weight_file_or_path, WeightFile) else read_weight_file(weight_file_or_path)
    if wf.unknown_types:
        raise _not_timnet(wf, f"unexpected layer type {', '.join(wf.unknown_types)}")
    expected = TIMNET.legacy_weight_order(model)
    want_counts: dict[str, int] = {}
    for kind, _ in expected:
        want_counts[kind] = want_counts.get(kind, 0) + 1
    for kind in LEGACY_TYPES:
        have, want = wf.count(kind), want_counts.get(kind, 0)
        if have != want:
            raise LegacyWeightsError(
                f"{wf.path}: the file has {have} {kind} layers but the model has {want}"
                " (architecture or head differs)"
            )
    cursor = dict.fromkeys(LEGACY_TYPES, 0)
    entries: list[tuple[str, list[np.ndarray]]] = []
    for kind, want in expected:
        layer = wf.by_type[kind][cursor[kind]]
        cursor[kind] += 1
        if [np.shape(a) for a in layer.weights] != [np.shape(w) for w in want]:
            raise LegacyWeightsError(
                f"{wf.path}: layer {layer.name} has weights of shape {_shapes(layer.weights)} "
                f"but the model expects {_shapes(want)}"
            )
        entries.append((kind, layer.weights))
    TIMNET.set_legacy_weight_order(model, entries)
    return wf


def _input_frames(wf: WeightFile) -> int | None:
    """Frames per utterance recorded in our metadata, if any."""
    meta = wf.metadata or {}
    if isinstance(meta.get("input_shape"), (list, tuple)) and meta["input_shape"]:
        return meta["input_shape"][0]
    for key in ("frames", "n_frames"):
        if isinstance(meta.get(key), int):
            return meta[key]
    return None


def build_model_from_weights(
    path: WeightFile | str | Path, input_shape: tuple[int | None, int] | None = None, overrides: dict[str, Any] | None = None
) -> tuple[Any, WeightFile, dict[str, Any]]:
    """Build the TIM-Net that a weights file describes and load it.

    ``overrides`` holds the flags the user gave explicitly (None = not given); one
    that contradicts the file raises :class:`LegacyWeightsError` naming both values.
    For a legacy file, ``stack_size`` may split its scales into stacks x dilations.
    ``dropout`` (and ``activation`` when the file does not record it) pass through.
    The time axis is ``input_shape[0]``, else the metadata's, else variable.
    """
    wf = path if isinstance(path, WeightFile) else read_weight_file(path)
    arch = infer_architecture(wf)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    recorded = (wf.metadata or {}).get("architecture")
    recorded = recorded if isinstance(recorded, dict) else {}
    n_scales = arch["stack_size"] * arch["dilation_size"]
    if "stack_size" in given and "stack_size" not in recorded:
        stack = int(given["stack_size"])
        if stack < 1 or n_scales % stack:
            raise LegacyWeightsError(
                f"{wf.path}: --stack_size {stack} but the weights file has {n_scales} scales (stacks x dilations)"
            )
        arch["stack_size"], arch["dilation_size"] = stack, n_scales // stack
    if "activation" in given and "activation" not in recorded:
        arch["activation"] = given["activation"]
    for key, value in given.items():
        if key == "num_classes" and arch["num_classes"] is None:
            continue  # an embedding head has no class count in its weights
        if key in DESCRIBE and arch.get(key) != value:
            raise LegacyWeightsError(override_conflict(wf.path, key, value, arch.get(key), "the weights file"))
    if input_shape is not None:
        check_compatible(arch, int(input_shape[-1]), None, wf.path)
        frames = input_shape[0]
    else:
        frames = _input_frames(wf)
    dropout = given.get("dropout", recorded.get("dropout", 0.1))
    model = TIMNET.build_timnet_model(
        (frames, arch["n_mfcc"]),
        arch["num_classes"] or 1,
        head=arch["head"],
        filters=arch["filters"],
        kernel_size=arch["kernel_size"],
        stack_size=arch["stack_size"],
        dilation_size=arch["dilation_size"],
        dropout=float(dropout),
        activation=arch["activation"],
        bidirection=arch["bidirection"],
    )
    load_into_model(model, wf)
    return model, wf, arch


# --- writing ------------------------------------------------------------------------------


def model_architecture(model: Any) -> dict[str, Any]:
    """The architecture dict of one of our models (what :func:`infer_architecture` returns)."""
    net = TIMNET.timnet_layer(model)
    head = TIMNET.model_head(model)
    return {
        "bidirection": net.bidirection,
        "dilation_size": net.dilation_size,
        "stack_size": net.stack_size,
        "filters": net.filters,
        "kernel_size": net.kernel_size,
        "n_mfcc": int(model.input_shape[-1]),
        "head": head,
        "num_classes": int(model.get_layer("dense").units) if head == "softmax" else None,
        "activation": net.activation,
        "dropout": net.dropout,
    }



def _keras2_names(model: Any) -> list[tuple[str, str, list[np.ndarray]]]:
    """(Keras 2 name, type, arrays) per weighted layer in creation order, named as a
    fresh Keras 2 process would name them."""
    counters: dict[str, int] = {}
    named = []
    for kind, arrays in TIMNET.legacy_weight_order(model):
        index = counters.get(kind, 0)
        counters[kind] = index + 1
        named.append((kind if index == 0 else f"{kind}_{index}", kind, arrays))
    return named


def _keras2_depth_order(model: Any) -> list[int]:
    """Positions (in creation order) of the weighted layers in Keras 2's ``layer_names``
    order: by graph depth, the forward layer before the backward one at equal depth.

    Branch b of our stacked layer sits at the same depth as the other branch's, so
    the depth order lists each stacked layer's branches together."""
    first_seen: dict[int, int] = {}
    keys = []
    for pos, (_, layer, branch) in enumerate(TIMNET.timnet_layer(model).legacy_layers()):
        first_seen.setdefault(id(layer), pos)
        keys.append((first_seen[id(layer)], branch, pos))
    order = [pos for *_, pos in sorted(keys)]
    extra = len(TIMNET.legacy_weight_order(model)) - len(order)
    return order + list(range(len(order), len(order) + extra))


def write_weight_file(
    model: Any,
    path: str | Path,
    metadata: dict[str, Any] | None = None,
    centroids: np.ndarray | None = None,
) -> Path:
    """Write ``model``'s weights in the original's Keras 2 layout, atomically.

    Layer names are those a fresh Keras 2 process gives the original network, listed
    in Keras 2's depth order, so the original code's ``load_weights`` (by position or
    by name) reads the file too. ``metadata`` (JSON-serialisable) is stored with the
    model's architecture under ``"architecture"``; ``centroids`` are the class
    centroids of an embedding model.
    """
    import h5py
    import keras

    path = Path(path)
    meta = dict(metadata or {})
    meta["architecture"] = {**(meta.get("architecture") or {}), **model_architecture(model)}
    meta.setdefault("format", FORMAT_NAME)
    meta.setdefault("format_version", FORMAT_VERSION)
    if centroids is not None:
        centroids = np.asarray(centroids, dtype=np.float32)
        width = model_architecture(model)["filters"]
        if centroids.ndim != 2 or centroids.shape[1] != width:
            raise ValueError(f"centroids must have shape (classes, {width}), got {centroids.shape}")
    meta_json = json.dumps(meta, default=json_default, sort_keys=True)
    named = _keras2_names(model)
    order = _keras2_depth_order(model)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["layer_names"] = np.array([named[i][0].encode("utf8") for i in order])
            f.attrs["backend"] = b"tensorflow"
            f.attrs["keras_version"] = str(keras.__version__).encode("utf8")
            f.attrs[METADATA_ATTR] = meta_json
            for name, kind, arrays in named:
                group = f.create_group(name)
                weight_names = [f"{name}/{base}:0" for base in WEIGHT_ORDER[kind]]
                group.attrs["weight_names"] = np.array([w.encode("utf8") for w in weight_names])
                for weight_name, array in zip(weight_names, arrays):
                    group.create_dataset(weight_name, data=np.asarray(array, dtype=np.float32))
            if centroids is not None:
                f.create_dataset(CENTROIDS_DATASET, data=centroids)
    return path

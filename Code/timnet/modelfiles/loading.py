"""One loader for every TIM-Net model file: our ``.keras``, our Keras 2 weights ``.hdf5``,
and the original's ``.hdf5`` (weights only, no metadata).

:func:`load_model` returns the network and a complete :class:`ModelMetadata`: what
the file records, the architecture the weights themselves imply, and, for a file that
records no class labels or signal length (the original's), the defaults of ``--data``'s
corpus, each noted in ``notes``. Flags the user typed (``overrides``) must agree with
the file; a contradiction is a one-line error naming the flag as typed.

This module imports TensorFlow only inside :func:`load_model` and
:func:`file_head`: :func:`peek_preprocessing` lets the command line featurise audio
in forked workers before TensorFlow loads.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from timnet.config import DEFAULT_DATA, ArchitectureConfig
from timnet.errors import UserError
from timnet.features import corpora
from timnet.modelfiles.metadata import DESCRIBE, ModelFileError, ModelMetadata, override_conflict

# Stored names (mirrors of portable.METADATA_MEMBER and keras2.METADATA_ATTR, which
# cannot be imported here without TensorFlow).
KERAS_METADATA_MEMBER = "timnet.json"
HDF5_METADATA_ATTR = "timnet_metadata"
OVERRIDE_KEYS = ("filters", "kernel_size", "stack_size", "dilation_size", "activation", "bidirection", "head")

def check_overrides(path: str | Path, architecture: ArchitectureConfig, head: str,
                    overrides: Mapping[str, Any] | None) -> None:
    """Flags the user typed must agree with the network a file holds."""
    actual = {**architecture.as_dict(), "head": head}
    for key, value in (overrides or {}).items():
        if value is not None and key in actual and actual[key] != value:
            raise ModelFileError(override_conflict(path, key, value, actual[key]))


# --- what a file records, without TensorFlow ----------------------------------------------


def data_name(data: str) -> str:
    """``--data``'s corpus name: a path to a ``.npy`` gives its stem."""
    return Path(data).stem if str(data).endswith(".npy") else str(data)


def corpus_defaults(data: str, missing: str = "class labels") -> tuple[tuple[str, ...], int]:
    """Class labels and signal length of ``--data``'s corpus, for a file that records none."""
    name = data_name(data)
    try:
        key = corpora.corpus_key(name)
    except KeyError:
        known = ", ".join(sorted(corpora.CLASS_LABELS))
        raise UserError(f"the model file carries no {missing}: give --data a known corpus name ({known}) "
                        "or export the model with its labels first") from None
    return corpora.CLASS_LABELS[key], corpora.MEAN_SIGNAL_LENGTH.get(key, corpora.SEED_SIGNAL_LENGTH)


def read_record(path: Path) -> dict[str, Any] | None:
    """The raw metadata a file stores (None: an original weights file without any)."""
    if path.suffix == ".keras":
        from timnet.modelfiles.portable import read_portable_metadata

        return read_portable_metadata(path)
    import h5py

    with h5py.File(path, "r") as f:
        raw = f.attrs.get(HDF5_METADATA_ATTR)
    if raw is None:
        return None
    record = json.loads(raw.decode("utf8") if isinstance(raw, bytes) else raw)
    return record if isinstance(record, dict) else None


def peek_preprocessing(path: Path, data: str = DEFAULT_DATA) -> tuple[int, int] | None:
    """(mean_signal_length, n_mfcc) of a model file without importing TensorFlow, or
    None when unsure (:func:`load_model` then has the final word)."""
    try:
        record = read_record(path) or {}
        length = record.get("mean_signal_length") or corpus_defaults(data)[1]
        return int(length), int(record.get("n_mfcc") or corpora.N_MFCC)
    except Exception:  # noqa: BLE001 - only a shortcut; loading the model reports real problems
        return None


def file_head(path: Path) -> tuple[str, bool]:
    """(head, has class centroids) of a model file without building the network."""
    if path.suffix == ".keras":
        record = read_record(path) or {}
        head = record.get("head") or ("softmax" if record.get("loss") == "ce" else "embedding")
        return str(head), record.get("centroids") is not None
    from timnet.modelfiles import keras2

    wf = keras2.read_weight_file(path)
    return keras2.infer_architecture(wf)["head"], wf.centroids is not None


# --- loading -------------------------------------------------------------------------------


@dataclass
class LoadedModel:
    """A model file, loaded: the Keras network, its complete metadata, and notes on
    anything that was not in the file (taken from ``--data``)."""

    model: Any  # keras.Model
    metadata: ModelMetadata
    notes: list[str] = field(default_factory=list)
    path: Path = Path()


def _missing_defaults(path: Path, labels: tuple[str, ...], length: int | None, data: str,
                      signal_length: int | None, evaluating: bool) -> tuple[tuple[str, ...], int | None, list[str]]:
    """Class labels and signal length for a file that lacks them, with a note each.

    Evaluating on a feature file (``evaluating``), the features supply both, so nothing
    is taken from ``--data``'s name."""
    notes: list[str] = []
    if not labels and not evaluating:
        labels = corpus_defaults(data)[0]
        notes.append(f"{path.name} carries no class labels: using --data {data_name(data)}'s ({', '.join(labels)})")
    if not length:
        if signal_length:
            length = int(signal_length)
            notes.append(f"{path.name} carries no signal length: using {length} samples from the feature file")
        elif not evaluating:
            length = corpus_defaults(data, "signal length")[1]
            notes.append(f"{path.name} carries no signal length: using {length} samples for --data "
                         f"{data_name(data)}")
    return labels, length, notes


def _record_length(record: Mapping[str, Any], path: Path) -> int | None:
    value = record.get("mean_signal_length")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value <= 0:
        raise ModelFileError(f"{path}: unreadable TIM-Net metadata (mean_signal_length {value!r}); "
                             "export the model again")
    return int(value)


def load_model(path: str | Path, data: str = DEFAULT_DATA, overrides: Mapping[str, Any] | None = None,
               signal_length: int | None = None, input_shape: tuple[int | None, int] | None = None) -> LoadedModel:
    """Load any TIM-Net model file with complete metadata.

    ``data``: the corpus whose class labels and signal length a file without them
    takes. ``overrides``: architecture fields the user typed (``head`` from ``--loss``);
    a contradiction raises :class:`ModelFileError` naming the flag. ``signal_length``:
    the length of a file that records none (a feature file's). ``input_shape``: the
    (frames, n_mfcc) of features the model will be evaluated on; the features then
    supply labels and length, and ``data``'s defaults are not used.
    """
    from timnet.features import mfcc
    from timnet.modelfiles import keras2
    from timnet.network.layers import model_head

    path = Path(path)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    evaluating = input_shape is not None
    if path.suffix == ".keras":
        from timnet.modelfiles.portable import load_portable

        model, meta = load_portable(path)
        check_overrides(path, meta.architecture, meta.head, given)
        labels, length, notes = _missing_defaults(path, meta.class_labels, meta.mean_signal_length, data,
                                                  signal_length, evaluating)
        meta = dataclasses.replace(meta, class_labels=tuple(labels), mean_signal_length=length)
    else:
        wf = keras2.read_weight_file(path)
        record = wf.metadata or {}
        recorded_labels = record.get("class_labels") or ()
        labels, length, notes = _missing_defaults(path, tuple(recorded_labels), _record_length(record, path), data,
                                                  signal_length, evaluating)
        if input_shape is None:
            n_mfcc = int(record.get("n_mfcc") or keras2.infer_architecture(wf)["n_mfcc"])
            input_shape = (mfcc.n_frames(length) if length else None, n_mfcc)
        model, wf, arch = keras2.build_model_from_weights(wf, input_shape, given)
        network = ArchitectureConfig.from_dict(keras2.model_architecture(model))
        meta = ModelMetadata.from_dict({**record, "class_labels": list(labels)}, path, architecture=network,
                                       head=arch["head"])
        frames = model.input_shape[1]
        meta = dataclasses.replace(meta, mean_signal_length=length, centroids=wf.centroids,
                                   n_mfcc=int(model.input_shape[-1]),
                                   frames=meta.frames if frames is None else int(frames),
                                   data=meta.data or data_name(data))
    frames = model.input_shape[1]
    meta = dataclasses.replace(meta, n_mfcc=int(model.input_shape[-1]),
                               frames=int(frames) if frames is not None else meta.frames)
    if meta.head != model_head(model):
        raise ModelFileError(f"{path}: the metadata says {DESCRIBE['head'](meta.head)} but the network has "
                             f"{DESCRIBE['head'](model_head(model))}; export the model again")
    _check_consistent(path, model, meta, evaluating)
    return LoadedModel(model, meta, notes, path)


def _check_consistent(path: Path, model: Any, meta: ModelMetadata, evaluating: bool) -> None:
    """A model whose own records disagree cannot classify correctly: fail, naming the file."""
    labels = meta.class_labels
    if not evaluating and meta.mean_signal_length is not None and meta.frames is not None:
        from timnet.features import mfcc

        if meta.frames != mfcc.n_frames(meta.mean_signal_length):
            raise ModelFileError(f"{path}: the model takes {meta.frames} frames but its signal length "
                                 f"{meta.mean_signal_length} gives {mfcc.n_frames(meta.mean_signal_length)}")
    if meta.sample_rate != corpora.SAMPLE_RATE:
        raise ModelFileError(f"{path}: the model was trained at {meta.sample_rate} Hz; this project's MFCC "
                             f"extraction works at {corpora.SAMPLE_RATE} Hz only")
    if not labels:
        return
    if meta.head == "softmax" and int(model.output_shape[-1]) != len(labels):
        raise ModelFileError(f"{path}: the model predicts {model.output_shape[-1]} classes but has "
                             f"{len(labels)} class labels ({', '.join(labels)}); check --data")
    if meta.centroids is not None and meta.centroids.shape[0] != len(labels):
        raise ModelFileError(f"{path}: {meta.centroids.shape[0]} class centroids but {len(labels)} class "
                             f"labels ({', '.join(labels)}); check --data")

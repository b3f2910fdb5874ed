"""Any model file the project reads -> an ONNX, LiteRT or SavedModel artifact that returns class scores.

The network is wrapped in a scoring model (an N-pair model gets its cosine scoring against
the class centroids as a ``CentroidScores`` layer; ``input="waveform"`` puts the MFCC front
end of ``network/frontend.py`` before it) and written by Keras' own exporter
(``model.export(format=...)``: tf2onnx for ONNX, the TFLite converter for LiteRT). Every
artifact carries its metadata (:func:`artifact_record`): inside the file for ONNX
(``metadata_props["timnet"]``) and a SavedModel folder (``timnet.json``), in a sidecar JSON
with the same stem for LiteRT (``model.tflite`` -> ``model.json``).

``quantize`` (ONNX only): int8 dynamic-range weights by ONNX Runtime's ``quantize_dynamic``
after constant folding, the front end's matrices kept float. (LiteRT's dynamic-range
quantisation also quantises those and lost 2 UAR points on EMO-DB-2s: not offered.)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from timnet.config import EXPORT_FORMATS, EXPORT_INPUTS, EXPORT_SUFFIXES
from timnet.errors import WRITE_ERRNOS, UserError, WriteError
from timnet.faults import fault_point
from timnet.features import corpora
from timnet.features.files import FeatureSet, atomic_path
from timnet.jsonable import json_default
from timnet.modelfiles.export import ExportResult, export_model, load_with_centroids
from timnet.modelfiles.loading import data_name
from timnet.modelfiles.metadata import ModelMetadata
from timnet.modelfiles.naming import model_identity

RECORD_KEY = "timnet"  # ONNX metadata_props key; saved_model/<folder>/timnet.json; litert sidecar <stem>.json
RECORD_FORMAT = "timnet-export"
RECORD_VERSION = 1
SAVED_MODEL_MEMBER = "timnet.json"
FRONT_END_LAYER = "mfcc_features"  # the MfccFeatures layer's name in the scoring model


def output_path_for(output: Path, fmt: str) -> Path:
    """Check ``--output`` against the format's suffix (one line naming the fix)."""
    want = EXPORT_SUFFIXES[fmt]
    if fmt == "saved_model":
        if output.suffix in {s for s in EXPORT_SUFFIXES.values() if s}:
            raise UserError(f"--output {output}: a SavedModel is a folder; give a name without a suffix")
    elif output.suffix != want:
        raise UserError(f"--output {output}: --format {fmt} writes a {want} file; name it <model>{want}")
    return output


def sidecar_path(artifact: Path) -> Path:
    """Where a LiteRT file's metadata lives: the same stem, ``.json``."""
    return artifact.with_suffix(".json")


def _orphan_sidecar(side: Path, artifact: Path) -> bool:
    """Whether ``side`` is the metadata of an export that failed before its ``.tflite`` file
    was renamed into place (a folder that turned read-only keeps it): a rerun replaces it."""
    if artifact.exists():
        return False
    try:
        record = json.loads(side.read_text(encoding="utf8"))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("format") == RECORD_FORMAT


def _model_card(source: Path, meta: ModelMetadata) -> dict[str, Any]:
    """What the model is: data, protocol, fold and, when the run's metrics.json is found, its figures."""
    identity = model_identity(source, meta.fold)
    card: dict[str, Any] = {"data": meta.data, "protocol": identity.protocol if identity else "single",
                            "fold": identity.fold if identity else 1, "folds": identity.folds if identity else 1,
                            "source": source.name, "epoch": meta.epoch}
    if identity is not None and identity.held_out:
        card["held_out"] = identity.held_out
    from timnet import paths

    for candidate in (source.parent / "metrics.json", paths.RESULTS_DIR / source.parent.name / "metrics.json"):
        if not candidate.is_file():
            continue
        try:
            metrics = json.loads(candidate.read_text(encoding="utf8"))
        except ValueError:
            continue
        folds = metrics.get("folds") or []
        mine = [f for f in folds if Path(str(f.get("weights") or "")).name == source.name or f.get("fold") == card["fold"]]
        chosen = mine[0] if folds and mine else (metrics if not folds else None)
        if chosen is not None:
            card["metrics"] = {k: chosen[k] for k in ("WAR", "UAR", "n") if k in chosen}
            card["metrics_source"] = str(candidate)
        break
    return card


def artifact_record(meta: ModelMetadata, fmt: str, input_kind: str, source: Path, quantize: bool,
                    input_name: str, output_name: str) -> dict[str, Any]:
    """The metadata stored with an artifact: ``ModelMetadata`` plus how to feed it and what it returns."""
    length = int(meta.mean_signal_length or 0)
    record = meta.to_dict()
    record.update({
        "format": RECORD_FORMAT,
        "format_version": RECORD_VERSION,
        "artifact": fmt,
        "input": input_kind,
        "input_name": input_name,
        "output_name": output_name,
        "output": "scores",
        "score": "probability" if meta.head == "softmax" else "cosine similarity to class centroids",
        "quantization": "int8 dynamic range" if quantize else None,
        "preprocessing": {
            "sample_rate": meta.sample_rate,
            "mean_signal_length": length,
            "centre": "pad floor(half) left / rest right with zeros, or keep the middle",
            "mfcc": {"n_mfcc": meta.n_mfcc, "n_fft": corpora.N_FFT, "hop_length": corpora.HOP_LENGTH,
                     "n_mels": corpora.N_MELS, "window": "hann", "top_db": corpora.TOP_DB,
                     "library": "librosa.feature.mfcc defaults"},
            "inside_model": input_kind == "waveform",
            "resampling": "outside the model: mono, resampled to the sample rate with soxr (as librosa.load)",
            "input_shape": ["batch", "samples"] if input_kind == "waveform" else ["batch", meta.frames, meta.n_mfcc],
        },
        "model_card": _model_card(source, meta),
    })
    return record


def scoring_model(model: Any, meta: ModelMetadata, input_kind: str) -> Any:
    """The network with class scores out and MFCCs (or, ``waveform``, a 22 050 Hz signal) in."""
    import keras

    from timnet.network.frontend import CentreSignal, CentroidScores, MfccFeatures

    if input_kind == "waveform":
        inputs = keras.Input(shape=(None,), name="waveform")
        length = int(meta.mean_signal_length)
        x = CentreSignal(length, name="centre_signal")(inputs)
        x = MfccFeatures(length, meta.n_mfcc, meta.sample_rate, name=FRONT_END_LAYER)(x)
    else:
        inputs = keras.Input(shape=(meta.frames, meta.n_mfcc), name="mfcc")
        x = inputs
    outputs = model(x)
    if meta.head == "embedding":
        scores = CentroidScores(len(meta.class_labels), name="centroid_scores")
        outputs = scores(outputs)
        scores.centroids.assign(np.asarray(meta.centroids, np.float32))
    scorer = keras.Model(inputs, outputs, name="timnet_scores")
    # Keras' exporters take the input signature of a model that has been called once.
    dummy = (np.zeros((1, int(meta.mean_signal_length)), np.float32) if input_kind == "waveform"
             else np.zeros((1, meta.frames, meta.n_mfcc), np.float32))
    scorer(dummy)
    return scorer


def _with_centroids(source: Path, data: str, features: FeatureSet | None, seed: int,
                    overrides: dict | None) -> tuple[Any, ModelMetadata, list[str], str | None]:
    """Load ``source``; an N-pair model without centroids gets its training utterances' (as export does)."""
    loaded, meta, note = load_with_centroids(source, data, features, seed, overrides)
    if meta.head == "embedding" and meta.centroids is None:
        raise UserError(f"{source}: an embedding model without class centroids; give --data the training "
                        "feature file to compute them")
    meta = dataclasses.replace(meta, exported_from=str(source), data=meta.data or data_name(data))
    return loaded.model, meta, loaded.notes, note


def _litert_op_failure(exc: Exception) -> str:
    """The converter's complaint, cut to the ops it could not hold."""
    text = " ".join(str(exc).split())
    for marker in ("Some ops are not supported by the native TFLite runtime", "ops are not supported",
                   "failed to legalize operation"):
        at = text.find(marker)
        if at >= 0:
            return text[at:at + 400]
    return text[-400:]


def _export_onnx(model: Any, tmp: Path, quantize: bool) -> None:
    import onnx

    plain = tmp.with_name(tmp.stem + ".float.onnx")
    model.export(str(plain), format="onnx", verbose=False)
    if quantize:
        import onnxruntime as ort
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # TIM-Net's kernels are computed in the graph (batch norm folded in): fold the
        # constants first so that the quantiser sees them as weights. The MFCC front end
        # (DFT, mel, DCT matrices) stays float: int8 there would move the MFCCs.
        folded = tmp.with_name(tmp.stem + ".folded.onnx")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        ort.InferenceSession(str(plain), options, providers=["CPUExecutionProvider"])
        graph = onnx.load(str(folded)).graph
        keep_float = [n.name for n in graph.node if FRONT_END_LAYER in n.name]
        quantize_dynamic(str(folded), str(tmp), weight_type=QuantType.QInt8, nodes_to_exclude=keep_float)
        plain.unlink()
        folded.unlink()
    else:
        plain.replace(tmp)
    onnx.checker.check_model(onnx.load(str(tmp)))


def _export_litert(model: Any, tmp: Path) -> None:
    import tensorflow as tf

    kwargs: dict[str, Any] = {"target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}}
    try:
        model.export(str(tmp), format="litert", verbose=False, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the converter's own message names the ops
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:  # the file's write failed, not the ops
            raise
        raise UserError(f"--format litert: the TFLite converter could not hold the model with LiteRT's builtin "
                        f"ops ({_litert_op_failure(exc)})") from None


def _io_names(fmt: str, path: Path, model: Any) -> tuple[str, str]:
    if fmt == "onnx":
        import onnx

        graph = onnx.load(str(path), load_external_data=False).graph
        return graph.input[0].name, graph.output[0].name
    return model.inputs[0].name, model.outputs[0].name


def _attach_onnx(path: Path, record: dict[str, Any]) -> None:
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = RECORD_KEY, json.dumps(record, default=json_default)
    proto.doc_string = f"TIM-Net speech emotion classifier ({', '.join(record['class_labels'])})"
    onnx.save(proto, str(path))


def export_artifact(source: Path, output: Path, fmt: str, input_kind: str, data: str, features: FeatureSet | None,
                    seed: int, overwrite: bool = False, overrides: dict | None = None,
                    quantize: bool = False) -> ExportResult:
    """Write ``source`` as ``fmt`` (see the module docstring), atomically: nothing is left at
    ``output`` (or its sidecar) unless the whole export succeeded."""
    if fmt not in EXPORT_FORMATS:
        raise UserError(f"--format {fmt}: choose one of {', '.join(EXPORT_FORMATS)}")
    if input_kind not in EXPORT_INPUTS:
        raise UserError(f"--input {input_kind}: choose one of {', '.join(EXPORT_INPUTS)}")
    source, output = Path(source), output_path_for(Path(output), fmt)
    if fmt == "keras":
        if input_kind != "mfcc" or quantize:
            raise UserError("--format keras writes the network itself (MFCC input, float weights); --input "
                            "waveform and --quantize are for --format onnx, litert or saved_model")
        return export_model(source, output, data, features, seed, overwrite, overrides)
    if quantize and fmt != "onnx":
        # Measured (README, benchmarks/bench_quantize.py): the TFLite converter quantises the front
        # end's DFT and mel matrices too, and EMO-DB-2s UAR fell 2 points; ONNX keeps them float.
        raise UserError(f"--quantize: int8 weights are offered for --format onnx only (LiteRT's dynamic-range "
                        f"quantisation cost 2 UAR points on EMO-DB-2s); export --format {fmt} without --quantize")
    side = sidecar_path(output) if fmt == "litert" else None
    for target in filter(None, (output, side)):
        if target.exists() and not overwrite and not (target == side and _orphan_sidecar(target, output)):
            raise UserError(f"--output {target}: exists; give --overwrite to replace it")
    model, meta, notes, note = _with_centroids(source, data, features, seed, overrides)
    if input_kind == "waveform" and not meta.mean_signal_length:
        raise UserError(f"{source}: the model records no signal length, which the waveform front end needs; "
                        "give --data the training feature file")
    scorer = scoring_model(model, meta, input_kind)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)  # as the .keras export does
        workdir = Path(tempfile.mkdtemp(prefix=".timnet_export_", dir=output.parent))
    except OSError as exc:
        if exc.errno in WRITE_ERRNOS:
            raise WriteError(output, exc) from None
        raise
    new_side = None  # the sidecar this export wrote where none was: removed when the export fails
    try:
        fault_point("export_write", file=output.name, path=output)
        tmp = workdir / (output.name if fmt != "saved_model" else "saved_model")
        if fmt == "onnx":
            _export_onnx(scorer, tmp, quantize)
        elif fmt == "litert":
            _export_litert(scorer, tmp)
        else:
            scorer.export(str(tmp), format="tf_saved_model", verbose=False)
        record = artifact_record(meta, fmt, input_kind, source, quantize, *_io_names(fmt, tmp, scorer))
        text = json.dumps(record, default=json_default, indent=1)
        if fmt == "onnx":
            _attach_onnx(tmp, record)
        elif fmt == "saved_model":
            (tmp / SAVED_MODEL_MEMBER).write_text(text, encoding="utf8")
        if side is not None:
            existed = side.exists()
            with atomic_path(side) as side_tmp:
                side_tmp.write_text(text, encoding="utf8")
            new_side = None if existed else side
        fault_point("before_rename", file=output.name, path=output)
        if output.is_dir() and fmt == "saved_model":
            shutil.rmtree(output)
        os.replace(tmp, output)
    except BaseException as exc:
        if new_side is not None:
            with contextlib.suppress(OSError):  # a folder turned read-only keeps it: see _orphan_sidecar
                new_side.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
            # The exporters write with open(): the error names a file in the hidden work folder.
            raise WriteError(output, exc) from None
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    fault_point("after_rename", file=output.name, path=output)
    return ExportResult(output, source, meta, notes, note)

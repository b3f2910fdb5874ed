"""Scoring with an exported model (``.onnx`` on ONNX Runtime, ``.tflite`` on the LiteRT
interpreter) without TensorFlow or Keras.

``timnet export --format onnx|litert`` writes a model that returns class scores, with its
metadata inside the ONNX file (``metadata_props["timnet"]``) or in the sidecar
``<stem>.json`` of a ``.tflite`` file. :class:`ExportedPredictor` reads both and scores
audio files or signals exactly as :class:`~timnet.inference.predictor.Predictor` does
(same rows, same outputs); a waveform-input model (``--input waveform``) gets the signal
windows and computes its MFCCs itself, so no librosa feature code runs here.

This module must never import TensorFlow or Keras (a test checks ``sys.modules``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from timnet.config import RUNTIME_SUFFIXES
from timnet.errors import UserError
from timnet.features import corpora
from timnet.inference.featurise import Featurised, featurise_files, signal_windows, waveform_one
from timnet.inference.predictor import PredictionRow, Predictor
from timnet.modelfiles.metadata import ModelFileError, ModelMetadata

RECORD_KEY = "timnet"  # mirrors modelfiles.deploy_export.RECORD_KEY (that module needs TensorFlow)
RUNTIME_BATCH = 64
REEXPORT = "export it again with timnet export --format {fmt} (the metadata is written with the file)"


def is_exported(path: str | Path) -> bool:
    """Whether ``path`` is a model file for a runtime without TensorFlow."""
    return Path(path).suffix.lower() in RUNTIME_SUFFIXES


def _missing_runtime(path: Path) -> UserError:
    package = RUNTIME_SUFFIXES[path.suffix.lower()]
    return UserError(f"{path}: running a {path.suffix} model needs {package}; install it with "
                     f"`pip install {package}` (or `pip install timnet[{'onnx' if package == 'onnxruntime' else 'litert'}]`)")


def _parse_record(raw: str | None, path: Path, where: str, fmt: str) -> dict[str, Any]:
    if raw is None:
        raise ModelFileError(f"{path}: no TIM-Net metadata ({where}); {REEXPORT.format(fmt=fmt)}")
    try:
        record = json.loads(raw)
    except ValueError as exc:
        raise ModelFileError(f"{path}: malformed TIM-Net metadata in {where} ({exc}); "
                             f"{REEXPORT.format(fmt=fmt)}") from None
    if not isinstance(record, dict) or record.get("output") != "scores" or record.get("input") not in ("mfcc",
                                                                                                     "waveform"):
        raise ModelFileError(f"{path}: the metadata in {where} is not that of a TIM-Net export; "
                             f"{REEXPORT.format(fmt=fmt)}")
    return record


class OnnxSession:
    """One ONNX Runtime session (all graph optimisations on) and the file's metadata."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise _missing_runtime(path) from None
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # Idle worker threads sleep instead of spinning: on a shared or busy machine spinning
        # threads halved batch-64 throughput (benchmarks/bench_deploy.py).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime's errors are all "not a usable file"
            text = " ".join(str(exc).split())[:300]
            raise ModelFileError(f"{path}: not a readable ONNX model ({text}); {REEXPORT.format(fmt='onnx')}") from None
        custom = self.session.get_modelmeta().custom_metadata_map
        self.record = _parse_record(custom.get(RECORD_KEY), path, f"metadata_props['{RECORD_KEY}']", "onnx")
        self.input_name = self.session.get_inputs()[0].name

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]


class LiteRtSession:
    """One LiteRT interpreter and the metadata of the sidecar ``<stem>.json``."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise _missing_runtime(path) from None
        side = path.with_suffix(".json")
        try:
            raw = side.read_text(encoding="utf8") if side.is_file() else None
        except UnicodeDecodeError:  # a damaged sidecar
            raise ModelFileError(f"{path}: malformed TIM-Net metadata in the sidecar {side.name} (not UTF-8 "
                                 f"text); {REEXPORT.format(fmt='litert')}") from None
        self.record = _parse_record(raw, path, f"the sidecar {side.name}", "litert")
        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads or os.cpu_count() or 1)
        except Exception as exc:  # noqa: BLE001 - the interpreter's errors are all "not a usable file"
            text = " ".join(str(exc).split())[:300]
            raise ModelFileError(f"{path}: not a readable LiteRT model ({text}); "
                                 f"{REEXPORT.format(fmt='litert')}") from None
        self._input = self.interpreter.get_input_details()[0]["index"]
        self._output = self.interpreter.get_output_details()[0]["index"]
        self._shape: tuple[int, ...] | None = None

    def run(self, x: np.ndarray) -> np.ndarray:
        if x.shape != self._shape:
            self.interpreter.resize_tensor_input(self._input, list(x.shape), strict=False)
            self.interpreter.allocate_tensors()
            self._shape = x.shape
        self.interpreter.set_tensor(self._input, x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output).copy()


def open_session(path: Path, threads: int | None = None) -> OnnxSession | LiteRtSession:
    """The runtime for ``path``'s suffix (a clear error when it is not installed)."""
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    return OnnxSession(path, threads) if path.suffix.lower() == ".onnx" else LiteRtSession(path, threads)


class ExportedPredictor(Predictor):
    """A :class:`Predictor` whose forward pass is an exported file's runtime (no TensorFlow)."""

    def __init__(self, path: str | Path, batch_size: int | None = None, threads: int | None = None) -> None:
        path = Path(path)
        self.runtime = open_session(path, threads)
        record = self.runtime.record
        self.record = record
        self.input_kind: str = record["input"]
        self.metadata = ModelMetadata.from_dict(record, path)
        self.model = None
        self.source = str(path)
        self.batch_size = batch_size or RUNTIME_BATCH
        self.notes: list[str] = []
        self.class_labels = tuple(self.metadata.class_labels)
        self.head = self.metadata.head
        if not self.metadata.mean_signal_length or not self.class_labels:
            raise ModelFileError(f"{path}: the metadata lacks the signal length or the class labels; "
                                 f"{REEXPORT.format(fmt=record.get('artifact', 'onnx'))}")
        self.mean_signal_length = int(self.metadata.mean_signal_length)
        self.n_mfcc = int(self.metadata.n_mfcc)
        self.frames = int(self.metadata.frames or 1 + self.mean_signal_length // corpora.HOP_LENGTH)
        self.sample_rate = int(self.metadata.sample_rate)
        self.centroids = self.metadata.centroids
        if self.input_kind == "mfcc":
            from timnet.features import mfcc

            self._silence = mfcc.get_mfcc(np.zeros(2048, np.float32), 2048, self.n_mfcc)[0]

    @property
    def takes_waveform(self) -> bool:
        return self.input_kind == "waveform"

    def _expected_shape(self) -> tuple[int, ...]:
        return (self.mean_signal_length,) if self.takes_waveform else (self.frames, self.n_mfcc)

    def score_features(self, x: np.ndarray) -> np.ndarray:
        """(N, classes) scores of what the file takes: MFCC matrices (N, frames, n_mfcc) or
        centred signals (N, mean_signal_length)."""
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != self._expected_shape():
            raise ValueError(f"expected input of shape (N, {', '.join(map(str, self._expected_shape()))}), "
                             f"got {x.shape}")
        if not len(x):
            return np.zeros((0, len(self.class_labels)), np.float32)
        out = [self.runtime.run(np.ascontiguousarray(x[i:i + self.batch_size]))
               for i in range(0, len(x), self.batch_size)]
        return np.concatenate(out).astype(np.float32)

    def is_silent(self, x: np.ndarray) -> np.ndarray:
        """Per input: digital silence (every sample 0, or every frame silence's MFCCs)."""
        if self.takes_waveform:
            return ~np.any(x, axis=tuple(range(1, x.ndim)))
        return super().is_silent(x)

    def signal_features(self, signal: np.ndarray, window_hop: float | None = None) -> tuple[np.ndarray, list[int]]:
        if not self.takes_waveform:
            return super().signal_features(signal, window_hop)
        hop = None if window_hop is None else max(1, round(window_hop * corpora.SAMPLE_RATE))
        return signal_windows(signal, self.mean_signal_length, hop)

    def featurise(self, files: Sequence[str | Path], window_hop: float | None = None, jobs: int | None = None,
                  progress: bool | None = None) -> Featurised:
        """What :meth:`score` takes for ``files``: MFCC windows, or signal windows for a waveform model."""
        worker = waveform_one if self.takes_waveform else None
        kwargs = {"worker": worker} if worker is not None else {}
        return featurise_files(files, self.mean_signal_length, self.n_mfcc, window_hop, jobs, progress, **kwargs)

    def predict_files(self, files: Sequence[str | Path], window_hop: float | None = None, jobs: int | None = None,
                      progress: bool | None = None) -> list[PredictionRow]:
        return self.score(self.featurise(files, window_hop, jobs, progress))

"""The one door between the HTTP server and a model: every model access of ``timnet serve`` is here.

The contract the server relies on (keep it when the implementation changes, for
example to ``TimNetModel.classify_waveform`` or to a runtime without TensorFlow for
exported ``.onnx`` / ``.tflite`` files: only this module needs editing):

* :func:`load_backend` ``(path, fold=None, data=DEFAULT_DATA) -> Backend`` loads the
  model **once**; a bad path or model file raises :class:`~timnet.errors.UserError`.
* ``Backend.labels``: the class names, in score order.
* ``Backend.score_kind``: what a score means ("probability", or "cosine similarity to
  class centroids" for an N-pair model): probabilities lie in [0, 1], similarities in
  [-1, 1].
* ``Backend.window_seconds``: the length of the window the model scores.
* ``Backend.card() -> dict``: the model card, plain JSON values (see :meth:`Backend.card`).
* ``Backend.score_windows(signal, sample_rate) -> WindowScores``: ``signal`` is a mono
  float32 waveform at any ``sample_rate``, already checked to be non-empty, finite and
  not too long. It is cut into consecutive windows of the model's length (a signal no
  longer than one window gives one centred window, as in training; the last window ends
  at the signal's end) and every window gets one score per class; a window of digital
  silence is flagged, not scored. Must be safe to call from several threads at once.

This implementation: an exported ``.onnx`` / ``.tflite`` file runs on
:class:`~timnet.inference.exported.ExportedPredictor` (ONNX Runtime or LiteRT, no
TensorFlow; a waveform-input file computes its MFCCs inside); anything else (``.keras``,
our or the original's weights ``.hdf5``, a run folder) on
:class:`~timnet.inference.predictor.Predictor` (TensorFlow), with the preprocessing of
training (``timnet.features.mfcc``). Both: mono, resampled to the model's 22 050 Hz with
soxr (librosa's default), one score per window.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from timnet.config import DEFAULT_DATA


@dataclass
class WindowScores:
    """Scores of consecutive windows of one signal: ``scores`` (windows, classes), with
    zeros where ``silent`` is True (a window of digital silence is not scored)."""

    starts: np.ndarray  # seconds
    ends: np.ndarray  # seconds
    scores: np.ndarray
    silent: np.ndarray


class Backend:
    """A model loaded once, scoring waveforms window by window (see the module's contract)."""

    def __init__(self, predictor: Any, source: Path, fold: int | None = None) -> None:
        self._predictor = predictor
        self.source = source
        self.fold = fold
        self.labels: tuple[str, ...] = tuple(predictor.class_labels)
        self.score_kind: str = predictor.score_kind
        self.sample_rate: int = int(predictor.sample_rate)
        self.window_samples: int = int(predictor.mean_signal_length)
        self.window_seconds: float = self.window_samples / self.sample_rate
        self._card = self._make_card()

    def score_windows(self, signal: np.ndarray, sample_rate: int) -> WindowScores:
        signal = np.asarray(signal, dtype=np.float32)
        if signal.ndim != 1 or not signal.size:
            raise ValueError(f"expected a non-empty mono signal, got shape {signal.shape}")
        if sample_rate != self.sample_rate:
            import soxr

            signal = soxr.resample(signal, sample_rate, self.sample_rate, quality="soxr_hq").astype(np.float32)
        length, n = self.window_samples, len(signal)
        p = self._predictor
        # MFCC windows, or signal windows for a waveform-input exported file: consecutive, the last
        # one ending at the signal's end; one centred window for a short signal.
        feats, starts = p.signal_features(signal, window_hop=length / self.sample_rate)
        feats = np.asarray(feats, dtype=np.float32)
        silent = p.is_silent(feats)
        scores = np.zeros((len(starts), len(self.labels)), np.float32)
        if not silent.all():
            scores[~silent] = p.score_features(feats[~silent])
        begin = np.asarray(starts, dtype=np.float64)
        return WindowScores(begin / self.sample_rate, np.minimum(begin + length, n) / self.sample_rate,
                            scores, silent)

    def card(self) -> dict[str, Any]:
        """The model card: ``file``, ``classes``, ``corpus``, ``head``, ``score_kind``,
        ``architecture``, ``preprocessing`` and ``metrics`` (None when unknown, else
        WAR, UAR, per-class recall, n, protocol and where they were read)."""
        return self._card

    def _make_card(self) -> dict[str, Any]:
        meta = self._predictor.metadata
        arch = meta.architecture.as_dict()
        run = self.source.parent.name
        return {
            "file": f"{run}/{self.source.name}" if run else self.source.name,
            "fold": self.fold,
            "classes": list(self.labels),
            "corpus": meta.data or "unknown",
            "head": meta.head,
            "score_kind": self.score_kind,
            "architecture": arch,
            "preprocessing": {
                "sample_rate": self.sample_rate,
                "window_samples": self.window_samples,
                "window_seconds": round(self.window_seconds, 4),
                "n_mfcc": int(meta.n_mfcc),
                "frames": int(self._predictor.frames),
                "description": (f"mono, resampled to {self.sample_rate} Hz (soxr), cut into windows of "
                                f"{self.window_samples} samples ({self.window_seconds:.2f} s; a shorter recording "
                                f"is zero-padded around its centre), {meta.n_mfcc} MFCCs per 512-sample hop "
                                f"(librosa defaults); the label is the mean score of the non-silent windows"),
            },
            "metrics": find_run_metrics(self.source) or _exported_metrics(self._predictor),
            "notes": list(self._predictor.notes),
        }


def load_backend(path: str | Path, fold: int | None = None, data: str = DEFAULT_DATA) -> Backend:
    """Load the model at ``path`` (an exported ``.onnx``/``.tflite`` file, a ``.keras`` file, a
    weights ``.hdf5`` or a run folder)."""
    from timnet.inference.exported import ExportedPredictor, is_exported

    if is_exported(path):  # no TensorFlow on this path
        return Backend(ExportedPredictor(Path(path)), Path(path), fold)
    from timnet.inference.predictor import Predictor
    from timnet.modelfiles.naming import resolve_model_file

    source = resolve_model_file(Path(path), fold)
    predictor = Predictor.load(source, data=data)
    return Backend(predictor, source, fold)


def _exported_metrics(predictor: Any) -> dict[str, Any] | None:
    """The metrics an exported file's model card carries (written at export), or None."""
    card = (getattr(predictor, "record", None) or {}).get("model_card") or {}
    metrics = card.get("metrics")
    if not metrics:
        return None
    return {"source": card.get("metrics_source") or "the exported file's model card", "data": card.get("data"),
            "protocol": card.get("protocol"), "WAR": metrics.get("WAR"), "UAR": metrics.get("UAR"),
            "n": metrics.get("n"), "per_class_recall": None,
            "scope": f"fold {card['fold']}" if card.get("fold") is not None else "as recorded at export"}


def find_run_metrics(model_file: Path) -> dict[str, Any] | None:
    """The metrics a training run wrote for this model file, or None when unknown.

    A run writes ``<model_path>/<run>/`` (weights) and ``<result_path>/<run>/metrics.json``
    whose ``weights`` (or a fold's) names the weights file. The result folder is looked
    for beside the model folder (``Test_Models/`` and ``Results/`` of a project, or any
    sibling folder) and under the project root's ``Results/``."""
    from timnet import paths

    run_dir = model_file.resolve().parent
    candidates = [paths.resolve("Results") / run_dir.name / "metrics.json"]
    models_root = run_dir.parent
    if models_root.parent.is_dir():
        candidates += sorted(d / run_dir.name / "metrics.json" for d in models_root.parent.iterdir()
                             if d.is_dir() and d != models_root)
    for candidate in candidates:
        metrics = _metrics_for(candidate, model_file.resolve())
        if metrics is not None:
            return metrics
    return None


def _metrics_for(metrics_file: Path, model_file: Path) -> dict[str, Any] | None:
    """The part of ``metrics_file`` that describes ``model_file`` (its fold, or the run)."""
    try:
        record = json.loads(metrics_file.read_text(encoding="utf8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or "WAR" not in record:
        return None

    def same(weights: Any) -> bool:
        return isinstance(weights, str) and Path(weights).with_suffix("") == model_file.with_suffix("")

    folds = record.get("folds") or []
    fold_entry = next((f for f in folds if isinstance(f, dict) and same(f.get("weights"))), None)
    in_run = same(record.get("weights")) or fold_entry is not None or any(
        isinstance(f, dict) and isinstance(f.get("weights"), str) and Path(f["weights"]).parent == model_file.parent
        for f in folds)
    if not in_run:
        return None
    settings = record.get("settings") or {}
    out: dict[str, Any] = {
        "source": str(metrics_file),
        "data": record.get("data"),
        "protocol": settings.get("protocol"),
        "WAR": record.get("WAR"),
        "UAR": record.get("UAR"),
        "n": record.get("n"),
        "per_class_recall": record.get("per_class_recall"),
        "scope": f"the whole run ({len(folds)} folds)" if folds else "the run's test part",
    }
    if fold_entry is not None:
        out["fold"] = {k: fold_entry.get(k) for k in ("fold", "WAR", "UAR", "n")}
    return out

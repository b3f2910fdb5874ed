"""Scoring audio with a trained TIM-Net: MFCC matrices and featurised files -> class scores.

Scores are softmax probabilities (softmax head) or cosine similarities to the class
centroids (embedding head). A window that is digital silence is not scored: its MFCCs
say nothing about emotion, and a model would still give it a confident label.

TensorFlow is imported when a :class:`Predictor` is made, not with this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from timnet.config import DEFAULT_DATA
from timnet.errors import UserError
from timnet.features import corpora, mfcc
from timnet.inference.featurise import Featurised, FileFeatures, featurise_files, signal_windows, status_of
from timnet.modelfiles.metadata import ModelMetadata

EXPORT_HINT = ("export it with centroids (python Code/main.py --mode export --test_path <weights> --data "
               "<training feature file> --output model.keras) or use a softmax (--loss ce) model")


@dataclass
class WindowScore:
    """Scores of one analysis window of a file (``--window_hop``)."""

    start_s: float
    end_s: float
    status: str
    predicted: str = ""
    scores: np.ndarray | None = None


@dataclass
class PredictionRow:
    """One file's result. ``status``: ok, silent, missing, empty or unreadable
    (``detail`` says why); ``scores`` are the (window-mean) class scores."""

    file: str
    status: str
    detail: str = ""
    predicted: str = ""
    scores: np.ndarray | None = None
    windows: list[WindowScore] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class Predictor:
    """A trained model loaded once, scoring audio files with its own preprocessing.

    The forward pass is ``scoring.predict_array``'s compiled function, traced once
    at construction so that the first file is as fast as the others.
    """

    def __init__(self, model: Any, metadata: ModelMetadata, source: str | Path = "", batch_size: int | None = None,
                 notes: Sequence[str] = ()) -> None:
        from timnet.evaluation.scoring import predict_array  # TensorFlow loads here, after any worker forked

        self.model = model
        self.metadata = metadata
        self.source = str(source)
        self.batch_size = batch_size
        self.notes = list(notes)
        self.class_labels: tuple[str, ...] = tuple(metadata.class_labels)
        self.head: str = metadata.head
        if metadata.mean_signal_length is None:
            raise UserError(f"{source or 'the model'}: the model records no signal length")
        self.mean_signal_length = int(metadata.mean_signal_length)
        self.n_mfcc = int(metadata.n_mfcc)
        self.frames = int(metadata.frames or mfcc.n_frames(self.mean_signal_length))
        self.sample_rate = int(metadata.sample_rate)
        self.centroids = metadata.centroids
        if not self.class_labels:
            raise UserError(f"{source or 'the model'}: the model records no class labels")
        if self.head == "embedding" and self.centroids is None:
            raise UserError(f"{source or 'the model'}: an embedding (N-pair) model without class centroids cannot "
                            f"classify; {EXPORT_HINT}")
        predict_array(model, np.zeros((1, self.frames, self.n_mfcc), np.float32))  # trace now, not on the first file
        self._silence = mfcc.get_mfcc(np.zeros(2048, np.float32), 2048, self.n_mfcc)[0]

    @classmethod
    def load(cls, test_path: str | Path, data: str = DEFAULT_DATA, fold: int | None = None,
             overrides: dict[str, Any] | None = None, batch_size: int | None = None) -> Predictor:
        """Load a .keras file, a weights file or a run folder (``naming.resolve_model_file``)."""
        from timnet.modelfiles.loading import load_model
        from timnet.modelfiles.naming import resolve_model_file

        loaded = load_model(resolve_model_file(Path(test_path), fold), data, overrides)
        return cls(loaded.model, loaded.metadata, loaded.path, batch_size, loaded.notes)

    @property
    def score_kind(self) -> str:
        return "probability" if self.head == "softmax" else "cosine similarity to class centroids"

    def score_features(self, x: np.ndarray) -> np.ndarray:
        """(N, classes) scores of MFCC matrices (N, frames, n_mfcc), in batches."""
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != (self.frames, self.n_mfcc):
            raise ValueError(f"expected features of shape (N, {self.frames}, {self.n_mfcc}), got {x.shape}")
        if not len(x):
            return np.zeros((0, len(self.class_labels)), np.float32)
        from timnet.evaluation.scoring import cosine_scores, predict_array

        out = predict_array(self.model, x, batch_size=self.batch_size)
        if self.head == "embedding":
            out = cosine_scores(out, self.centroids)
        return out.astype(np.float32)

    def is_silent(self, x: np.ndarray) -> np.ndarray:
        """Per MFCC matrix: True when every frame is that of digital silence."""
        return np.all(np.abs(x - self._silence) <= 1e-3, axis=(-2, -1))

    def predict_files(self, files: Sequence[str | Path], window_hop: float | None = None, jobs: int | None = None,
                      progress: bool | None = None) -> list[PredictionRow]:
        """One row per file, in order. ``window_hop`` (seconds): score windows of the
        model's length every that many seconds and average them; else the centred
        window, as in training. ``jobs``: see :func:`featurise_files`."""
        return self.score(featurise_files(files, self.mean_signal_length, self.n_mfcc, window_hop, jobs, progress))

    def signal_features(self, signal: np.ndarray, window_hop: float | None = None) -> tuple[np.ndarray, list[int]]:
        """What the model takes of one 22 050 Hz signal: MFCCs of its centred window (or of
        every window ``window_hop`` seconds apart) and the window starts in samples."""
        hop = None if window_hop is None else max(1, round(window_hop * corpora.SAMPLE_RATE))
        windows, starts = signal_windows(signal, self.mean_signal_length, hop)
        return np.stack([mfcc.get_mfcc(w, self.mean_signal_length, self.n_mfcc) for w in windows]), starts

    def score_signals(self, signals: Sequence[np.ndarray], names: Sequence[str],
                      window_hop: float | None = None) -> list[PredictionRow]:
        """One row per mono signal at the model's sample rate (already resampled), in order."""
        results: list[FileFeatures] = []
        for i, (signal, name) in enumerate(zip(signals, names)):
            try:
                if signal.size == 0:
                    raise ValueError("empty audio (no samples)")
                if not np.all(np.isfinite(signal)):
                    raise ValueError("audio holds NaN or infinite samples")
                feats, starts = self.signal_features(signal, window_hop)
                results.append((i, name, feats, starts, len(signal), ""))
            except ValueError as exc:
                results.append((i, name, None, [], 0, str(exc)))
        rows: list[PredictionRow | None] = [None] * len(results)
        self._score(results, rows, window_hop is not None)
        return [row for row in rows if row is not None]

    def _label(self, scores: np.ndarray) -> str:
        return self.class_labels[int(np.argmax(scores))]

    def score(self, featurised: Featurised) -> list[PredictionRow]:
        """Rows of files featurised by :func:`featurise_files` with this model's settings."""
        if (featurised.mean_signal_length, featurised.n_mfcc) != (self.mean_signal_length, self.n_mfcc):
            raise ValueError("features made with another signal length or MFCC count than the model's")
        rows: list[PredictionRow | None] = [
            None if early is None else PredictionRow(name, *early)
            for name, early in zip(featurised.files, featurised.early)
        ]
        self._score(featurised.results, rows, featurised.window_hop is not None)
        return [row for row in rows if row is not None]

    def _score(self, results: list[FileFeatures], rows: list[PredictionRow | None], with_windows: bool) -> None:
        """Score every window of every featurised file in batches; fill the rows."""
        feats = [r[2] for r in results if r[2] is not None]
        x = np.concatenate(feats) if feats else np.zeros((0, self.frames, self.n_mfcc), np.float32)
        silent = self.is_silent(x)
        scores = np.zeros((len(x), len(self.class_labels)), np.float32)
        scores[~silent] = self.score_features(x[~silent])
        sr, offset = corpora.SAMPLE_RATE, 0
        for i, name, feat, starts, n_samples, reason in results:
            if feat is None:
                rows[i] = PredictionRow(name, status_of(reason), reason)
                continue
            windows = []
            for j, start in enumerate(starts):
                end = min(n_samples, start + self.mean_signal_length)
                if silent[offset + j]:
                    windows.append(WindowScore(start / sr, end / sr, "silent"))
                else:
                    sc = scores[offset + j]
                    windows.append(WindowScore(start / sr, end / sr, "ok", self._label(sc), sc))
            offset += len(starts)
            scored = [w.scores for w in windows if w.scores is not None]
            kept = windows if with_windows else []
            if not scored:
                why = "every window holds only zeros" if with_windows else "the scored window holds only zeros"
                rows[i] = PredictionRow(name, "silent", why, windows=kept)
                continue
            mean = np.mean(scored, axis=0) if len(scored) > 1 else scored[0]
            left_out = len(windows) - len(scored)
            detail = f"{left_out} silent window(s) left out of the mean" if left_out else ""
            rows[i] = PredictionRow(name, "ok", detail, self._label(mean), mean, kept)

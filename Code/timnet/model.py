"""The Python API: one object that builds, evaluates, saves and loads TIM-Net, and classifies audio.

::

    from timnet.model import TimNetModel

    model = TimNetModel.load("Test_Models/<run>/weights_best.keras")
    result = model.classify_file("my_recording.wav")
    result.label, result.scores        # "angry", {"angry": 0.81, "happy": 0.05, ...}
    model.classify_files(["a.wav", "b.wav"], jobs=None, window_hop=None)
    model.predict(x)                   # (N, T, n_mfcc) MFCCs -> probabilities or embeddings
    model.scores(x)                    # class scores (probabilities or cosine similarity to centroids)
    model.save("model.keras")          # portable file with metadata

Audio that cannot be classified (missing, empty, unreadable, silent) gives a
:class:`Classification` whose ``status`` says why and whose ``label`` is None: a
batch of files never stops at one bad file. Problems with the model file itself
raise :class:`~timnet.errors.UserError` with a one-line message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from timnet.config import DEFAULT_DATA, ArchitectureConfig
from timnet.errors import UserError
from timnet.features import corpora, mfcc
from timnet.modelfiles.metadata import ModelMetadata

if TYPE_CHECKING:
    from timnet.evaluation.reports import FoldResult
    from timnet.features.files import FeatureSet
    from timnet.inference.predictor import PredictionRow, Predictor


@dataclass
class Classification:
    """One file's class: ``label`` and ``scores`` per class when ``status`` is "ok";
    else ``label`` is None, ``scores`` empty and ``detail`` says why (status: missing,
    empty, unreadable or silent)."""

    file: str
    label: str | None
    scores: dict[str, float] = field(default_factory=dict)
    status: str = "ok"
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class TimNetModel:
    """A TIM-Net network with the metadata that makes it usable on its own: class
    labels, preprocessing (signal length, MFCCs) and, for the embedding head, centroids."""

    def __init__(self, keras_model: Any, metadata: ModelMetadata, path: Path | None = None,
                 notes: Sequence[str] = (), batch_size: int | None = None) -> None:
        self.keras_model = keras_model
        self.metadata = metadata
        self.path = path
        self.notes = list(notes)
        self.batch_size = batch_size
        self._predictor: Predictor | None = None

    # --- making one ----------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path, fold: int | None = None, data: str = DEFAULT_DATA,
             overrides: Mapping[str, Any] | None = None, batch_size: int | None = None) -> TimNetModel:
        """A ``.keras`` file, a weights ``.hdf5`` (ours or the original's) or a run folder
        (``fold``: which fold of a k-fold or LOSO run). ``data`` names the corpus whose
        class labels and signal length a file without them (the original's) takes.
        ``batch_size``: of inference; by default ``scoring.inference_batch_size()``."""
        from timnet.modelfiles.loading import load_model
        from timnet.modelfiles.naming import resolve_model_file

        source = resolve_model_file(Path(path), fold)
        from timnet.inference.exported import is_exported

        if is_exported(source):
            from timnet.inference.exported import ExportedPredictor

            if overrides:
                raise UserError(f"{source}: an exported model file records its network; give no architecture "
                                "overrides")
            scorer = ExportedPredictor(source, batch_size)
            model = cls(None, scorer.metadata, source, (), batch_size)
            model._predictor = scorer
            return model
        loaded = load_model(source, data, dict(overrides or {}))
        return cls(loaded.model, loaded.metadata, loaded.path, loaded.notes, batch_size)

    @classmethod
    def from_keras(cls, keras_model: Any, metadata: ModelMetadata) -> TimNetModel:
        """Wrap a network made in this process (a training result) with its metadata."""
        return cls(keras_model, metadata)

    @classmethod
    def build(cls, class_labels: Sequence[str], mean_signal_length: int = corpora.SEED_SIGNAL_LENGTH,
              architecture: ArchitectureConfig | None = None, head: str = "softmax",
              n_mfcc: int = corpora.N_MFCC) -> TimNetModel:
        """A new, untrained network for these classes and this preprocessing."""
        from timnet.network.layers import build_timnet_model

        architecture = architecture or ArchitectureConfig()
        frames = mfcc.n_frames(mean_signal_length)
        network = build_timnet_model((frames, n_mfcc), len(class_labels), architecture, head=head)
        meta = ModelMetadata(architecture=architecture, head=head, class_labels=tuple(class_labels),
                             n_mfcc=n_mfcc, frames=frames, mean_signal_length=mean_signal_length)
        return cls(network, meta)

    # --- what it is ----------------------------------------------------------------------

    @property
    def class_labels(self) -> tuple[str, ...]:
        return self.metadata.class_labels

    @property
    def head(self) -> str:
        return self.metadata.head

    def __repr__(self) -> str:
        return (f"TimNetModel({self.head} head, classes {', '.join(self.class_labels)}, "
                f"{self.metadata.mean_signal_length} samples" + (f", from {self.path}" if self.path else "") + ")")

    # --- numbers in, numbers out ---------------------------------------------------------

    @property
    def runtime(self) -> str:
        """Where the forward pass runs: "keras", or "onnx"/"tflite" for an exported file."""
        return "keras" if self.keras_model is not None else Path(str(self.path)).suffix[1:]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Network outputs of MFCCs (N, T, n_mfcc): probabilities (softmax head) or
        L2-normalised embeddings (embedding head). An exported file returns class scores."""
        if self.keras_model is None:
            return self.scores(x)
        from timnet.evaluation.scoring import predict_array

        return predict_array(self.keras_model, np.asarray(x, dtype=np.float32), batch_size=self.batch_size)

    def scores(self, x: np.ndarray) -> np.ndarray:
        """(N, classes) scores: probabilities, or cosine similarity to the class centroids.
        ``x``: MFCCs (N, T, n_mfcc); for a waveform-input export, centred signals (N, samples)."""
        return self._scorer().score_features(x)

    def evaluate(self, features: FeatureSet, index: np.ndarray | None = None, name: str = "all") -> FoldResult:
        """Predictions on (part of) a feature file, classes matched by name: utterances of
        classes the model lacks are left out; ``y_true``/``y_pred`` index the model's classes
        (``result.metrics(len(model.class_labels))`` gives WAR, UAR and F1 over the shared ones)."""
        if self.keras_model is None:
            raise UserError(f"{self.path}: evaluate needs the .keras or weights file (an exported model scores "
                            "audio: classify_file, classify_waveform, scores)")
        from timnet.evaluation.class_mapping import match_data
        from timnet.evaluation.scoring import evaluate

        match = match_data(self.path or "the model", self.keras_model, self.metadata, features)
        index = np.arange(len(features.x)) if index is None else np.asarray(index)
        index = index[match.labels[index] >= 0]
        return evaluate(self.keras_model, features, index, 1, name, self.metadata.centroids, str(self.path or ""),
                        labels=match.labels)

    # --- audio ---------------------------------------------------------------------------

    def classify_file(self, path: str | Path, window_hop: float | None = None) -> Classification:
        """The class of one recording (never raises for a bad audio file: see ``status``)."""
        return self.classify_files([path], jobs=1, window_hop=window_hop, progress=False)[0]

    def classify_files(self, files: Sequence[str | Path], jobs: int | None = None,
                       window_hop: float | None = None, progress: bool | None = False) -> list[Classification]:
        """One :class:`Classification` per file, in order; MFCCs made in ``jobs`` worker
        processes for large batches. ``window_hop`` (seconds): average windows that far
        apart instead of the centred window the model was trained on."""
        rows = self._scorer().predict_files(files, window_hop, jobs, progress)
        return [self._classification(row) for row in rows]

    def classify_waveform(self, signal: np.ndarray, sample_rate: int, window_hop: float | None = None) -> Classification:
        """The class of one mono signal (1-D float array) recorded at ``sample_rate`` Hz.

        Any other rate than the model's (22 050 Hz) is resampled first (soxr, high quality,
        as ``librosa.load`` does for files); a rate that is not a positive whole
        number, or a signal that is not 1-D, raises :class:`~timnet.errors.UserError`.
        Returns the label and per-class scores (``status`` says why there is no label:
        "empty", "silent", "unreadable" for NaN/inf samples)."""
        return self.classify_waveforms([signal], sample_rate, window_hop)[0]

    def classify_waveforms(self, signals: Sequence[np.ndarray], sample_rate: int,
                           window_hop: float | None = None, names: Sequence[str] | None = None) -> list[Classification]:
        """:meth:`classify_waveform` for several signals at one ``sample_rate``, scored in batches.
        ``names`` label the results (default ``waveform 1``, ``waveform 2``, ...)."""
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise UserError(f"sample_rate {sample_rate!r}: give the signal's sample rate in Hz as a positive whole "
                            f"number (the model takes {self.metadata.sample_rate} Hz; other rates are resampled)")
        if window_hop is not None and not window_hop > 0:
            raise UserError(f"window_hop {window_hop}: give a positive number of seconds")
        names = list(names) if names is not None else [f"waveform {i + 1}" for i in range(len(signals))]
        if len(names) != len(signals):
            raise UserError(f"names: {len(names)} names for {len(signals)} signals")
        ready = []
        for name, signal in zip(names, signals):
            signal = np.asarray(signal, dtype=np.float32)
            if signal.ndim != 1:
                raise UserError(f"{name}: expected a mono signal (1-D array), got shape {signal.shape}; "
                                "average the channels first (signal.mean(axis=1))")
            if int(sample_rate) != self.metadata.sample_rate and signal.size:
                from timnet.features.audio_io import resample

                signal = resample(signal, int(sample_rate), self.metadata.sample_rate)
            ready.append(np.asarray(signal, dtype=np.float32))
        rows = self._scorer().score_signals(ready, names, window_hop)
        return [self._classification(row) for row in rows]

    def _classification(self, row: PredictionRow) -> Classification:
        if not row.ok or row.scores is None:
            return Classification(row.file, None, {}, row.status, row.detail)
        scores = {c: float(v) for c, v in zip(self.class_labels, row.scores)}
        return Classification(row.file, row.predicted, scores, row.status, row.detail)

    def _scorer(self) -> Predictor:
        """Made on first use: an embedding model without centroids can still ``predict``."""
        if self._predictor is None:
            from timnet.inference.predictor import Predictor

            self._predictor = Predictor(self.keras_model, self.metadata, self.path or "", self.batch_size, self.notes)
        return self._predictor

    # --- files ---------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """One portable ``.keras`` file with the metadata (written atomically)."""
        from timnet.errors import UserError

        if self.keras_model is None:
            raise UserError(f"{self.path}: an exported model runs as it is; save needs the .keras or weights file")
        from timnet.modelfiles.portable import save_portable

        path = Path(path)
        if path.suffix != ".keras":
            raise UserError(f"{path}: the portable model file must end in .keras")
        return save_portable(self.keras_model, path, self.metadata)

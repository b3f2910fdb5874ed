"""Model wrapper around TIM-Net: build, train under a protocol, evaluate, save.

``main.py`` turns the command line into :class:`Settings` and calls :func:`train` or
:func:`test`; everything here works on a :class:`feature_io.FeatureSet`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import signal
import sys
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from timnet.features import corpora
from timnet.modelfiles import keras2 as legacy_weights
from timnet import paths
from timnet.modelfiles import portable as portable_model
from timnet.training.data_pipeline import make_dataset
from timnet.training.devices import is_chief, worker_scratch_dir
from timnet.errors import UserError
from timnet.features.files import FeatureSet
from timnet.network.losses import NPairAccuracy, NPairLoss, smooth_labels
from timnet.training.protocols import Split, make_splits, select_folds
from timnet.evaluation.reports import EvaluationReport, FoldResult
from timnet.network.layers import build_timnet_model, model_head
from timnet.training.weight_histograms import WeightHistograms

ARCHITECTURE_KEYS = ("filters", "kernel_size", "stack_size", "dilation_size", "dropout", "activation", "bidirection")
KFOLD_WEIGHTS = re.compile(r"^(\d+)-fold_weights_best_(\d+)\.(?:hdf5|h5)$")
LOSO_WEIGHTS = re.compile(r"^loso_weights_(\d+)_(.+)\.(?:hdf5|h5)$")


@dataclass
class Settings:
    """Every knob of a run; filled from the command line by ``main.py``."""

    data: str = "INTERSECT"
    model_path: Path = paths.REPO_ROOT / "Models"
    result_path: Path = paths.RESULTS_DIR
    lr: float = 0.001
    beta1: float = 0.93
    beta2: float = 0.98
    batch_size: int = 64
    epoch: int = 60
    dropout: float = 0.5
    random_seed: int = 46
    activation: str = "relu"
    filter_size: int = 39
    dilation_size: int = 8
    kernel_size: int = 2
    stack_size: int = 1
    bidirection: bool = False
    split_fold: int = 10
    max_folds: int | None = None  # train only N splits (quick benchmarks)
    first_fold: int = 1  # the first split to train (1-based), to run a protocol in parts
    loss: str = "npair"
    protocol: str = "holdout"
    label_smoothing: float = 0.0
    histogram_freq: int = 1
    log_dir: Path = paths.LOG_DIR
    mixed_precision: bool = False
    jit_compile: bool | str = "auto"
    verbose: int | str = "auto"
    mean_signal_length: int | None = None

    @property
    def head(self) -> str:
        return "softmax" if self.loss == "ce" else "embedding"

    def architecture(self) -> dict[str, Any]:
        return {
            "filters": self.filter_size,
            "kernel_size": self.kernel_size,
            "stack_size": self.stack_size,
            "dilation_size": self.dilation_size,
            "dropout": self.dropout,
            "activation": self.activation,
            "bidirection": self.bidirection,
        }

    def as_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self).items()}


@dataclass
class TrainOutcome:
    report: EvaluationReport
    model_dir: Path
    result_dir: Path
    weights: list[Path]
    histories: list[dict[str, list[float]]] = field(default_factory=list)
    interrupted: bool = False


def timestamp() -> str:
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S")


# --- model construction ------------------------------------------------------------


def build_model(settings: Settings, input_shape: tuple[int, int], num_classes: int) -> keras.Model:
    """A compiled TIM-Net for ``settings`` (call inside the strategy's scope)."""
    model = build_timnet_model(input_shape, num_classes, head=settings.head, **settings.architecture())
    optimizer = keras.optimizers.Adam(
        learning_rate=settings.lr, beta_1=settings.beta1, beta_2=settings.beta2, epsilon=1e-8
    )
    if settings.head == "softmax":
        loss, metrics = keras.losses.CategoricalCrossentropy(), [keras.metrics.CategoricalAccuracy(name="accuracy")]
    else:
        loss, metrics = NPairLoss(), [NPairAccuracy()]
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=settings.jit_compile)
    return model


def model_metadata(settings: Settings, features: FeatureSet, centroids: np.ndarray | None = None) -> dict[str, Any]:
    """What a weights or .keras file carries so test and predict need no flags."""
    frames, n_mfcc = features.x.shape[1:]
    return {
        "architecture": settings.architecture(),
        "head": settings.head,
        "loss": settings.loss,
        "num_classes": len(features.class_labels),
        "class_labels": list(features.class_labels),
        "data": settings.data,
        "frames": int(frames),
        "n_mfcc": int(n_mfcc),
        "sample_rate": corpora.SAMPLE_RATE,
        "mean_signal_length": signal_length_for(settings, features),
        "centroids": None if centroids is None else np.asarray(centroids).tolist(),
    }


def signal_length_for(settings: Settings, features: FeatureSet) -> int:
    """Samples per utterance the features were made from (T = 1 + L // 512)."""
    if settings.mean_signal_length:
        return int(settings.mean_signal_length)
    stored = features.extra.get("mean_signal_length")
    if stored is not None:
        return int(stored)
    frames = features.x.shape[1]
    known = [corpora.SEED_SIGNAL_LENGTH, *corpora.MEAN_SIGNAL_LENGTH.values()]
    for length in known:
        if 1 + length // corpora.HOP_LENGTH == frames:
            return length
    return (frames - 1) * corpora.HOP_LENGTH


# --- embeddings and centroids ------------------------------------------------------


def class_centroids(embeddings: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Mean embedding per class (zeros for a class with no sample)."""
    centroids = np.zeros((num_classes, embeddings.shape[1]), dtype=np.float32)
    for c in range(num_classes):
        members = embeddings[labels == c]
        if len(members):
            centroids[c] = members.mean(axis=0)
    return centroids


def cosine_scores(embeddings: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Cosine similarity of every embedding to every class centroid."""
    e = embeddings / (np.linalg.norm(embeddings, axis=1, keepdims=True) + 1e-12)
    c = centroids / (np.linalg.norm(centroids, axis=1, keepdims=True) + 1e-12)
    return (e @ c.T).astype(np.float32)


def predict_array(model: keras.Model, x: np.ndarray, index: np.ndarray | None = None,
                  batch_size: int = 1024) -> np.ndarray:
    """Model outputs for ``x[index]`` without copying the whole selection: large
    batches through one compiled (graph) function per model, not eager calls."""
    index = np.arange(len(x)) if index is None else index
    if not len(index):
        return np.zeros((0,))
    predict = _predict_function(model)
    outputs = [predict(np.asarray(x[index[i : i + batch_size]], dtype=np.float32))
               for i in range(0, len(index), batch_size)]
    return np.concatenate([keras.ops.convert_to_numpy(o) for o in outputs])


_PREDICT_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _predict_function(model: keras.Model) -> Any:
    """A cached ``tf.function`` of the model in inference mode, any batch size. It runs
    on this process's copy of the weights (no cross-worker collectives), so one
    worker alone may call it."""
    fn = _PREDICT_FUNCTIONS.get(model)
    if fn is None:
        spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
        ref = weakref.ref(model)  # the cache must not keep the model alive
        fn = tf.function(lambda batch: ref()(batch, training=False), input_signature=[spec])
        _PREDICT_FUNCTIONS[model] = fn
    return fn


def fusion_model(model: keras.Model) -> keras.Model:
    """The sub-network that outputs the fused 39-d features (before the head)."""
    return keras.Model(model.inputs, model.get_layer("fusion").output)


def evaluate(model: keras.Model, features: FeatureSet, index: np.ndarray, fold: int, name: str,
             centroids: np.ndarray | None, weights: str = "", with_fused: bool = False) -> FoldResult:
    """Predict the utterances ``index`` and compare with their labels."""
    outputs = predict_array(model, features.x, index)
    y_true = features.labels[index]
    embeddings = None
    if model_head(model) == "softmax":
        scores = outputs
    else:
        if centroids is None:
            raise ValueError("an embedding model needs class centroids to classify")
        embeddings, scores = outputs, cosine_scores(outputs, centroids)
    fused = predict_array(fusion_model(model), features.x, index) if with_fused else None
    return FoldResult(fold, name, np.asarray(index), y_true, np.argmax(scores, axis=1), scores, weights,
                      embeddings, fused)


# --- training ----------------------------------------------------------------------


class _Interrupt:
    """Ctrl-C during training: finish the current batch, stop, keep what was saved."""

    def __init__(self) -> None:
        self.requested = False

    @contextmanager
    def installed(self) -> Iterator[_Interrupt]:
        def handler(signum: int, frame: Any) -> None:
            if self.requested:  # a second Ctrl-C quits at once
                signal.signal(signal.SIGINT, previous)
                raise KeyboardInterrupt
            self.requested = True
            print("\nInterrupted: stopping after this batch; the saved weights are kept and evaluated.",
                  file=sys.stderr, flush=True)

        previous = signal.getsignal(signal.SIGINT)
        try:
            signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread: no signal handling
            yield self
            return
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)


class _StopOnInterrupt(keras.callbacks.Callback):
    def __init__(self, interrupt: _Interrupt) -> None:
        super().__init__()
        self.interrupt = interrupt

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.interrupt.requested:
            self.model.stop_training = True

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if self.interrupt.requested:
            self.model.stop_training = True


class _EpochTimer(keras.callbacks.Callback):
    """Adds ``epoch_time`` (seconds of training + validation) to the epoch logs and so to
    history.json; first in the callback list so other callbacks' work is not counted."""

    def __init__(self) -> None:
        super().__init__()
        self.start = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["epoch_time"] = time.perf_counter() - self.start


class _ValidationUAR(keras.callbacks.Callback):
    """Adds ``val_uar`` to the epoch logs (before TensorBoard writes them)."""

    def __init__(self, features: FeatureSet, train_index: np.ndarray, val_index: np.ndarray) -> None:
        super().__init__()
        self.features = features
        self.val_index = val_index
        rng = np.random.default_rng(0)
        self.centroid_index = np.sort(rng.permutation(train_index)[:2048])

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is None or not len(self.val_index):
            return
        centroids = None
        if model_head(self.model) == "embedding":
            emb = predict_array(self.model, self.features.x, self.centroid_index)
            centroids = class_centroids(emb, self.features.labels[self.centroid_index], self.features.y.shape[1])
        result = evaluate(self.model, self.features, self.val_index, 0, "", centroids)
        logs["val_uar"] = result.metrics(self.features.y.shape[1])["UAR"]


class _WeightsWriter(keras.callbacks.Callback):
    """Writes the weights file atomically: every epoch (``best=False``, the paper's last
    epoch) or when the validation loss improves (``best=True``, the seed's checkpoint)."""

    def __init__(self, path: Path, metadata: dict[str, Any], best: bool) -> None:
        super().__init__()
        self.path, self.metadata, self.best = path, metadata, best
        self.best_loss = np.inf
        self.best_epoch: int | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        if self.best:
            loss = logs.get("val_loss", logs.get("loss"))
            if loss is None or not np.isfinite(loss) or loss >= self.best_loss:
                return
            self.best_loss, self.best_epoch = float(loss), epoch + 1
        else:
            self.best_epoch = epoch + 1
        save_weights(self.model, self.path, {**self.metadata, "epoch": self.best_epoch})


def save_weights(model: keras.Model, path: Path, metadata: dict[str, Any]) -> Path:
    """The weights file (the original's Keras 2 layout) with our metadata and centroids."""
    meta = dict(metadata)
    centroids = meta.pop("centroids", None)
    return legacy_weights.write_weight_file(model, path, meta, centroids=centroids)


def _verbosity(settings: Settings) -> int:
    if settings.verbose != "auto":
        return int(settings.verbose)
    return 1 if sys.stdout.isatty() else 2


def fold_weights_name(protocol: str, split: Split, folds: int) -> str:
    if protocol == "holdout":
        return "weights_best.hdf5"
    if protocol == "kfold":
        return f"{folds}-fold_weights_best_{split.fold}.hdf5"
    speaker = split.name.removeprefix("speaker ")
    return f"loso_weights_{split.fold}_{speaker}.hdf5"


def train(settings: Settings, features: FeatureSet, strategy: tf.distribute.Strategy | None = None) -> TrainOutcome:
    """Train under ``settings.protocol`` and evaluate every fold's held-out part."""
    strategy = strategy or tf.distribute.get_strategy()
    chief = is_chief(strategy)
    stamp = timestamp()
    run = f"{settings.data}_{settings.random_seed}_{stamp}"
    # Non-chief workers of a multi-worker run save into a throwaway folder of their own.
    model_dir = Path(settings.model_path) / run if chief else worker_scratch_dir(strategy)
    result_dir = Path(settings.result_path) / run
    splits = make_splits(settings.protocol, features.labels, settings.random_seed, settings.split_fold,
                         features.speakers, str(features.path or features.name))
    splits = select_folds(splits, settings.first_fold, settings.max_folds)
    # The run folder appears with the first weights file (atomic_path creates it), so a
    # run that fails or is interrupted before any epoch ends leaves no empty folder.
    n_classes = len(features.class_labels)
    input_shape = tuple(features.x.shape[1:])
    train_targets = smooth_labels(features.y, settings.label_smoothing).astype(np.float32)
    folds: list[FoldResult] = []
    weights: list[Path] = []
    histories: list[dict[str, list[float]]] = []
    interrupt = _Interrupt()
    notes: list[str] = []
    with interrupt.installed():
        for split in splits:
            keras.utils.set_random_seed(settings.random_seed)
            with strategy.scope():
                model = build_model(settings, input_shape, n_classes)
            path = model_dir / fold_weights_name(settings.protocol, split, settings.split_fold)
            meta = model_metadata(settings, features)
            writer = _WeightsWriter(path, meta, best=settings.protocol == "holdout")
            log_dir = Path(settings.log_dir) / stamp
            if len(splits) > 1:
                log_dir = log_dir / f"fold_{split.fold}"
            callbacks = fold_callbacks(settings, features, split, writer, interrupt, log_dir if chief else None)
            print(f"[{split.name}] training on {len(split.train)} utterances, "
                  f"validating on {len(split.test)}; weights -> {path}")
            train_ds = _training_data(features, train_targets, split, settings, strategy)
            val_ds = make_dataset(features.x, features.y, split.test, settings.batch_size)
            _prebuild_for_multi_worker(model, strategy, features, train_targets, split)
            history = model.fit(train_ds, validation_data=val_ds, epochs=settings.epoch, callbacks=callbacks,
                                verbose=_verbosity(settings), shuffle=False)  # the dataset shuffles itself
            histories.append({k: [float(v) for v in vals] for k, vals in history.history.items()})
            if writer.best_epoch is None:  # interrupted before the first epoch ended
                notes.append(f"{split.name}: interrupted before the first epoch ended; nothing saved")
                break
            if settings.protocol == "holdout":
                legacy_weights.load_into_model(model, path)
            centroids = _training_centroids(model, features, split)
            meta = {**model_metadata(settings, features, centroids), "epoch": writer.best_epoch}
            save_weights(model, path, meta)
            portable_model.save_portable(model, path.with_name(path.stem + ".keras"), meta)
            weights.append(path)
            # The fused features feed the t-SNE figure of the training run (one cheap pass).
            folds.append(evaluate(model, features, split.test, split.fold, split.name, centroids, str(path),
                                  with_fused=True))
            if interrupt.requested:
                notes.append(f"training interrupted by the user during {split.name} "
                             f"(kept epoch {writer.best_epoch})")
                break
    if not folds:
        raise UserError("training was interrupted before any weights were saved: nothing to evaluate")
    report = EvaluationReport(features.name, features.class_labels, settings.head, folds,
                              settings.as_dict(), notes)
    return TrainOutcome(report, model_dir, result_dir, weights, histories, interrupt.requested)


def fold_callbacks(settings: Settings, features: FeatureSet, split: Split, writer: _WeightsWriter,
                   interrupt: _Interrupt, log_dir: Path | None) -> list[keras.callbacks.Callback]:
    """What runs around every epoch of a fold: timing, validation UAR, Ctrl-C, the
    weights file and (on the chief, ``log_dir`` given) TensorBoard."""
    callbacks: list[keras.callbacks.Callback] = [_EpochTimer(), _StopOnInterrupt(interrupt), writer]
    if log_dir is not None:
        callbacks.insert(1, _ValidationUAR(features, split.train, split.test))
        # Scalars from Keras' callback; the weight histograms from ours (much cheaper).
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(log_dir), histogram_freq=0))
        callbacks.append(WeightHistograms(log_dir, settings.histogram_freq))
    return callbacks


def _training_data(features: FeatureSet, targets: np.ndarray, split: Split, settings: Settings,
                   strategy: tf.distribute.Strategy) -> tf.data.Dataset:
    """Shuffled global batches; ``model.fit`` distributes them over the replicas itself
    (an already distributed dataset breaks Keras 3's symbolic build)."""
    return make_dataset(features.x, targets, split.train, settings.batch_size, shuffle=True,
                        seed=settings.random_seed)


def _prebuild_for_multi_worker(model: keras.Model, strategy: tf.distribute.Strategy, features: FeatureSet,
                               targets: np.ndarray, split: Split) -> None:
    """Keras 3 builds optimizer and metrics on a batch it first reduces across replicas,
    a reduction MultiWorkerMirroredStrategy cannot do on an (x, y) pair. Build them
    here on a local batch instead and skip that step in fit/evaluate."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    index = np.sort(split.train[:2])
    model._maybe_symbolic_build(data_batch=(features.x[index], targets[index], None))
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None


def _training_centroids(model: keras.Model, features: FeatureSet, split: Split) -> np.ndarray | None:
    if model_head(model) != "embedding":
        return None
    emb = predict_array(model, features.x, split.train)
    return class_centroids(emb, features.labels[split.train], len(features.class_labels))


# --- testing -----------------------------------------------------------------------


@dataclass
class TrainedModel:
    """One model to evaluate: which file, and on which utterances (fold)."""

    path: Path
    fold: int = 1
    folds: int = 1
    speaker: str | None = None


def find_trained_models(test_path: Path) -> list[TrainedModel]:
    """Resolve ``--test_path``: a weights/.keras file, or a folder holding
    ``weights_best.hdf5``, the k-fold files, the LOSO files or ``*.keras``."""
    if test_path.is_file():
        return [TrainedModel(test_path)]
    if not test_path.is_dir():
        raise UserError(f"--test_path {test_path}: no such file or folder (put downloaded weights under Test_Models/)")
    best = test_path / "weights_best.hdf5"
    if best.is_file():
        return [TrainedModel(best)]
    kfold = sorted(
        (int(m.group(2)), int(m.group(1)), p)
        for p in test_path.iterdir() if (m := KFOLD_WEIGHTS.match(p.name))
    )
    if kfold:
        k = kfold[0][1]
        return [TrainedModel(p, fold=i, folds=k) for i, _, p in kfold]
    loso = sorted(
        (int(m.group(1)), m.group(2), p) for p in test_path.iterdir() if (m := LOSO_WEIGHTS.match(p.name))
    )
    if loso:
        return [TrainedModel(p, fold=i, folds=len(loso), speaker=s) for i, s, p in loso]
    keras_files = sorted(test_path.glob("*.keras"))
    if len(keras_files) == 1:
        return [TrainedModel(keras_files[0])]
    raise UserError(
        f"--test_path {test_path}: no weights found (expected weights_best.hdf5, "
        "<k>-fold_weights_best_<i>.hdf5 files or one .keras file)"
    )


def load_trained(path: Path, input_shape: tuple[int, int], overrides: dict[str, Any]) -> tuple[keras.Model, dict]:
    """Model and metadata from a ``.keras`` file or a weights file (ours or the original's)."""
    if path.suffix == ".keras":
        model, meta = portable_model.load_portable(path)
        # The network itself, not its metadata (which an exported file may lack), decides.
        arch = {**meta.get("architecture", {}), **legacy_weights.model_architecture(model)}
        for key, value in overrides.items():
            if key in arch and arch[key] != value:
                raise UserError(f"{path}: --{_flag(key)} {value} but the model has {arch[key]}")
        return model, meta
    model, weight_file, arch = legacy_weights.build_model_from_weights(path, input_shape, overrides)
    meta = dict(weight_file.metadata or {})
    meta.setdefault("architecture", {k: arch[k] for k in ARCHITECTURE_KEYS if k in arch})
    meta.setdefault("head", arch["head"])
    meta["centroids"] = weight_file.centroids
    return model, meta


def _flag(key: str) -> str:
    return {"filters": "filter_size"}.get(key, key)


def test(settings: Settings, features: FeatureSet, test_path: Path, overrides: dict[str, Any],
         with_fused: bool = True) -> EvaluationReport:
    """Evaluate trained weights on ``features`` as the original did: a single model on
    the whole file; k-fold files fold by fold on the test parts of the same KFold
    splits; LOSO files on their speaker's utterances."""
    models = find_trained_models(test_path)
    input_shape = tuple(features.x.shape[1:])
    n_classes = len(features.class_labels)
    folds: list[FoldResult] = []
    notes: list[str] = []
    head = None
    splits: list[Split] | None = None
    for trained in models:
        model, meta = load_trained(trained.path, input_shape, overrides)
        head = model_head(model)
        _check_classes(trained.path, model, meta, features)
        if trained.folds > 1 and trained.speaker is None:
            if splits is None:
                splits = make_splits("kfold", features.labels, settings.random_seed, trained.folds)
            index = splits[trained.fold - 1].test
            name = f"fold {trained.fold}"
        elif trained.speaker is not None:
            if features.speakers is None:
                raise UserError(f"{features.path}: LOSO weights need a 'speaker' key in the feature file")
            index = np.flatnonzero(features.speakers.astype(str) == trained.speaker)
            if not len(index):
                raise UserError(f"{trained.path.name}: speaker '{trained.speaker}' has no utterance in "
                                f"{features.path}; test LOSO weights on the feature file they were trained on")
            name = f"speaker {trained.speaker}"
        else:
            index = np.arange(len(features.x))
            name = "all"
        centroids = meta.get("centroids")
        if head == "embedding" and centroids is None:
            emb = predict_array(model, features.x, index)
            centroids = class_centroids(emb, features.labels[index], n_classes)
            notes.append(f"{trained.path.name}: no saved class centroids; scored with centroids of the "
                         "evaluated data itself (optimistic)")
        if centroids is not None:
            centroids = np.asarray(centroids, dtype=np.float32)
            if centroids.shape[0] != n_classes:
                raise UserError(f"{trained.path}: the model has {centroids.shape[0]} class centroids but "
                                f"{features.path} has {n_classes} classes")
        folds.append(evaluate(model, features, index, trained.fold, name, centroids, str(trained.path),
                              with_fused=with_fused))
    settings_dict = {**settings.as_dict(), "test_path": str(test_path)}
    return EvaluationReport(features.name, features.class_labels, head or settings.head, folds, settings_dict, notes)


def _check_classes(path: Path, model: keras.Model, meta: dict, features: FeatureSet) -> None:
    n = len(features.class_labels)
    if model_head(model) == "softmax":
        out = int(model.output_shape[-1])
        if out != n:
            raise UserError(f"{path}: the model predicts {out} classes but {features.path} has {n} "
                            f"({', '.join(features.class_labels)})")
    labels = meta.get("class_labels")
    if labels and list(labels) != list(features.class_labels):
        raise UserError(f"{path}: the model's classes ({', '.join(labels)}) differ from "
                        f"{features.path}'s ({', '.join(features.class_labels)})")
    n_mfcc = int(model.input_shape[-1])
    if n_mfcc != features.x.shape[-1]:
        raise UserError(f"{path}: the model takes {n_mfcc} MFCCs but {features.path} has {features.x.shape[-1]}")


def elapsed(start: float) -> str:
    return str(dt.timedelta(seconds=round(time.time() - start)))

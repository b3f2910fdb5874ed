"""Training TIM-Net under a protocol: one model per fold, evaluated on its held-out part.

:func:`train` takes a :class:`~timnet.config.TrainingConfig` and a
:class:`~timnet.features.files.FeatureSet` and returns a :class:`TrainOutcome` whose
``report`` is what the command line prints.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from timnet import keras_compat, paths
from timnet.config import TrainingConfig
from timnet.errors import UserError
from timnet.evaluation import tensorboard_logs
from timnet.evaluation.reports import EvaluationReport, FoldResult
from timnet.evaluation.scoring import class_centroids, evaluate, predict_array
from timnet.features.files import FeatureSet
from timnet.modelfiles import keras2 as legacy_weights
from timnet.modelfiles import portable as portable_model
from timnet.modelfiles.metadata import ModelMetadata
from timnet.modelfiles.naming import portable_name, weights_file_name
from timnet.network.layers import build_timnet_model, model_head
from timnet.network.losses import NPairAccuracy, NPairLoss, smooth_labels
from timnet.training.callbacks import StopRequest, WeightsWriter, fold_callbacks, save_weights
from timnet.training.data_pipeline import make_dataset
from timnet.training.devices import is_chief, worker_scratch_dir
from timnet.training.protocols import Split, training_splits


@dataclass
class TrainOutcome:
    """A finished (or interrupted) run: its report, where its files are, its curves."""

    report: EvaluationReport
    model_dir: Path
    result_dir: Path
    weights: list[Path]
    histories: list[dict[str, list[float]]] = field(default_factory=list)
    interrupted: bool = False
    config: TrainingConfig | None = None
    log_dir: Path | None = None  # the run's TensorBoard folder, <config.log_dir>/<run name> (None: not the chief)


def timestamp() -> str:
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def build_model(config: TrainingConfig, input_shape: tuple[int, int], num_classes: int,
                jit_compile: bool | str = "auto") -> keras.Model:
    """A compiled TIM-Net for ``config`` (call inside the strategy's scope)."""
    model = build_timnet_model(input_shape, num_classes, config.architecture, head=config.head)
    optimizer = keras.optimizers.Adam(learning_rate=config.lr, beta_1=config.beta1, beta_2=config.beta2,
                                      epsilon=1e-8)
    if config.head == "softmax":
        loss, metrics = keras.losses.CategoricalCrossentropy(), [keras.metrics.CategoricalAccuracy(name="accuracy")]
    else:
        loss, metrics = NPairLoss(), [NPairAccuracy()]
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=jit_compile)
    return model


def model_metadata(config: TrainingConfig, features: FeatureSet, centroids: np.ndarray | None = None,
                   epoch: int | None = None) -> ModelMetadata:
    """What a weights or .keras file carries so test and predict need no flags."""
    frames, n_mfcc = features.x.shape[1:]
    return ModelMetadata(
        architecture=config.architecture, head=config.head, class_labels=tuple(features.class_labels),
        n_mfcc=int(n_mfcc), frames=int(frames), mean_signal_length=features.mean_signal_length,
        data=config.data_name, centroids=centroids, epoch=epoch,
    )


def _verbosity(verbose: int | str) -> int:
    if verbose != "auto":
        return int(verbose)
    return 1 if sys.stdout.isatty() else 2


def run_name(config: TrainingConfig, stamp: str) -> str:
    return f"{config.data_name}_{config.random_seed}_{stamp}"


def fold_weights_path(model_dir: Path, config: TrainingConfig, split: Split) -> Path:
    speaker = split.name.removeprefix("speaker ") if config.protocol == "loso" else None
    return model_dir / weights_file_name(config.protocol, split.fold, config.split_fold, speaker)


def training_dataset(features: FeatureSet, targets: np.ndarray, split: Split, config: TrainingConfig) -> tf.data.Dataset:
    """Shuffled global batches of a fold's training part; ``fit`` distributes them over the
    replicas itself (an already distributed dataset breaks Keras 3's symbolic build)."""
    return make_dataset(features.x, targets, split.train, config.batch_size, shuffle=True, seed=config.random_seed)


def train(config: TrainingConfig, features: FeatureSet, strategy: tf.distribute.Strategy | None = None,
          verbose: int | str = "auto") -> TrainOutcome:
    """Train under ``config.protocol`` and evaluate every fold's held-out part."""
    strategy = strategy or tf.distribute.get_strategy()
    chief = is_chief(strategy)
    splits = training_splits(config, features)
    stamp = timestamp()
    run = run_name(config, stamp)
    # Non-chief workers of a multi-worker run save into a throwaway folder of their own.
    model_dir = config.model_path / run if chief else worker_scratch_dir(strategy)
    result_dir = config.result_path / run
    # The chief's folders (weights, reports, TensorBoard, all named like the run) are created
    # exclusively, with one suffix when another run took the name; removed again, if still
    # empty, when the run ends without weights.
    reserved = paths.create_exclusive([model_dir, result_dir, config.log_dir / run]) if chief else []
    run_log_dir = None
    if reserved:
        model_dir, result_dir, run_log_dir = reserved
        run = run_log_dir.name
    n_classes = len(features.class_labels)
    input_shape = tuple(features.x.shape[1:])
    train_targets = smooth_labels(features.y, config.label_smoothing).astype(np.float32)
    folds: list[FoldResult] = []
    weights: list[Path] = []
    histories: list[dict[str, list[float]]] = []
    stop = StopRequest()
    notes: list[str] = []
    with stop.installed(), paths.removed_if_empty(reserved):
        for split in splits:
            fold_start = time.perf_counter()
            keras.utils.set_random_seed(config.random_seed)
            with strategy.scope():
                model = build_model(config, input_shape, n_classes)
            path = fold_weights_path(model_dir, config, split)
            writer = WeightsWriter(path, model_metadata(config, features), best=config.protocol == "holdout")
            log_dir = config.log_dir / run
            if len(splits) > 1:
                log_dir = log_dir / f"fold_{split.fold}"
            callbacks = fold_callbacks(config, features, split, writer, stop, log_dir if chief else None)
            print(f"[{split.name}] training on {len(split.train)} utterances, "
                  f"validating on {len(split.test)}; weights -> {path}")
            train_ds = training_dataset(features, train_targets, split, config)
            val_ds = make_dataset(features.x, features.y, split.test, config.batch_size)
            if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
                index = np.sort(split.train[:2])
                keras_compat.prebuild_for_multi_worker(model, (features.x[index], train_targets[index]))
            history = model.fit(train_ds, validation_data=val_ds, epochs=config.epoch, callbacks=callbacks,
                                verbose=_verbosity(verbose), shuffle=False)  # the dataset shuffles itself
            histories.append({k: [float(v) for v in vals] for k, vals in history.history.items()})
            if writer.best_epoch is None:  # interrupted before the first epoch ended, or diverged
                notes.append(f"{split.name}: " + ("interrupted before the first epoch ended" if stop.requested
                                                  else "no epoch with a finite validation loss") + "; nothing saved")
                break
            if config.protocol == "holdout":
                legacy_weights.load_into_model(model, path)
            centroids = _training_centroids(model, features, split)
            meta = model_metadata(config, features, centroids, writer.best_epoch)
            save_weights(model, path, meta)
            portable_model.save_portable(model, portable_name(path), meta)
            weights.append(path)
            # The fused features feed the t-SNE figure of the training run (one cheap pass).
            folds.append(evaluate(model, features, split.test, split.fold, split.name, centroids, str(path),
                                  with_fused=True))
            folds[-1].seconds = time.perf_counter() - fold_start
            if chief:
                tensorboard_logs.log_fold_confusion(log_dir, folds[-1], features.class_labels, features.name)
            if stop.requested:
                notes.append(f"training interrupted by the user during {split.name} "
                             f"(kept epoch {writer.best_epoch})")
                break
        if not folds and stop.requested:
            raise KeyboardInterrupt  # exit 130: nothing was saved
        if not folds:
            raise UserError("no epoch ended with a finite validation loss, so no weights were saved: the training "
                            "diverged (lower --lr) or the features are unusable")
    report = EvaluationReport(features.name, features.class_labels, config.head, folds, config.as_dict(), notes)
    if run_log_dir is not None:
        tensorboard_logs.log_run_hparams(run_log_dir, run, report)
    return TrainOutcome(report, model_dir, result_dir, weights, histories, stop.requested, config, run_log_dir)


def _training_centroids(model: keras.Model, features: FeatureSet, split: Split) -> np.ndarray | None:
    """Class centroids of an embedding model: the mean embedding of each class's training utterances."""
    if model_head(model) != "embedding":
        return None
    emb = predict_array(model, features.x, split.train)
    return class_centroids(emb, features.labels[split.train], len(features.class_labels))


"""Training TIM-Net under a protocol: one model per fold, evaluated on its held-out part.

:func:`train` takes a :class:`~timnet.config.TrainingConfig` and a
:class:`~timnet.features.files.FeatureSet` and returns a :class:`TrainOutcome` whose
``report`` is what the command line prints.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from timnet import keras_compat, paths, protocols, timings
from timnet.config import TrainingConfig, corpus_name
from timnet.errors import WRITE_ERRNOS, Interrupted, UserError, WriteError
from timnet.evaluation import tensorboard_logs
from timnet.evaluation.background import OutputWorker
from timnet.evaluation.reports import EvaluationReport, FoldResult
from timnet.evaluation.scoring import class_centroids, evaluate, predict_array
from timnet.faults import fault_point
from timnet.features.files import FeatureSet
from timnet.modelfiles import keras2 as legacy_weights
from timnet.modelfiles import portable as portable_model
from timnet.modelfiles.metadata import ModelMetadata
from timnet.modelfiles.naming import portable_name
from timnet.network.layers import build_timnet_model, model_head
from timnet.network.losses import ConfusionUAR, NPairAccuracy, NPairLoss, smooth_labels
from timnet.protocols import FoldIdentity, Split
from timnet.training import callbacks as fold_callbacks_module
from timnet.training import resume
from timnet.training.callbacks import EpochSeeding, StopRequest, WeightsWriter, fold_callbacks, save_weights
from timnet.training.data_pipeline import epoch_dataset, make_dataset
from timnet.training.devices import is_chief, worker_scratch_dir


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
    resume_command: str | None = None  # how to continue an interrupted run
    written: dict[str, Path] = field(default_factory=dict)  # the reports and figures written (Run.finish)
    finish: Callable[[], None] | None = None  # with keep_state: call once the reports are written (drops .resume)


def build_model(config: TrainingConfig, input_shape: tuple[int, int], num_classes: int,
                jit_compile: bool | str = "auto") -> keras.Model:
    """A compiled TIM-Net for ``config`` (call inside the strategy's scope)."""
    model = build_timnet_model(input_shape, num_classes, config.architecture, head=config.head)
    optimizer = keras.optimizers.Adam(learning_rate=config.lr, beta_1=config.beta1, beta_2=config.beta2,
                                      epsilon=1e-8)
    if config.head == "softmax":
        loss, metrics = keras.losses.CategoricalCrossentropy(), [keras.metrics.CategoricalAccuracy(name="accuracy")]
        if fold_callbacks_module.ONE_VALIDATION_PASS:  # fit's validation pass then gives val_uar too
            metrics.append(ConfusionUAR(num_classes))
    else:
        loss, metrics = NPairLoss(), [NPairAccuracy()]
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=jit_compile)
    return model


def model_metadata(config: TrainingConfig, features: FeatureSet, centroids: np.ndarray | None = None,
                   epoch: int | None = None, fold: FoldIdentity | None = None) -> ModelMetadata:
    """What a weights or .keras file carries so test and predict need no flags."""
    frames, n_mfcc = features.x.shape[1:]
    return ModelMetadata(
        architecture=config.architecture, head=config.head, class_labels=tuple(features.class_labels),
        n_mfcc=int(n_mfcc), frames=int(frames), mean_signal_length=features.mean_signal_length,
        data=config.data_name, centroids=centroids, epoch=epoch, fold=fold,
        training_data=features.fingerprint(),
    )


def _verbosity(verbose: int | str) -> int:
    if verbose != "auto":
        return int(verbose)
    return 1 if sys.stdout.isatty() else 2


def run_name(config: TrainingConfig, stamp: str) -> str:
    """``<DATA>_<seed>_<time>``; a cross-corpus run ``<DATA>_to_<TEST>_<seed>_<time>``."""
    data = config.data_name
    if config.test_data:
        data += "_to_" + "+".join(corpus_name(t) for t in config.test_corpora)
    return f"{data}_{config.random_seed}_{stamp}"


def training_dataset(features: FeatureSet, targets: np.ndarray, split: Split, config: TrainingConfig) -> tf.data.Dataset:
    """Shuffled global batches of a fold's training part, reshuffled by tf.data every
    epoch (the benchmarks' plain pipeline; :func:`train` uses the per-epoch order of
    :class:`EpochSeeding`). ``fit`` distributes them over the replicas itself (an
    already distributed dataset breaks Keras 3's symbolic build)."""
    return make_dataset(features.x, targets, split.train, config.batch_size, shuffle=True, seed=config.random_seed)


class FoldModel:
    """The run's one model, optimizer and compiled train/evaluate/predict functions,
    reused for every fold (only the run's first epoch pays for tracing): each fold
    starts from the initial weights a fresh build after ``set_random_seed(seed)`` has
    (captured once; the same for every fold, as per-fold seeding gave) and from a
    fresh optimizer and metric state. ``reuse=False`` builds anew for every fold (the
    reference the reuse is tested against)."""

    def __init__(self, config: TrainingConfig, input_shape: tuple[int, int], num_classes: int,
                 strategy: tf.distribute.Strategy, reuse: bool = True) -> None:
        self.config, self.input_shape, self.num_classes = config, input_shape, num_classes
        self.strategy, self.reuse = strategy, reuse
        self.model: keras.Model | None = None
        self.initial_weights: list[np.ndarray] = []
        self.initial_optimizer: list[np.ndarray] = []

    def _build(self) -> keras.Model:
        keras.utils.set_random_seed(self.config.random_seed)
        with self.strategy.scope():
            model = build_model(self.config, self.input_shape, self.num_classes)
            model.optimizer.build(model.trainable_variables)
        self.initial_weights = model.get_weights()
        self.initial_optimizer = [keras.ops.convert_to_numpy(v.value) for v in model.optimizer.variables]
        return model

    def start_fold(self, progress: resume.FoldProgress | None = None) -> keras.Model:
        """The model at the start of a fold, or where ``progress`` left it."""
        if self.model is None or not self.reuse:
            self.model = self._build()
        model = self.model
        model.set_weights(progress.weights if progress and progress.weights is not None else self.initial_weights)
        opt = progress.optimizer if progress and progress.optimizer is not None else self.initial_optimizer
        for variable, value in zip(model.optimizer.variables, opt):
            variable.assign(value)
        model.reset_metrics()
        return model


def train(config: TrainingConfig, features: FeatureSet, strategy: tf.distribute.Strategy | None = None,
          verbose: int | str = "auto", reuse_model: bool = True, plan: tuple[list[Split], int] | None = None,
          state: resume.RunState | None = None, keep_state: bool = False) -> TrainOutcome:
    """Train under ``config.protocol`` and evaluate every fold's held-out part; with
    ``config.resume`` (a run folder), continue that interrupted run where it stopped.
    ``plan`` (the folds to train and the protocol's number of folds) and ``state`` (the
    resume state) come from :class:`timnet.training.run.Run`; computed here when absent.
    A failed write or a second Ctrl-C that leaves a resumable run says how to continue it.
    ``keep_state``: a complete run keeps its resume state until ``outcome.finish()`` (after
    the reports: a run killed while writing them can still be resumed)."""
    run_folder: list[Path] = []
    try:
        return _train(config, features, strategy, verbose, reuse_model, plan, state, run_folder, keep_state)
    except (WriteError, tf.errors.OpError) as exc:
        error = exc if isinstance(exc, WriteError) else _tensorflow_write_error(exc)
        if error is None:
            raise
        if run_folder and resume.is_incomplete(run_folder[0]):
            raise error.then(f"continue the run with: {resume.resume_command(run_folder[0])}") from None
        raise error from None
    except KeyboardInterrupt as exc:
        if isinstance(exc, Interrupted) or not run_folder or not resume.is_incomplete(run_folder[0]):
            raise
        raise Interrupted(resume.saved_summary(run_folder[0])) from None


def _tensorflow_write_error(exc: tf.errors.OpError) -> WriteError | None:
    """TensorFlow's own writers (TensorBoard's event files) report a full disk or a
    read-only folder as an op error whose message ends with the file and the reason."""
    for code in WRITE_ERRNOS:
        found = re.search(rf"(/[^;{{}}]+); {re.escape(os.strerror(code))}", str(exc))
        if found:
            return WriteError(found.group(1).strip(), OSError(code, os.strerror(code)))
    return None


def _train(config: TrainingConfig, features: FeatureSet, strategy: tf.distribute.Strategy | None,
           verbose: int | str, reuse_model: bool, plan: tuple[list[Split], int] | None,
           state: resume.RunState | None, run_folder: list[Path], keep_state: bool) -> TrainOutcome:
    strategy = strategy or tf.distribute.get_strategy()
    chief = is_chief(strategy)
    splits, n_folds = plan or protocols.planned_splits(config.protocol, features, config.protocol_settings,
                                                       config.first_fold, config.max_folds)
    protocol = protocols.get(config.protocol)
    if config.resume and state is None:
        state = resume.RunState.load(resume.find_run(config.resume, config.model_path))
        resume.check_same_settings(config, state)
        resume.check_same_data(features, state)
    if config.resume and state is not None:
        run = state.run
    else:
        run = run_name(config, paths.timestamp())
    # Non-chief workers of a multi-worker run save into a throwaway folder of their own.
    model_dir = config.model_path / run if chief else worker_scratch_dir(strategy)
    result_dir = config.result_path / run
    run_log_dir = config.log_dir / run if chief else None
    reserved: list[Path] = []
    if state is None:
        # A new run's folders (weights, reports, TensorBoard, all named like the run) are
        # created exclusively, with one suffix when another run took the name; removed
        # again, if still empty, when the run ends without weights.
        if chief:
            reserved = paths.create_exclusive([model_dir, result_dir, config.log_dir / run])
            model_dir, result_dir, run_log_dir = reserved
            run = run_log_dir.name
        state = resume.RunState(model_dir, config.as_dict(), resume.data_fingerprint(features))
    elif chief:
        resume.clean_leftovers(model_dir, model_dir / resume.STATE_DIR, result_dir)
        print(f"Resuming {model_dir}: folds {', '.join(map(str, state.completed)) or 'none'} complete"
              + (f"; fold {state.progress.fold} continues after epoch {state.progress.epoch}"
                 if state.progress else ""))
    if chief:
        run_folder.append(model_dir)
    n_classes = len(features.class_labels)
    input_shape = tuple(features.x.shape[1:])
    train_targets = smooth_labels(features.y, config.label_smoothing).astype(np.float32)
    folds: list[FoldResult] = []
    weights: list[Path] = []
    histories: list[dict[str, list[float]]] = []
    stop = StopRequest()
    notes: list[str] = []
    fold_model = FoldModel(config, input_shape, n_classes, strategy, reuse=reuse_model)
    done: list[int] = []  # folds trained to their last epoch (this process or an earlier one)
    timings.mark("training begins")
    # Per-fold outputs the next fold does not need are written by a background thread.
    with stop.installed(), paths.removed_if_empty(reserved), OutputWorker() as outputs:
        for split in splits:
            if split.fold in state.completed:
                kept = state.load_fold(split.fold)
                folds.append(kept.result)
                weights.append(kept.weights)
                histories.append(kept.history)
                kept_log = config.log_dir / run / f"fold_{split.fold}"
                if chief and not tensorboard_logs.has_fold_confusion(kept_log):  # killed before it was written
                    outputs.submit("TensorBoard confusion image", split.fold, tensorboard_logs.log_fold_confusion,
                                   kept_log, kept.result, features.class_labels, features.name)
                done.append(split.fold)
                continue
            fold_start = time.perf_counter()
            progress = state.progress if state.progress and state.progress.fold == split.fold else None
            progress = progress or resume.FoldProgress(split.fold)
            with timings.phase("model build or reset", split.fold):
                model = fold_model.start_fold(progress)
            path = model_dir / protocol.weights_name(split, n_folds)
            identity = protocol.identity(split, n_folds, config.protocol_settings)
            keep_best = protocol.keeps_best_epoch(split)
            saver = _StateSaver(state, progress, stop, enabled=chief)
            writer = WeightsWriter(path, model_metadata(config, features, fold=identity), best=keep_best,
                                   before_write=saver, fold=split.fold)
            writer.best_loss, writer.best_epoch = progress.best_loss, progress.best_epoch
            writer.best_weights = progress.best_weights
            seeding = EpochSeeding(config.random_seed, split.fold, split.train)
            log_dir = config.log_dir / run / f"fold_{split.fold}"
            callbacks = fold_callbacks(config, features, split, writer, stop, log_dir if chief else None, seeding)
            print(f"[{split.name}] training on {len(split.train)} utterances, "
                  f"validating on {len(split.validation)}; weights -> {path}")
            train_ds, steps = epoch_dataset(features.x, train_targets, seeding.order_of, progress.epoch,
                                            config.batch_size)
            val_ds = make_dataset(features.x, features.y, split.validation, config.batch_size)
            if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and not getattr(model, "_prebuilt", 0):
                index = np.sort(split.train[:2])
                keras_compat.prebuild_for_multi_worker(model, (features.x[index], train_targets[index]))
                model._prebuilt = True
            with timings.phase("fit", split.fold):
                history = model.fit(train_ds, validation_data=val_ds, epochs=config.epoch, steps_per_epoch=steps,
                                    callbacks=callbacks, initial_epoch=progress.epoch, verbose=_verbosity(verbose),
                                    shuffle=False)  # the dataset orders every epoch itself
            fold_history = {k: list(progress.history.get(k, [])) + [float(v) for v in vals]
                            for k, vals in history.history.items()}
            histories.append(fold_history)
            finished = saver.progress.epoch >= config.epoch or writer.diverged_at is not None
            if writer.diverged_at is not None:
                notes.append(f"{split.name}: the training diverged at epoch {writer.diverged_at} (non-finite loss; "
                             f"lower --lr)" + (f"; kept epoch {writer.best_epoch}" if writer.best_epoch else ""))
            if stop.requested and not finished and chief and (saver.progress.epoch > 0 or done):
                state.progress = saver.progress
                state.save()  # the last completed epoch's state (epoch 0: the fold's start)
            if writer.best_epoch is None:  # interrupted before the first epoch ended, or diverged
                notes.append(f"{split.name}: " + ("interrupted before the first epoch ended" if stop.requested
                                                  else "no epoch with a finite validation loss") + "; nothing saved")
                break
            if keep_best and writer.best_weights is not None:
                model.set_weights(writer.best_weights)
            with timings.phase("evaluation", split.fold):
                centroids = _training_centroids(model, features, split)
            meta = model_metadata(config, features, centroids, writer.best_epoch, identity)
            with timings.phase("weights file (final)", split.fold):
                save_weights(model, path, meta)
            weights.append(path)
            # The fused features feed the t-SNE figure of the training run (one cheap pass).
            with timings.phase("evaluation", split.fold):
                result = evaluate(model, features, split.test, split.fold, split.name, centroids, str(path),
                                  with_fused=True)
            result.seconds = time.perf_counter() - fold_start
            folds.append(result)
            if chief:
                outputs.submit("TensorBoard confusion image", split.fold, tensorboard_logs.log_fold_confusion,
                               log_dir, result, features.class_labels, features.name)
            if finished:
                done.append(split.fold)
                if chief:
                    with timings.phase("resume state (fold end)", split.fold):
                        state.save_fold(resume.CompletedFold(result, path, fold_history, writer.best_epoch))
                    fault_point("fold_end", fold=split.fold)
            if stop.requested:
                if not finished:
                    notes.append(f"training interrupted during {split.name} (kept epoch {writer.best_epoch})")
                elif len(done) < len(splits):
                    notes.append(f"training interrupted after {split.name}")
                break
        # Not training: after the last fold, so that it never holds the next fold back.
        if chief and weights:
            with timings.phase(".keras files"):
                _export_portable(fold_model, weights, config, features)
        outputs.wait()  # every background output written before the run can count as complete
        if not folds and stop.requested:
            raise KeyboardInterrupt  # exit 130: nothing was saved
        if not folds:
            raise UserError("no epoch ended with a finite validation loss, so no weights were saved: the training "
                            "diverged (lower --lr) or the features are unusable")
    command = None
    complete = len(done) == len(splits)
    finish = None
    if complete and chief:
        finish = state.finish
        if not keep_state:
            state.finish()
            finish = None
    elif chief:
        command = resume.resume_command(model_dir)
        notes.append(f"continue this run with: {command}")
    report = EvaluationReport(features.name, features.class_labels, config.head, folds, config.as_dict(), notes,
                              kind=protocol.report_kind(n_folds))
    if run_log_dir is not None and chief and complete:  # once per run, with its final figures
        with timings.phase("TensorBoard hparams"):
            tensorboard_logs.log_run_hparams(run_log_dir, run, report)
    return TrainOutcome(report, model_dir, result_dir, weights, histories, stop.requested, config, run_log_dir,
                        command, finish=finish)


class _StateSaver:
    """Called by the weights writer at the end of every epoch: the resume state of the
    fold in progress (not for an epoch cut short by Ctrl-C/SIGTERM: resuming repeats it)."""

    def __init__(self, state: resume.RunState, progress: resume.FoldProgress, stop: StopRequest,
                 enabled: bool = True) -> None:
        self.state, self.stop, self.enabled = state, stop, enabled
        self.progress = progress
        self.seconds: list[float] = []

    def __call__(self, writer: WeightsWriter, epoch: int, logs: dict) -> None:
        if self.stop.requested:
            return
        start = time.perf_counter()
        model = writer.model
        history = {k: list(v) for k, v in self.progress.history.items()}
        for key, value in logs.items():
            history.setdefault(key, []).append(float(value))
        self.progress = resume.FoldProgress(
            self.progress.fold, epoch + 1, writer.best_loss, writer.best_epoch, history, model.get_weights(),
            [keras.ops.convert_to_numpy(v.value) for v in model.optimizer.variables],
            writer.best_weights if writer.best else None)
        if self.enabled:
            self.state.progress = self.progress
            self.state.save()
            fault_point("epoch_end", fold=self.progress.fold, epoch=epoch + 1)
        self.seconds.append(time.perf_counter() - start)
        timings.record("resume state", self.seconds[-1], self.progress.fold)


def _export_portable(fold_model: FoldModel, weights: list[Path], config: TrainingConfig,
                     features: FeatureSet) -> None:
    """Every fold's portable ``.keras`` file, from its weights file (written once a fold is evaluated)."""
    model = fold_model.model
    if model is None:
        model = fold_model.start_fold()
    for path in tqdm(weights, desc="portable .keras files", disable=len(weights) < 3, leave=False):
        wf = legacy_weights.load_into_model(model, path)
        record = wf.metadata or {}
        fold = FoldIdentity.from_dict(record["protocol"]) if record.get("protocol") else None
        meta = model_metadata(config, features, wf.centroids, record.get("epoch"), fold)
        portable_model.save_portable(model, portable_name(path), meta)


def _training_centroids(model: keras.Model, features: FeatureSet, split: Split) -> np.ndarray | None:
    """Class centroids of an embedding model: the mean embedding of each class's training utterances."""
    if model_head(model) != "embedding":
        return None
    emb = predict_array(model, features.x, split.train)
    return class_centroids(emb, features.labels[split.train], len(features.class_labels))


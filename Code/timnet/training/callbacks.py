"""What runs around every epoch of a fold: seeding, timing, validation UAR, Ctrl-C, the weights file, TensorBoard."""

from __future__ import annotations

import dataclasses
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import keras
import numpy as np

from timnet import timings
from timnet.config import TrainingConfig
from timnet.evaluation.reports import classification_metrics
from timnet.evaluation.scoring import class_centroids, evaluate, predict_array
from timnet.features.files import FeatureSet
from timnet.modelfiles import keras2 as legacy_weights
from timnet.modelfiles.metadata import ModelMetadata
from timnet.network.layers import model_head
from timnet.network.losses import ConfusionUAR, find_metric
from timnet.protocols import Split
from timnet.training.weight_histograms import WeightHistograms


class StopRequest:
    """Ctrl-C (SIGINT) or SIGTERM (what cluster schedulers send before they kill a job)
    during training: finish the current batch, stop, keep what was saved. A second
    signal quits at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False

    @contextmanager
    def installed(self) -> Iterator[StopRequest]:
        def handler(signum: int, frame: Any) -> None:
            if self.requested:  # a second signal quits at once
                for number, old in previous.items():
                    signal.signal(number, old)
                raise KeyboardInterrupt
            self.requested = True
            name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
            print(f"\nInterrupted: stopping after this batch ({name}); the saved weights are kept and evaluated, "
                  "the run can be resumed.", file=sys.stderr, flush=True)

        previous: dict[int, Any] = {}
        try:
            for number in self.SIGNALS:
                previous[number] = signal.getsignal(number)
                signal.signal(number, handler)
        except ValueError:  # not the main thread: no signal handling
            yield self
            return
        try:
            yield self
        finally:
            for number, old in previous.items():
                signal.signal(number, old)


class StopOnRequest(keras.callbacks.Callback):
    def __init__(self, interrupt: StopRequest) -> None:
        super().__init__()
        self.interrupt = interrupt

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.interrupt.requested:
            self.model.stop_training = True

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if self.interrupt.requested:
            self.model.stop_training = True


class EpochTimer(keras.callbacks.Callback):
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


class PhaseTimer(keras.callbacks.Callback):
    """Records each epoch's training steps (epoch begin to the validation pass) and fit's
    validation pass in :mod:`timnet.timings`; :meth:`epoch_end` is a second callback, put
    last, that records the epoch-end callbacks (weights file, resume state, TensorBoard)."""

    def __init__(self, fold: int) -> None:
        super().__init__()
        self.fold = fold
        self.start = self.test_start = self.test_end = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.start = self.test_end = time.perf_counter()

    def on_test_begin(self, logs: dict | None = None) -> None:
        self.test_start = time.perf_counter()
        timings.record("training steps", self.test_start - self.start, self.fold)

    def on_test_end(self, logs: dict | None = None) -> None:
        self.test_end = time.perf_counter()
        timings.record("validation", self.test_end - self.test_start, self.fold)

    def epoch_end(self) -> keras.callbacks.Callback:
        timer = self

        class EpochEnd(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                if timer.test_end > timer.start:
                    timings.record("epoch-end callbacks", time.perf_counter() - timer.test_end, timer.fold)
                else:  # no validation pass: the whole epoch was training steps
                    timings.record("training steps", time.perf_counter() - timer.start, timer.fold)

        return EpochEnd()


# One validation pass per epoch: a softmax model compiles :class:`ConfusionUAR`, so fit's
# validation pass yields the UAR too. False: the earlier second pass of ValidationUAR (the
# reference the one pass is tested against; what an embedding head always does).
ONE_VALIDATION_PASS = True


def uar_from_counts(counts: np.ndarray) -> float:
    """The UAR of a confusion matrix, computed exactly as the reports compute it from labels."""
    counts = np.rint(counts).astype(np.int64)
    truth, predicted = np.nonzero(counts)
    repeats = counts[truth, predicted]
    return classification_metrics(np.repeat(truth, repeats), np.repeat(predicted, repeats), len(counts))["UAR"]


class ValidationUAR(keras.callbacks.Callback):
    """Adds ``val_uar`` to the epoch logs (before TensorBoard writes them): from the
    confusion counts of fit's own validation pass when the model compiled
    :class:`ConfusionUAR` (a softmax head), else from a second pass over the validation
    part (an embedding head needs the epoch's class centroids)."""

    def __init__(self, features: FeatureSet, train_index: np.ndarray, val_index: np.ndarray, fold: int = 0) -> None:
        super().__init__()
        self.features, self.fold = features, fold
        self.val_index = val_index
        rng = np.random.default_rng(0)
        self.centroid_index = np.sort(rng.permutation(train_index)[:2048])

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is None or not len(self.val_index):
            return
        start = time.perf_counter()
        counts = find_metric(self.model, ConfusionUAR) if "val_loss" in logs else None
        if counts is not None:  # the metric holds fit's validation pass (evaluate resets it first)
            logs["val_uar"] = uar_from_counts(keras.ops.convert_to_numpy(counts.counts))
            return
        centroids = None
        if model_head(self.model) == "embedding":
            emb = predict_array(self.model, self.features.x, self.centroid_index)
            centroids = class_centroids(emb, self.features.labels[self.centroid_index], self.features.y.shape[1])
        result = evaluate(self.model, self.features, self.val_index, 0, "", centroids)
        logs["val_uar"] = result.metrics(self.features.y.shape[1])["UAR"]
        timings.record("validation UAR pass", time.perf_counter() - start, self.fold)


class EpochSeeding(keras.callbacks.Callback):
    """Makes the shuffle order and the dropout masks of epoch k a function of (seed,
    fold, k) alone, not of how many epochs this process has run: a resumed run repeats
    an uninterrupted one. At every epoch begin it picks the epoch's order of the fold's
    training utterances (read by :func:`timnet.training.data_pipeline.epoch_dataset`)
    and sets the state of every dropout layer's seed generator."""

    def __init__(self, seed: int, fold: int, train_index: np.ndarray) -> None:
        super().__init__()
        self.seed, self.fold = int(seed), int(fold)
        self.train_index = np.asarray(train_index)
        self.epoch = 0

    def order_of(self, epoch: int) -> np.ndarray:
        """The training utterances in epoch ``epoch``'s order."""
        return np.random.default_rng([self.seed, self.fold, epoch]).permutation(self.train_index)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch
        generators = [v for v in self.model.variables if v.path.endswith("seed_generator_state")]
        states = np.random.SeedSequence([self.seed, self.fold, epoch]).generate_state(len(generators), np.uint32)
        for variable, state in zip(generators, states):
            variable.assign(np.asarray([int(state) >> 1, 0], dtype=variable.dtype))


class WeightsWriter(keras.callbacks.Callback):
    """Writes the weights file atomically: every epoch (``best=False``, the paper's last
    epoch) or when the validation loss improves (``best=True``, the seed's checkpoint,
    whose weights it also keeps in memory). ``before_write`` (the resume state) runs
    after the best-so-far bookkeeping and before the file is written, so a folder with
    a weights file always has the state that produced it."""

    def __init__(self, path: Path, metadata: ModelMetadata, best: bool,
                 before_write: Callable[[WeightsWriter, int, dict], None] | None = None, fold: int = 0) -> None:
        super().__init__()
        self.path, self.metadata, self.best = path, metadata, best
        self.before_write = before_write
        self.best_loss = np.inf
        self.best_epoch: int | None = None
        self.best_weights: list[np.ndarray] | None = None
        self.diverged_at: int | None = None  # the epoch whose training loss was not finite
        self.fold = fold

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        if not np.isfinite(logs.get("loss", 0.0)):
            # Diverged: the weights are no longer finite and no later epoch recovers. Stop,
            # and keep the last saved epoch (and its resume state) as they are.
            self.diverged_at = epoch + 1
            self.model.stop_training = True
            return
        improved = True
        if self.best:
            loss = logs.get("val_loss", logs.get("loss"))
            improved = loss is not None and bool(np.isfinite(loss)) and loss < self.best_loss
            if improved:
                self.best_loss, self.best_epoch = float(loss), epoch + 1
                self.best_weights = self.model.get_weights()
        else:
            self.best_epoch = epoch + 1
        if self.before_write is not None:
            self.before_write(self, epoch, logs)
        if improved:
            with timings.phase("weights file (every epoch)", self.fold):
                save_weights(self.model, self.path, dataclasses.replace(self.metadata, epoch=self.best_epoch))


def save_weights(model: keras.Model, path: Path, metadata: ModelMetadata) -> Path:
    """The weights file (the original's Keras 2 layout) with our metadata and centroids."""
    return legacy_weights.write_weight_file(model, path, metadata.to_dict(with_centroids=False),
                                            centroids=metadata.centroids)


def fold_callbacks(config: TrainingConfig, features: FeatureSet, split: Split, writer: WeightsWriter,
                   interrupt: StopRequest, log_dir: Path | None,
                   seeding: EpochSeeding | None = None) -> list[keras.callbacks.Callback]:
    """What runs around every epoch of a fold: the epoch's seeding, timing, validation
    UAR, Ctrl-C, the weights file and (on the chief, ``log_dir`` given) TensorBoard."""
    phases = PhaseTimer(split.fold)
    callbacks: list[keras.callbacks.Callback] = [EpochTimer(), phases, StopOnRequest(interrupt), writer]
    if log_dir is not None:
        callbacks.insert(1, ValidationUAR(features, split.train, split.validation, split.fold))
        # Scalars from Keras' callback; the weight histograms from ours (much cheaper).
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(log_dir), histogram_freq=0))
        callbacks.append(WeightHistograms(log_dir, config.histogram_freq))
    if seeding is not None:
        callbacks.insert(0, seeding)
    return callbacks + [phases.epoch_end()]

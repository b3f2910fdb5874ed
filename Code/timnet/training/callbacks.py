"""What runs around every epoch of a fold: timing, validation UAR, Ctrl-C, the weights file, TensorBoard."""

from __future__ import annotations

import dataclasses
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import keras
import numpy as np

from timnet.config import TrainingConfig
from timnet.evaluation.scoring import class_centroids, evaluate, predict_array
from timnet.features.files import FeatureSet
from timnet.modelfiles import keras2 as legacy_weights
from timnet.modelfiles.metadata import ModelMetadata
from timnet.network.layers import model_head
from timnet.training.protocols import Split
from timnet.training.weight_histograms import WeightHistograms


class StopRequest:
    """Ctrl-C during training: finish the current batch, stop, keep what was saved."""

    def __init__(self) -> None:
        self.requested = False

    @contextmanager
    def installed(self) -> Iterator[StopRequest]:
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


class ValidationUAR(keras.callbacks.Callback):
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


class WeightsWriter(keras.callbacks.Callback):
    """Writes the weights file atomically: every epoch (``best=False``, the paper's last
    epoch) or when the validation loss improves (``best=True``, the seed's checkpoint)."""

    def __init__(self, path: Path, metadata: ModelMetadata, best: bool) -> None:
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
        save_weights(self.model, self.path, dataclasses.replace(self.metadata, epoch=self.best_epoch))


def save_weights(model: keras.Model, path: Path, metadata: ModelMetadata) -> Path:
    """The weights file (the original's Keras 2 layout) with our metadata and centroids."""
    return legacy_weights.write_weight_file(model, path, metadata.to_dict(with_centroids=False),
                                            centroids=metadata.centroids)


def fold_callbacks(config: TrainingConfig, features: FeatureSet, split: Split, writer: WeightsWriter,
                   interrupt: StopRequest, log_dir: Path | None) -> list[keras.callbacks.Callback]:
    """What runs around every epoch of a fold: timing, validation UAR, Ctrl-C, the
    weights file and (on the chief, ``log_dir`` given) TensorBoard."""
    callbacks: list[keras.callbacks.Callback] = [EpochTimer(), StopOnRequest(interrupt), writer]
    if log_dir is not None:
        callbacks.insert(1, ValidationUAR(features, split.train, split.test))
        # Scalars from Keras' callback; the weight histograms from ours (much cheaper).
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(log_dir), histogram_freq=0))
        callbacks.append(WeightHistograms(log_dir, config.histogram_freq))
    return callbacks

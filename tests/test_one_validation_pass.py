"""Issue 21: one validation pass per epoch, outputs off the critical path, same results.

- The one pass (``val_uar`` from the confusion counts of fit's own validation pass) gives
  exactly what the earlier second pass gave: the reference path runs in the same test
  (``callbacks.ONE_VALIDATION_PASS = False``: no compiled metric, a second pass), and the
  folds' predictions, scores, metrics and every history value must be equal.
- The per-fold TensorBoard confusion images, written by a background thread, are all there
  after a normal end; one that a killed run never wrote is drawn again by the resume.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import write_tiny
from timnet.config import make_config
from timnet.evaluation import tensorboard_logs
from timnet.features.files import load_features
from timnet.training import callbacks, loop


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    tf.config.experimental.enable_op_determinism()
    return load_features(write_tiny(tmp_path_factory.mktemp("onepass") / "tiny.npy", n=30, frames=12))


def _config(tmp: Path, name: str, **extra):
    return make_config({"data": "tiny", "recipe": "paper", "split_fold": 3, "max_folds": 2, "epoch": 3,
                        "batch_size": 8, "dilation_size": 1, "histogram_freq": 0, "gpu": "-1",
                        "model_path": tmp / name / "m", "result_path": tmp / name / "r", "log_dir": tmp / name / "l",
                        **extra})


def _train(config, features):
    keras.utils.set_random_seed(config.random_seed)
    return loop.train(config, features, verbose=0)


def test_one_validation_pass_gives_the_results_of_two(tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    one = _train(_config(tmp_path, "one"), tiny)
    passes: list[int] = []
    original = callbacks.ValidationUAR.on_epoch_end

    def counted(self, epoch, logs=None):  # the reference path: a second pass every epoch
        passes.append(epoch)
        return original(self, epoch, logs)

    monkeypatch.setattr(callbacks, "ONE_VALIDATION_PASS", False)
    monkeypatch.setattr(callbacks.ValidationUAR, "on_epoch_end", counted)
    two = _train(_config(tmp_path, "two"), tiny)
    assert len(passes) == 2 * 3 and len(one.report.folds) == len(two.report.folds) == 2
    for a, b in zip(one.report.folds, two.report.folds):
        np.testing.assert_array_equal(a.index, b.index)
        np.testing.assert_array_equal(a.y_pred, b.y_pred)
        np.testing.assert_array_equal(a.scores, b.scores)
        assert a.metrics(5)["UAR"] == b.metrics(5)["UAR"]
    for ha, hb in zip(one.histories, two.histories):
        assert {k for k in ha if k != "uar"} == set(hb) and "val_uar" in hb  # "uar": the training UAR, new
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "val_uar"):
            assert ha[key] == hb[key], key
    for fold in (1, 2):  # written in the background, complete after the run
        assert tensorboard_logs.has_fold_confusion(one.log_dir / f"fold_{fold}")


def test_resume_draws_a_missing_background_output(tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(tmp_path, "killed", max_folds=None)
    original_log = tensorboard_logs.log_fold_confusion
    monkeypatch.setattr(tensorboard_logs, "log_fold_confusion", lambda *a, **k: None)  # "killed" before it wrote

    class StopInFold2(keras.callbacks.Callback):  # Ctrl-C during fold 2: fold 1 is complete
        def on_train_batch_end(self, batch, logs=None):
            if self.params and len(stopped) == 0 and fold_of[-1] == 2:
                stopped.append(batch)
                os.kill(os.getpid(), signal.SIGINT)

    stopped: list[int] = []
    fold_of: list[int] = []
    original_callbacks = loop.fold_callbacks

    def with_stop(config, features, split, *args, **kwargs):
        fold_of.append(split.fold)
        return original_callbacks(config, features, split, *args, **kwargs) + [StopInFold2()]

    monkeypatch.setattr(loop, "fold_callbacks", with_stop)
    first = _train(config, tiny)
    assert first.interrupted and stopped and first.resume_command
    assert not tensorboard_logs.has_fold_confusion(first.log_dir / "fold_1")
    monkeypatch.setattr(tensorboard_logs, "log_fold_confusion", original_log)
    monkeypatch.setattr(loop, "fold_callbacks", original_callbacks)
    resumed = _train(config.replace(resume=str(first.model_dir)), tiny)
    assert not resumed.interrupted and len(resumed.report.folds) == 3
    for fold in (1, 2, 3):
        assert tensorboard_logs.has_fold_confusion(first.log_dir / f"fold_{fold}"), fold

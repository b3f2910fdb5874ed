"""A run's TensorBoard summaries beyond the training curves: each evaluated fold's
confusion matrix (Images tab) and the run's hyper-parameters with its final WAR, UAR and
macro-F1 (HParams tab, so that runs can be compared side by side).

Layout (the same as the curves'): ``<log_dir>/<run>/`` holds the hyper-parameters and
final metrics; with several folds, fold ``i``'s confusion image goes to
``<log_dir>/<run>/fold_<i>/`` beside its curves, with one fold to the run folder itself.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

from timnet.evaluation.reports import EvaluationReport, FoldResult

CONFUSION_TAG = "confusion_matrix"
CONFUSION_SUFFIX = ".confusion"  # the event file of a fold's confusion image (renamed into place when complete)
METRIC_TAGS = {"WAR": "hparams/WAR", "UAR": "hparams/UAR", "macro_F1": "hparams/macro_F1"}  # the HParams columns
# Settings that say where files go, not how the model was made: no hyper-parameters.
_NOT_HPARAMS = {"model_path", "result_path", "log_dir", "test_path", "resume"}


def _flat_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The architecture's fields beside the training's, output folders left out."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, Mapping):
            flat.update(value)
        elif key not in _NOT_HPARAMS:
            flat[key] = value
    return flat


def hparam_values(settings: Mapping[str, Any]) -> dict[str, bool | int | float | str]:
    """The run's settings as TensorBoard hyper-parameters (unset ones, such as no
    ``--max_folds``, have no value: the column stays empty for that run)."""
    return {k: (v if isinstance(v, (bool, int, float, str)) else str(v))
            for k, v in _flat_settings(settings).items() if v is not None}


def log_fold_confusion(log_dir: Path, fold: FoldResult, class_labels: tuple[str, ...], data: str) -> Path:
    """Fold ``fold``'s confusion matrix (counts and recall) as an image, at step = fold number."""
    from timnet.evaluation.figures import confusion_png

    cm = fold.metrics(len(class_labels))["confusion_matrix"]
    png = confusion_png(np.asarray(cm), list(class_labels), title=f"{data}: {fold.name}")
    image = tf.io.decode_png(png, channels=3)[tf.newaxis]
    log_dir.mkdir(parents=True, exist_ok=True)
    for partial in log_dir.glob(".confusion-*"):  # what a killed writer left
        shutil.rmtree(partial, ignore_errors=True)
    # Written beside, then renamed into place: an image file in the folder is a complete one
    # (it may be written in the background; a resume redraws a fold's image that is missing).
    with tempfile.TemporaryDirectory(dir=log_dir, prefix=".confusion-") as tmp:
        writer = tf.summary.create_file_writer(tmp, filename_suffix=CONFUSION_SUFFIX)
        with writer.as_default():
            tf.summary.image(CONFUSION_TAG, image, step=fold.fold,
                             description=f"Confusion matrix of {fold.name} (rows: true class, columns: predicted)")
        writer.close()
        for event_file in Path(tmp).iterdir():
            os.replace(event_file, log_dir / event_file.name)
    return log_dir


def has_fold_confusion(log_dir: Path) -> bool:
    """Whether ``log_dir`` holds a complete confusion image (see :func:`log_fold_confusion`)."""
    return any(log_dir.glob(f"events.out.tfevents.*{CONFUSION_SUFFIX}"))


def log_run_hparams(log_dir: Path, run: str, report: EvaluationReport) -> Path:
    """The run's hyper-parameters (its trial id: the run name) and final WAR/UAR/macro-F1 (the
    means over its folds, as in metrics.json) for TensorBoard's HParams tab."""
    values = hparam_values(report.settings)
    columns = sorted(_flat_settings(report.settings))
    summary = report.summary()
    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default():
        # Every run declares the same columns, so the tab shows them whichever run it reads first.
        hp.hparams_config(hparams=[hp.HParam(name) for name in columns],
                          metrics=[hp.Metric(tag, display_name=name) for name, tag in METRIC_TAGS.items()])
        hp.hparams(values, trial_id=run)
        for name, tag in METRIC_TAGS.items():
            if summary.get(name) is not None:
                tf.summary.scalar(tag, summary[name], step=0)
    writer.close()
    return log_dir

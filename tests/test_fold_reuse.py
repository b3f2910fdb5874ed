"""One model per run (issue 16): reusing it for every fold gives what separate builds give."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import write_tiny
from timnet.config import make_config
from timnet.features.files import load_features
from timnet.modelfiles import keras2 as legacy_weights
from timnet.training.loop import FoldModel, build_model, train
from timnet.training.resume import FoldProgress


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    tf.config.experimental.enable_op_determinism()
    yield load_features(write_tiny(tmp_path_factory.mktemp("reuse") / "tiny.npy", n=40, frames=20))
    # Process-wide: later tests in this process must not depend on this module having run
    # (TensorFlow exports no public switch back; checked on TensorFlow 2.21).
    from tensorflow.python.framework import config as tf_framework_config

    tf_framework_config.disable_op_determinism()


def _config(tmp: Path, name: str):
    return make_config({"data": "tiny", "recipe": "paper", "split_fold": 3, "epoch": 2, "batch_size": 16,
                        "dilation_size": 2, "histogram_freq": 0, "gpu": "-1", "model_path": tmp / name / "m",
                        "result_path": tmp / name / "r", "log_dir": tmp / name / "l"})


def test_every_fold_starts_from_the_seeded_initial_weights(tiny, tmp_path: Path) -> None:
    """The reused model's fold start == a fresh build after set_random_seed(seed) (the
    per-fold seeding of separate builds), with a fresh optimizer."""
    config = _config(tmp_path, "a")
    fold_model = FoldModel(config, tiny.x.shape[1:], 5, tf.distribute.get_strategy())
    model = fold_model.start_fold()
    model.fit(tiny.x[:16], tiny.y[:16], epochs=1, verbose=0)  # moves weights and optimizer
    assert int(model.optimizer.iterations.numpy()) > 0
    again = fold_model.start_fold(FoldProgress(2))
    assert again is model
    keras.utils.set_random_seed(config.random_seed)
    fresh = build_model(config, tiny.x.shape[1:], 5)
    for a, b in zip(again.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert int(again.optimizer.iterations.numpy()) == 0
    assert all(not np.any(keras.ops.convert_to_numpy(v.value)) for v in again.optimizer.variables
               if "momentum" in v.path or "velocity" in v.path)


def test_fold_reuse_equals_separate_builds(tiny, tmp_path: Path) -> None:
    reused = train(_config(tmp_path, "reused"), tiny, verbose=0, reuse_model=True)
    separate = train(_config(tmp_path, "separate"), tiny, verbose=0, reuse_model=False)
    assert len(reused.report.folds) == len(separate.report.folds) == 3
    for a, b in zip(reused.report.folds, separate.report.folds):
        assert a.fold == b.fold
        np.testing.assert_array_equal(a.y_pred, b.y_pred)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-6)
    for ha, hb in zip(reused.histories, separate.histories):
        np.testing.assert_allclose(ha["loss"], hb["loss"], atol=1e-6)
    for pa, pb in zip(reused.weights, separate.weights):
        wa, wb = legacy_weights.read_weight_file(pa), legacy_weights.read_weight_file(pb)
        for la, lb in zip(wa.layer_order, wb.layer_order):
            for xa, xb in zip(la.weights, lb.weights):
                np.testing.assert_allclose(xa, xb, atol=1e-6)
    # Only the run's first epoch traces the training step.
    later = [h["epoch_time"][0] for h in reused.histories[1:]]
    assert max(later) < reused.histories[0]["epoch_time"][0]

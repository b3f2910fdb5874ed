"""Ctrl-C (SIGINT) during training: the run stops cleanly, keeps and evaluates the saved
weights, writes complete reports, says it was interrupted and how to resume it."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import (
    FAST,
    check_consistency,
    check_workbook,
    finish,
    only_run_folder,
    read_metrics,
    start_cli,
    start_signalled_cli,
    write_tiny,
)
from timnet.modelfiles import keras2 as legacy_weights

SMALL_NET = ["--dilation_size", "2"]


def _wait_for(predicate, proc, log: Path, timeout: float = 400) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the training exited early ({proc.returncode}):\n{log.read_text()[-3000:]}")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError(f"timed out waiting:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Three endless trainings at once: hold-out and k-fold interrupted after their first weights
    file, and one interrupted (by itself) at its first batch."""
    base = tmp_path_factory.mktemp("interrupt")
    data = write_tiny(base / "tiny.npy", n=40, frames=20)
    runs = {
        "holdout": ["--loss", "npair", "--protocol", "holdout"],
        "kfold": ["--recipe", "paper", "--split_fold", "3"],
        "early": ["--loss", "npair", "--protocol", "holdout"],
    }
    procs, logs = {}, {}
    for name, extra in runs.items():
        args = ["--mode", "train", "--data", str(data), *FAST, *SMALL_NET, *extra, "--epoch", "1000000",
                "--no_figures", "--model_path", str(base / name / "models"), "--result_path",
                str(base / name / "results"), "--log_dir", str(base / name / "log")]
        logs[name] = base / f"{name}.log"
        if name == "early":  # Ctrl-C at the first batch, before any epoch can end, whatever the machine's speed
            procs[name] = start_signalled_cli(args, base, logs[name], fold=1, epoch=0, signal_name="SIGINT")
        else:
            procs[name] = start_cli(args[2:], base, logs[name])
    out: dict[str, Any] = {}
    try:
        # The endless runs: Ctrl-C once their first weights file exists (they cannot finish before it lands).
        for name, pattern in (("holdout", "weights_best.hdf5"), ("kfold", "3-fold_weights_best_1.hdf5")):
            models = base / name / "models"
            _wait_for(lambda models=models, pattern=pattern: any(models.rglob(pattern)), procs[name], logs[name])
            procs[name].send_signal(signal.SIGINT)
    finally:
        for name, proc in procs.items():
            rc, log = finish(proc, logs[name], timeout=300)
            out[name] = {"rc": rc, "log": log, "base": base / name}
    return out


@pytest.mark.parametrize(("name", "weights", "head"), [
    ("holdout", "weights_best.hdf5", "embedding"),
    ("kfold", "3-fold_weights_best_1.hdf5", "softmax"),
])
def test_interrupted_training_keeps_its_weights(interrupted: dict[str, Any], name: str, weights: str,
                                                head: str) -> None:
    run = interrupted[name]
    assert run["rc"] == 0, run["log"][-3000:]
    assert "Interrupted: stopping after this batch" in run["log"]
    models = only_run_folder(run["base"] / "models")
    assert sorted(p.name for p in models.iterdir()) == [".resume", weights, weights.replace(".hdf5", ".keras")]
    assert f"continue it with:\n  timnet train --resume {models}" in run["log"]  # the run can be resumed
    wf = legacy_weights.read_weight_file(models / weights)
    assert wf.metadata["epoch"] >= 1 and wf.metadata["head"] == head
    results = only_run_folder(run["base"] / "results")
    metrics, pred = check_consistency(results, head)
    check_workbook(results, [1])  # k-fold: stopped during fold 1, only fold 1 is evaluated
    assert any("interrupted" in note for note in metrics["notes"]), metrics["notes"]
    assert "interrupted" in (results / "summary.md").read_text()
    assert set(pred["fold"].tolist()) == {1} and len(pred["y_true"]) in (4, 14)
    history = read_metrics(results)["settings"]
    assert history["epoch"] == 1_000_000
    assert not [p for p in results.iterdir() if p.name.startswith(".")], "temporary files left behind"
    assert np.isfinite(metrics["WAR"])


def test_interrupt_as_soon_as_training_starts(interrupted: dict[str, Any]) -> None:
    """Keras always finishes the batch and the epoch it is in: the partial first epoch is kept."""
    run = interrupted["early"]
    assert run["rc"] == 0, run["log"][-3000:]
    models = only_run_folder(run["base"] / "models")
    wf = legacy_weights.read_weight_file(models / "weights_best.hdf5")
    assert wf.metadata["epoch"] == 1
    results = only_run_folder(run["base"] / "results")
    metrics, _ = check_consistency(results, "embedding")
    assert any("interrupted" in note for note in metrics["notes"]), metrics["notes"]
    history = json.loads((results / "history.json").read_text())
    assert len(history) == 1 and len(history[0]["loss"]) == 1


def test_weights_writer_stops_at_a_diverged_epoch(tmp_path: Path) -> None:
    """A non-finite training loss stops the fold and keeps the last finite epoch's file."""
    from timnet.config import ArchitectureConfig
    from timnet.modelfiles.metadata import ModelMetadata
    from timnet.network.layers import build_timnet_model
    from timnet.training.callbacks import WeightsWriter

    arch = ArchitectureConfig(dilation_size=2)
    model = build_timnet_model((8, 39), 3, arch)
    model.stop_training = False  # as fit() sets it
    meta = ModelMetadata(architecture=arch, head="softmax", class_labels=("a", "b", "c"), frames=8,
                         mean_signal_length=4096)
    path = tmp_path / "3-fold_weights_best_1.hdf5"
    writer = WeightsWriter(path, meta, best=False)
    writer.set_model(model)
    writer.on_epoch_end(0, {"loss": 1.2, "val_loss": 1.3})
    first = path.read_bytes()
    assert writer.best_epoch == 1 and not model.stop_training
    writer.on_epoch_end(1, {"loss": float("nan"), "val_loss": float("nan")})
    assert writer.diverged_at == 2 and model.stop_training
    assert writer.best_epoch == 1 and path.read_bytes() == first  # epoch 1's weights are kept

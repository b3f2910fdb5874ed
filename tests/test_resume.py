"""Resuming interrupted runs (issue 14) and one model per run (issue 16).

Phase 1 starts, at once: uninterrupted k-fold, hold-out and LOSO runs; the same k-fold
and LOSO runs SIGKILLed in the middle of fold 2 (by a callback that runs after the
epoch's resume state is written); the same hold-out run stopped by SIGTERM. Phase 2
resumes them (``--resume``) and compares every fold's metrics, predictions and final
weights with the uninterrupted runs (1e-6), besides the test-mode default, a refused
contradicting flag and the leftover clean-up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import (
    FAST,
    MAIN,
    check_consistency,
    cli_env,
    finish,
    read_metrics,
    run_cli,
    start_cli,
    start_signalled_cli,
    write_tiny,
)
from timnet.modelfiles import keras2 as legacy_weights

SMALL_NET = ["--dilation_size", "2", "--no_figures"]
RUNS = {
    "kfold": ["--recipe", "paper", "--split_fold", "3", "--epoch", "4"],
    "loso": ["--loss", "npair", "--protocol", "loso", "--max_folds", "2", "--epoch", "3"],
    "holdout": ["--loss", "npair", "--protocol", "holdout", "--epoch", "12"],
}
KILLED = {"kfold": (2, 2), "loso": (2, 1)}  # (fold, epoch) at whose end the process is killed


def _dirs(base: Path) -> list[str]:
    return ["--model_path", str(base / "models"), "--result_path", str(base / "results"),
            "--log_dir", str(base / "log")]


def _runs(base: Path) -> list[Path]:
    return sorted(p for p in (base / "models").iterdir() if p.is_dir())


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("resume")
    data = write_tiny(base / "tiny.npy", n=40, frames=20)
    common = ["--data", str(data), *FAST, *SMALL_NET]
    procs: dict[str, subprocess.Popen] = {}
    logs: dict[str, Path] = {}
    for name, extra in RUNS.items():
        logs[name] = base / f"{name}.log"
        procs[name] = start_cli(["--mode", "train", *common, *extra, *_dirs(base / name / "plain")], base, logs[name])
    for name, (fold, epoch) in KILLED.items():
        logs[f"{name}_killed"] = base / f"{name}_killed.log"
        procs[f"{name}_killed"] = start_signalled_cli(["--mode", "train", *common, *RUNS[name],
                                                       *_dirs(base / name / "killed")], base,
                                                      logs[f"{name}_killed"], fold=fold, epoch=epoch,
                                                      signal_name="SIGKILL")
    logs["holdout_term"] = base / "holdout_term.log"
    term_dirs = base / "holdout" / "term"
    # SIGTERM at the end of the first epoch, as a scheduler would send it (at a chosen epoch, not
    # after a wait that a fast or a loaded machine overruns).
    procs["holdout_term"] = start_signalled_cli(["--mode", "train", *common, *RUNS["holdout"], *_dirs(term_dirs)],
                                                base, logs["holdout_term"], fold=1, epoch=1, signal_name="SIGTERM")
    out: dict[str, Any] = {"base": base, "data": data}
    for name, proc in procs.items():
        out[name] = finish(proc, logs[name], timeout=400)
    # Plant what a writer killed during a weights write leaves (a hidden 0-byte temporary).
    killed_run = _runs(base / "kfold" / "killed")[0]
    out["leftover"] = killed_run / ".3-fold_weights_best_2.hdf5.k1ll3d0x.hdf5"
    out["leftover"].write_bytes(b"")
    # The test-mode default, with a complete (older) and an incomplete (newer) run side by side.
    shared = base / "kfold" / "shared"
    (shared / "models").mkdir(parents=True)
    plain_run = _runs(base / "kfold" / "plain")[0]
    # Link names of their own: both runs may have started in the same second, under the same name.
    os.symlink(plain_run, shared / "models" / "complete_run")
    os.symlink(killed_run, shared / "models" / "killed_run")
    now = time.time()
    os.utime(plain_run, (now - 60, now - 60))
    os.utime(killed_run, (now, now))  # the newer one
    out["test_default"] = run_cli(["--mode", "test", "--data", str(data), "--gpu", "-1", "--no_figures",
                                   "--model_path", str(shared / "models"), "--result_path",
                                   str(shared / "results"), "--dilation_size", "2"], base)
    # A flag that contradicts the run's settings is refused before anything trains.
    out["refused"] = run_cli(["--mode", "train", "--resume", "last", "--epoch", "5",
                              "--model_path", str(base / "kfold" / "killed" / "models")], base)
    # Phase 2: resume (by name under --model_path, by "last", by path).
    resumes = {
        "kfold": ["--resume", killed_run.name, "--model_path", str(base / "kfold" / "killed" / "models")],
        "loso": ["--resume", "last", "--model_path", str(base / "loso" / "killed" / "models")],
        "holdout": ["--resume", str(_runs(term_dirs)[0])],
    }
    procs = {}
    for name, extra in resumes.items():
        logs[f"{name}_resumed"] = base / f"{name}_resumed.log"
        procs[name] = start_cli(["--mode", "train", *extra], base, logs[f"{name}_resumed"])
    for name, proc in procs.items():
        out[f"{name}_resumed"] = finish(proc, logs[f"{name}_resumed"], timeout=400)
    return out


def _read_events(folder: Path, tag: str) -> list[int]:
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    steps = []
    for path in sorted(folder.glob("events.out.tfevents*")):
        for event in EventFileLoader(str(path)).Load():
            steps += [event.step for value in event.summary.value if value.tag == tag]
    return steps


def _compare(plain: Path, resumed: Path) -> None:
    """The same per-fold metrics, predictions, curves and final weights (1e-6)."""
    a, b = read_metrics(plain / "results" / _runs(plain)[0].name), read_metrics(resumed / "results" /
                                                                                _runs(resumed)[0].name)
    for entry in a.get("folds", []) + b.get("folds", []):
        entry.pop("weights")  # the run folder's path
    for key in ("WAR", "UAR", "folds", "confusion_matrix"):
        assert json.dumps(a.get(key)) == json.dumps(b.get(key)), key
    pa = np.load(plain / "results" / _runs(plain)[0].name / "predictions.npz")
    pb = np.load(resumed / "results" / _runs(resumed)[0].name / "predictions.npz")
    for key in pa.files:
        if pa[key].dtype.kind == "f":
            np.testing.assert_allclose(pa[key], pb[key], atol=1e-6, err_msg=key)
        else:
            np.testing.assert_array_equal(pa[key], pb[key], err_msg=key)
    ha = json.loads((plain / "results" / _runs(plain)[0].name / "history.json").read_text())
    hb = json.loads((resumed / "results" / _runs(resumed)[0].name / "history.json").read_text())
    assert len(ha) == len(hb)
    for fa, fb in zip(ha, hb):
        for key in fa:
            if key != "epoch_time":
                np.testing.assert_allclose(fa[key], fb[key], atol=1e-6, err_msg=key)
    files = sorted(p.name for p in _runs(plain)[0].iterdir())
    assert files == sorted(p.name for p in _runs(resumed)[0].iterdir())  # no .resume, no temporaries
    for name in files:
        if name.endswith(".hdf5"):
            wa = legacy_weights.read_weight_file(_runs(plain)[0] / name)
            wb = legacy_weights.read_weight_file(_runs(resumed)[0] / name)
            for la, lb in zip(wa.layer_order, wb.layer_order):
                for xa, xb in zip(la.weights, lb.weights):
                    np.testing.assert_allclose(xa, xb, atol=1e-6, err_msg=name)
            assert wa.metadata["epoch"] == wb.metadata["epoch"]


@pytest.mark.parametrize("name", ["kfold", "loso"])
def test_sigkill_then_resume_equals_uninterrupted(runs: dict[str, Any], name: str) -> None:
    base = runs["base"] / name
    assert runs[name][0] == 0, runs[name][1][-3000:]
    assert runs[f"{name}_killed"][0] == -signal.SIGKILL, runs[f"{name}_killed"][1][-3000:]
    rc, log = runs[f"{name}_resumed"]
    assert rc == 0, log[-3000:]
    fold, epoch = KILLED[name]
    assert f"fold {fold} continues after epoch {epoch}" in log
    n_folds = 3 if name == "kfold" else 2
    assert log.count("training on") == n_folds - fold + 1, "completed folds must not be retrained"
    _compare(base / "plain", base / "killed")
    check_consistency(base / "killed" / "results" / _runs(base / "killed")[0].name,
                      "softmax" if name == "kfold" else "embedding")


def test_tensorboard_continues_the_same_curves(runs: dict[str, Any]) -> None:
    killed = runs["base"] / "kfold" / "killed"
    folds = sorted(p.name for p in (killed / "log" / _runs(killed)[0].name).iterdir() if p.is_dir())
    assert folds == ["fold_1", "fold_2", "fold_3"]  # named like the run folder
    steps = _read_events(killed / "log" / _runs(killed)[0].name / "fold_2" / "train", "epoch_loss")
    assert sorted(set(steps)) == [0, 1, 2, 3] and len(steps) == len(set(steps)), steps


def test_leftover_temporaries_are_removed(runs: dict[str, Any]) -> None:
    assert not runs["leftover"].exists()
    assert f"Removed a temporary file left by an interrupted write: {runs['leftover']}" in runs["kfold_resumed"][1]


def test_test_mode_default_picks_the_newest_complete_run(runs: dict[str, Any]) -> None:
    result = runs["test_default"]
    assert result.returncode == 0, result.stderr[-3000:]
    shared = runs["base"] / "kfold" / "shared" / "models"
    assert f"Testing the newest complete run: {shared / 'complete_run'}" in result.stdout
    assert f"continue it with: timnet train --resume {shared / 'killed_run'}" in result.stdout


def test_contradicting_flag_is_refused(runs: dict[str, Any]) -> None:
    result = runs["refused"]
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --epoch 5 contradicts the run's --epoch 4"), lines


def test_sigterm_stops_like_ctrl_c_and_resumes(runs: dict[str, Any]) -> None:
    rc, log = runs["holdout_term"]
    assert rc == 0, log[-3000:]
    assert "Interrupted: stopping after this batch (SIGTERM)" in log
    assert "continue it with:\n  timnet train --resume " in log
    term = runs["base"] / "holdout" / "term"
    rc, log = runs["holdout_resumed"]
    assert rc == 0, log[-3000:]
    assert "Resuming " in log and "The run is incomplete" not in log
    metrics = read_metrics(term / "results" / _runs(term)[0].name)
    assert not any("interrupted" in note for note in metrics["notes"]), metrics["notes"]
    _compare(runs["base"] / "holdout" / "plain", term)


def test_resume_of_a_complete_run_is_refused(runs: dict[str, Any]) -> None:
    plain = runs["base"] / "kfold" / "plain"
    result = run_cli(["--mode", "train", "--resume", str(_runs(plain)[0])], runs["base"])
    assert result.returncode == 2 and "a complete run: nothing to resume" in result.stderr, result.stderr


def test_both_entry_points_take_resume() -> None:
    for cmd in ([sys.executable, str(MAIN), "--help"], [sys.executable, "-m", "timnet", "train", "--help"]):
        out = subprocess.run(cmd, capture_output=True, text=True, env=cli_env(), timeout=120)
        assert out.returncode == 0 and "--resume RESUME" in out.stdout, out.stderr

"""Shared helpers of the core tests: tiny feature files and the CLI as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
MAIN = REPO_ROOT / "Code" / "main.py"
TINY_LABELS = ("angry", "happy", "neutral", "sad", "surprise")
# Flags that keep a CLI training run small and quick in every test.
FAST = ["--histogram_freq", "0", "--gpu", "-1", "--batch_size", "16"]


def tiny_arrays(n: int = 40, frames: int = 20, n_mfcc: int = 39, n_classes: int = 5, seed: int = 0,
                speakers: int = 4, shift: float = 0.7) -> dict[str, Any]:
    """A learnable toy corpus: each class shifts one MFCC row, so a few epochs beat chance
    (but not perfectly, so that reports hold some errors).
    Every class occurs at least ``n // n_classes`` times; speakers cycle over utterances."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % n_classes
    rng.shuffle(labels)
    x = rng.normal(0.0, 1.0, size=(n, frames, n_mfcc)).astype(np.float32)
    for c in range(n_classes):
        x[labels == c, :, c % n_mfcc] += shift
    y = np.eye(n_classes, dtype=np.float32)[labels]
    out: dict[str, Any] = {"x": x, "y": y}
    if speakers:
        out["speaker"] = np.asarray([f"s{i % speakers}" for i in range(n)])
    return out


def write_tiny(path: Path, class_labels: tuple[str, ...] | None = TINY_LABELS, **kwargs: Any) -> Path:
    """Write a tiny feature file (the original's dict-in-.npy format) and return its path."""
    from timnet.features.files import write_npy_dict

    n_classes = kwargs.pop("n_classes", len(class_labels) if class_labels else 5)
    data = tiny_arrays(n_classes=n_classes, **kwargs)
    if class_labels is not None:
        data["class_labels"] = np.asarray(class_labels)
    return write_npy_dict(path, data)


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2", MPLBACKEND="Agg", PYTHONHASHSEED="0",
               TF_NUM_INTEROP_THREADS="1", OMP_NUM_THREADS="2")
    return env


def run_cli(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python Code/main.py ARGS`` in a fresh interpreter (CPU only)."""
    return subprocess.run([sys.executable, str(MAIN), *args], cwd=cwd, env=cli_env(), capture_output=True,
                          text=True, timeout=timeout)


def only_run_folder(parent: Path) -> Path:
    """The single run folder a command created under ``parent``."""
    runs = [p for p in parent.iterdir() if p.is_dir()]
    assert len(runs) == 1, f"expected one run folder in {parent}, found {[p.name for p in runs]}"
    return runs[0]


def read_metrics(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "metrics.json").read_text())


def start_cli(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    """Start ``python Code/main.py ARGS`` in the background; output goes to ``log`` (a file,
    not a pipe: a long training would fill a pipe and block)."""
    with open(log, "w") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, str(MAIN), *args], cwd=cwd, env=cli_env(), stdout=out,
                                stderr=subprocess.STDOUT, text=True)


# main.py with a callback that sends this process a signal at a named moment of training, so
# that a test interrupts or kills a run at a chosen fold and epoch, whatever the machine's speed
# (a test that waits for a file and then signals races a fast or a loaded machine).
SIGNALLER = '''"""main.py that signals itself: SIGNAL_NAME at the end of epoch SIGNAL_EPOCH of fold SIGNAL_FOLD
(after that epoch's weights and resume state are written), or at the first batch of that fold when
SIGNAL_EPOCH is 0 (before any epoch can end)."""
import os
import signal
import sys

import keras

from timnet.training import loop

FOLD, EPOCH = int(os.environ["SIGNAL_FOLD"]), int(os.environ["SIGNAL_EPOCH"])
NUMBER = getattr(signal, os.environ["SIGNAL_NAME"])
original = loop.fold_callbacks


class Signal(keras.callbacks.Callback):
    def __init__(self, fold):
        super().__init__()
        self.fold, self.sent = fold, False

    def _send(self):
        if not self.sent:
            self.sent = True
            os.kill(os.getpid(), NUMBER)

    def on_train_batch_begin(self, batch, logs=None):
        if self.fold == FOLD and EPOCH == 0:
            self._send()

    def on_epoch_end(self, epoch, logs=None):
        if self.fold == FOLD and epoch + 1 == EPOCH:
            self._send()


def patched(config, features, split, *args, **kwargs):
    return original(config, features, split, *args, **kwargs) + [Signal(split.fold)]


loop.fold_callbacks = patched
from timnet.cli.legacy import main  # noqa: E402

sys.exit(main())
'''


def start_signalled_cli(args: list[str], cwd: Path, log: Path, *, fold: int, epoch: int,
                        signal_name: str) -> subprocess.Popen:
    """Like :func:`start_cli`, but the run sends itself ``signal_name`` (SIGKILL, SIGTERM, SIGINT)
    at the end of ``epoch`` of ``fold`` (1-based), or at that fold's first batch when ``epoch`` is 0."""
    script = log.with_suffix(".signaller.py")
    script.write_text(SIGNALLER)
    code = str(REPO_ROOT / "Code")
    env = {**cli_env(), "SIGNAL_FOLD": str(fold), "SIGNAL_EPOCH": str(epoch), "SIGNAL_NAME": signal_name,
           "PYTHONPATH": os.pathsep.join(filter(None, [code, os.environ.get("PYTHONPATH")]))}
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, str(script), *args], cwd=cwd, env=env, stdout=out,
                                stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, log: Path, timeout: float = 300) -> tuple[int, str]:
    """Wait for a process started by :func:`start_cli`; its exit code and output."""
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"{proc.args} did not finish in {timeout} s:\n{log.read_text()[-3000:]}") from None
    return rc, log.read_text()


def recompute_metrics(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, Any]:
    """WAR, UAR (mean recall over the classes present), macro-F1 (mean F1 over the same
    classes), per-class recall and F1 (precision and recall's harmonic mean) and confusion, in NumPy."""
    cm = np.zeros((n_classes, n_classes), dtype=int)
    np.add.at(cm, (y_true, y_pred), 1)
    support = cm.sum(axis=1)
    recall = [cm[c, c] / support[c] if support[c] else None for c in range(n_classes)]
    f1 = []
    for c in range(n_classes):
        if not support[c]:
            f1.append(None)
            continue
        precision = cm[c, c] / cm[:, c].sum() if cm[:, c].sum() else 0.0
        f1.append(2 * precision * recall[c] / (precision + recall[c]) if precision + recall[c] else 0.0)
    present = [r for r in recall if r is not None]
    return {"WAR": float(np.mean(y_true == y_pred)), "UAR": float(np.mean(present)), "per_class_recall": recall,
            "macro_F1": float(np.mean([v for v in f1 if v is not None])), "per_class_F1": f1,
            "confusion_matrix": cm}


def check_consistency(folder: Path, head: str, n_classes: int = len(TINY_LABELS)) -> tuple[dict, dict]:
    """metrics.json recomputed from predictions.npz, fold by fold and pooled."""
    metrics = read_metrics(folder)
    with np.load(folder / "predictions.npz") as npz:
        pred = {k: npz[k] for k in npz.files}
    for key in ("WAR", "UAR", "macro_F1", "per_class_recall", "per_class_F1", "confusion_matrix", "class_labels"):
        assert key in metrics, key
    assert metrics["class_labels"] == list(TINY_LABELS)
    assert list(pred["class_labels"]) == list(TINY_LABELS)
    assert np.all(np.diff(pred["index"]) > 0), "predictions.npz must follow the order of the input file"
    if head == "softmax":
        assert "probs" in pred and "embeddings" not in pred
        np.testing.assert_allclose(pred["probs"].sum(axis=1), 1.0, rtol=1e-5)
        np.testing.assert_array_equal(pred["y_pred"], pred["probs"].argmax(axis=1))
    else:
        assert {"embeddings", "scores"} <= set(pred) and "probs" not in pred
        norms = np.linalg.norm(pred["embeddings"], axis=1)  # x / (||x|| + 1e-5): just below 1
        assert np.all((norms > 0.5) & (norms <= 1.0))
        np.testing.assert_array_equal(pred["y_pred"], pred["scores"].argmax(axis=1))
    folds = sorted(set(pred["fold"].tolist()))
    per_fold = []
    for f in folds:
        sel = pred["fold"] == f
        per_fold.append(recompute_metrics(pred["y_true"][sel], pred["y_pred"][sel], n_classes))
    if len(folds) > 1:
        assert [e["fold"] for e in metrics["folds"]] == folds
        for entry, ref in zip(metrics["folds"], per_fold):
            assert entry["WAR"] == pytest.approx(ref["WAR"]) and entry["UAR"] == pytest.approx(ref["UAR"])
            assert entry["macro_F1"] == pytest.approx(ref["macro_F1"])
            assert list(entry["per_class_F1"].values()) == pytest.approx(ref["per_class_F1"])
            assert entry["confusion_matrix"] == ref["confusion_matrix"].tolist()
            assert entry["n"] == int(np.sum(pred["fold"] == entry["fold"]))
            assert list(entry["per_class_recall"].values()) == pytest.approx(ref["per_class_recall"])
    else:
        assert "folds" not in metrics
    assert metrics["WAR"] == pytest.approx(np.mean([m["WAR"] for m in per_fold]))
    assert metrics["UAR"] == pytest.approx(np.mean([m["UAR"] for m in per_fold]))
    assert metrics["macro_F1"] == pytest.approx(np.mean([m["macro_F1"] for m in per_fold]))
    pooled = recompute_metrics(pred["y_true"], pred["y_pred"], n_classes)
    assert metrics["confusion_matrix"] == pooled["confusion_matrix"].tolist()
    assert list(metrics["per_class_recall"].values()) == pytest.approx(pooled["per_class_recall"])
    assert list(metrics["per_class_F1"].values()) == pytest.approx(pooled["per_class_F1"])
    if len(folds) > 1:
        assert metrics["pooled_macro_F1"] == pytest.approx(pooled["macro_F1"])
    assert metrics["n"] == len(pred["y_true"])
    return metrics, pred


def check_workbook(folder: Path, folds: list[int]) -> None:
    import openpyxl

    (book,) = folder.glob("*.xlsx")
    wb = openpyxl.load_workbook(book, read_only=True)
    expected = ["summary"] + [f"fold{f}_{kind}" for f in folds for kind in ("confusion", "report")]
    assert wb.sheetnames == expected
    rows = list(wb["summary"].values)
    assert rows[0][:4] == ("fold", "WAR", "UAR", "macro_F1")
    assert len(rows) == 1 + len(folds) + (1 if len(folds) > 1 else 0)
    wb.close()

"""Macro-F1 and per-class F1 beside WAR and UAR: the figures recomputed in NumPy
(tests/helpers.py), and their place in metrics.json, summary.md, the workbook and the
printed report. No network is trained here: the reports are built from known predictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import recompute_metrics
from timnet.evaluation.reports import EvaluationReport, FoldResult, classification_metrics

LABELS = ("angry", "happy", "neutral", "sad")


def _fold(fold: int, y_true: np.ndarray, y_pred: np.ndarray, start: int = 0) -> FoldResult:
    scores = np.eye(len(LABELS), dtype=np.float32)[y_pred]
    return FoldResult(fold, f"fold {fold}", np.arange(start, start + len(y_true)), y_true, y_pred, scores)


def test_f1_matches_numpy_and_sklearn() -> None:
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(3)
    for trial in range(20):
        n = int(rng.integers(5, 60))
        y_true = rng.integers(0, 4, n)
        if trial % 3 == 0:
            y_true[y_true == 2] = 1  # a class with no true utterance (still predicted sometimes)
        y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, 4, n))
        got = classification_metrics(y_true, y_pred, 4)
        ref = recompute_metrics(y_true, y_pred, 4)
        assert got["macro_F1"] == pytest.approx(ref["macro_F1"])
        assert [None if np.isnan(v) else v for v in got["per_class_F1"]] == pytest.approx(ref["per_class_F1"])
        present = np.unique(y_true)
        assert got["macro_F1"] == pytest.approx(f1_score(y_true, y_pred, labels=present, average="macro",
                                                         zero_division=0))


def test_f1_known_values() -> None:
    # angry: tp 2, fn 1, fp 0 -> P 1, R 2/3, F1 0.8; happy: tp 1, fn 0, fp 1 -> P 1/2, R 1, F1 2/3;
    # neutral: tp 0, fn 1 -> F1 0; sad: never true, predicted once -> no F1 (out of the mean).
    y_true = np.array([0, 0, 0, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 3])
    m = classification_metrics(y_true, y_pred, 4)
    np.testing.assert_allclose(m["per_class_F1"][:3], [0.8, 2 / 3, 0.0])
    assert np.isnan(m["per_class_F1"][3])
    assert m["macro_F1"] == pytest.approx((0.8 + 2 / 3) / 3)


def test_f1_in_every_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import openpyxl

    from timnet.evaluation.run_outputs import write_test_outputs

    rng = np.random.default_rng(0)
    folds = []
    for f in (1, 2):
        y_true = np.arange(12) % 4
        y_pred = np.where(rng.random(12) < 0.5, y_true, rng.integers(0, 4, 12))
        folds.append(_fold(f, y_true, y_pred, start=12 * (f - 1)))
    report = EvaluationReport("tiny", LABELS, "softmax", folds)
    written = write_test_outputs(report, tmp_path, figures=False)
    metrics = json.loads(written["metrics"].read_text())
    per_fold = [recompute_metrics(f.y_true, f.y_pred, 4) for f in folds]
    pooled = recompute_metrics(np.concatenate([f.y_true for f in folds]), np.concatenate([f.y_pred for f in folds]), 4)
    assert metrics["macro_F1"] == pytest.approx(np.mean([m["macro_F1"] for m in per_fold]))
    assert metrics["macro_F1_std"] == pytest.approx(np.std([m["macro_F1"] for m in per_fold]))
    assert metrics["pooled_macro_F1"] == pytest.approx(pooled["macro_F1"])
    assert list(metrics["per_class_F1"]) == list(LABELS)
    assert list(metrics["per_class_F1"].values()) == pytest.approx(pooled["per_class_F1"])
    for entry, ref in zip(metrics["folds"], per_fold):
        assert entry["macro_F1"] == pytest.approx(ref["macro_F1"])
        assert list(entry["per_class_F1"].values()) == pytest.approx(ref["per_class_F1"])

    summary = written["summary"].read_text()
    assert f"**macro-F1** {metrics['macro_F1']:.4f} ± {metrics['macro_F1_std']:.4f}" in summary
    assert "| fold | WAR | UAR | macro-F1 | n |" in summary
    assert f"| fold 1 | {per_fold[0]['WAR']:.4f} | {per_fold[0]['UAR']:.4f} | {per_fold[0]['macro_F1']:.4f} |" in summary
    assert f"| angry | {pooled['per_class_recall'][0]:.4f} | {pooled['per_class_F1'][0]:.4f} |" in summary

    wb = openpyxl.load_workbook(written["workbook"], read_only=True)
    rows = list(wb["summary"].values)
    wb.close()
    assert rows[0][:4] == ("fold", "WAR", "UAR", "macro_F1")
    assert [r[3] for r in rows[1:]] == pytest.approx([*(m["macro_F1"] for m in per_fold),
                                                      np.mean([m["macro_F1"] for m in per_fold])])

    report.print()
    out = capsys.readouterr().out
    assert f"macro-F1 {per_fold[1]['macro_F1']:.4f}" in out
    assert f"macro-F1 {metrics['macro_F1']:.4f} ± {metrics['macro_F1_std']:.4f}" in out
    assert "per-class F1: angry " + f"{pooled['per_class_F1'][0]:.3f}" in out


def test_single_model_report_has_f1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    y_true, y_pred = np.array([0, 1, 2, 3, 0, 1]), np.array([0, 1, 2, 0, 0, 2])
    report = EvaluationReport("tiny", LABELS, "softmax", [_fold(1, y_true, y_pred)])
    s = report.summary()
    assert s["macro_F1"] == pytest.approx(recompute_metrics(y_true, y_pred, 4)["macro_F1"])
    assert "macro_F1_std" not in s and "folds" not in s
    report.print()
    assert f"macro-F1 {s['macro_F1']:.4f}  (n=6)" in capsys.readouterr().out

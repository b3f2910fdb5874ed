"""Evaluation reports: WAR/UAR, confusion matrices, and the files a test run writes
(``metrics.json``, ``predictions.npz``, ``predictions.csv``, the original's Excel workbook,
``summary.md``)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import classification_report, confusion_matrix, recall_score

from timnet import timings
from timnet.features.files import atomic_path
from timnet.jsonable import json_default


@dataclass
class FoldResult:
    """Predictions of one evaluated model on its test utterances."""

    fold: int
    name: str
    index: np.ndarray  # positions in the feature file
    y_true: np.ndarray
    y_pred: np.ndarray
    scores: np.ndarray  # class probabilities (softmax) or cosine similarities to centroids (npair)
    weights: str = ""
    embeddings: np.ndarray | None = None  # L2-normalised embeddings (npair head)
    fused: np.ndarray | None = None  # the fused 39-d features (for t-SNE)
    files: np.ndarray | None = None  # the utterances' audio paths, when the feature file has them
    speakers: np.ndarray | None = None  # their speakers, when the feature file has them
    seconds: float | None = None  # wall time of the fold (training and evaluation, or evaluation alone)

    def metrics(self, n_classes: int) -> dict[str, Any]:
        return classification_metrics(self.y_true, self.y_pred, n_classes)


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, Any]:
    """WAR (accuracy), UAR (mean recall over the classes present), macro-F1 (mean F1 over
    the same classes: EmoBox ranks by it), per-class recall and F1, confusion matrix.

    A class with no true utterance has no recall and no F1 (NaN): it is left out of the
    means, while predictions of it still lower the recall and F1 of the true classes."""
    labels = np.arange(n_classes)
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    support = cm.sum(axis=1)
    tp = np.diag(cm)
    recall = np.where(support > 0, tp / np.maximum(support, 1), np.nan)
    # F1 = 2 tp / (2 tp + fp + fn) = 2 tp / (support + predicted)
    predicted = cm.sum(axis=0)
    f1 = np.where(support > 0, 2 * tp / np.maximum(support + predicted, 1), np.nan)
    uar = float(recall_score(y_true, y_pred, labels=np.unique(y_true), average="macro", zero_division=0))
    return {
        "WAR": float(np.mean(y_true == y_pred)),
        "UAR": uar,
        "macro_F1": float(np.nanmean(f1)) if np.isfinite(f1).any() else float("nan"),
        "per_class_recall": recall,
        "per_class_F1": f1,
        "confusion_matrix": cm,
        "n": int(len(y_true)),
    }


@dataclass
class EvaluationReport:
    """All folds of one evaluation, and where its files go."""

    data: str
    class_labels: tuple[str, ...]
    head: str
    folds: list[FoldResult]
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)  # see timnet.evaluation.provenance
    # The confusion matrix's rows: the model's classes the evaluated data has (None: every
    # class). On a feature file with other classes, the model's other classes are
    # predicted-only columns (timnet.features.classes.ClassMapping.shared).
    true_classes: tuple[int, ...] | None = None
    kind: str = "test"  # what the protocol calls the report (the workbook's <kind>: 10fold, holdout, loso, ...)

    @property
    def n_classes(self) -> int:
        return len(self.class_labels)

    @property
    def rows(self) -> list[int]:
        """Class indices of the confusion matrix's rows (and of the per-class figures)."""
        return list(range(self.n_classes)) if self.true_classes is None else sorted(self.true_classes)

    @property
    def predicted_only(self) -> list[str]:
        rows = set(self.rows)
        return [c for i, c in enumerate(self.class_labels) if i not in rows]

    def fold_metrics(self) -> list[dict[str, Any]]:
        return [f.metrics(self.n_classes) for f in self.folds]

    def summary(self) -> dict[str, Any]:
        per_fold = self.fold_metrics()
        y_true = np.concatenate([f.y_true for f in self.folds])
        y_pred = np.concatenate([f.y_pred for f in self.folds])
        pooled = classification_metrics(y_true, y_pred, self.n_classes)
        rows = self.rows
        labels = [self.class_labels[i] for i in rows]
        out: dict[str, Any] = {
            "data": self.data,
            "head": self.head,
            "class_labels": list(self.class_labels),
            "WAR": float(np.mean([m["WAR"] for m in per_fold])),
            "UAR": float(np.mean([m["UAR"] for m in per_fold])),
            "macro_F1": mean_of([m["macro_F1"] for m in per_fold]),
            "per_class_recall": {c: _nan_to_none(r) for c, r in zip(labels, pooled["per_class_recall"][rows])},
            "per_class_F1": {c: _nan_to_none(r) for c, r in zip(labels, pooled["per_class_F1"][rows])},
            "confusion_matrix": pooled["confusion_matrix"][rows].tolist(),
            "n": pooled["n"],
        }
        if self.predicted_only:  # rows: the data's classes; columns: every class of the model
            out["confusion_rows"] = labels
            out["predicted_only_classes"] = self.predicted_only
        if len(self.folds) > 1:
            out["pooled_WAR"] = pooled["WAR"]
            out["pooled_UAR"] = pooled["UAR"]
            out["pooled_macro_F1"] = _nan_to_none(pooled["macro_F1"])
            out["WAR_std"] = float(np.std([m["WAR"] for m in per_fold]))
            out["UAR_std"] = float(np.std([m["UAR"] for m in per_fold]))
            out["macro_F1_std"] = std_of([m["macro_F1"] for m in per_fold])
            out["folds"] = [
                {
                    "fold": f.fold,
                    "name": f.name,
                    "weights": f.weights,
                    "WAR": m["WAR"],
                    "UAR": m["UAR"],
                    "macro_F1": _nan_to_none(m["macro_F1"]),
                    "n": m["n"],
                    "per_class_recall": {c: _nan_to_none(r) for c, r in zip(labels, m["per_class_recall"][rows])},
                    "per_class_F1": {c: _nan_to_none(r) for c, r in zip(labels, m["per_class_F1"][rows])},
                    "confusion_matrix": m["confusion_matrix"][rows].tolist(),
                }
                for f, m in zip(self.folds, per_fold)
            ]
        elif self.folds:
            out["weights"] = self.folds[0].weights
        out["settings"] = self.settings
        out["notes"] = self.notes
        if self.provenance:
            out["provenance"] = self.provenance
        return out

    def print(self) -> None:
        """The on-screen report: per-fold figures, means, recalls, confusion, sklearn report."""
        s = self.summary()
        labels = list(self.class_labels)
        rows = self.rows
        if len(self.folds) > 1:
            for f in s["folds"]:
                print(f"{f['name']:>14}: WAR {f['WAR']:.4f}  UAR {f['UAR']:.4f}  macro-F1 {fmt(f['macro_F1'])}  "
                      f"(n={f['n']})")
            print(f"{'mean':>14}: WAR {s['WAR']:.4f} ± {s['WAR_std']:.4f}  UAR {s['UAR']:.4f} ± {s['UAR_std']:.4f}  "
                  f"macro-F1 {fmt(s['macro_F1'])} ± {fmt(s['macro_F1_std'])}")
        else:
            print(f"WAR {s['WAR']:.4f}  UAR {s['UAR']:.4f}  macro-F1 {fmt(s['macro_F1'])}  (n={s['n']})")
        for what, key in (("recall", "per_class_recall"), ("F1", "per_class_F1")):
            print(f"per-class {what}: " + ", ".join(
                f"{c} {r:.3f}" if r is not None else f"{c} n/a" for c, r in s[key].items()))
        cm = pd.DataFrame(s["confusion_matrix"], index=[labels[i] for i in rows], columns=labels)
        print("confusion matrix (rows: true, columns: predicted"
              + (f"; {', '.join(self.predicted_only)}: predicted only, the data has none" if self.predicted_only
                 else "") + "):")
        print(cm.to_string())
        y_true = np.concatenate([f.y_true for f in self.folds])
        y_pred = np.concatenate([f.y_pred for f in self.folds])
        print(classification_report(y_true, y_pred, labels=rows, target_names=[labels[i] for i in rows],
                                    digits=4, zero_division=0))
        for note in self.notes:
            print(f"note: {note}")

    def predictions(self, n: int | None = None) -> dict[str, np.ndarray]:
        """Arrays for ``predictions.npz`` in the order of the input file."""
        index = np.concatenate([f.index for f in self.folds])
        order = np.argsort(index, kind="stable")
        out = {
            "index": index[order],
            "y_true": np.concatenate([f.y_true for f in self.folds])[order],
            "y_pred": np.concatenate([f.y_pred for f in self.folds])[order],
            "fold": np.concatenate([np.full(len(f.index), f.fold) for f in self.folds])[order],
            "class_labels": np.asarray(self.class_labels),
        }
        if self.head == "softmax":
            out["probs"] = np.concatenate([f.scores for f in self.folds])[order]
        else:
            out["embeddings"] = np.concatenate([f.embeddings for f in self.folds])[order]
            out["scores"] = np.concatenate([f.scores for f in self.folds])[order]
        for key, attr in (("path", "files"), ("speaker", "speakers")):
            if all(getattr(f, attr) is not None for f in self.folds):
                out[key] = np.concatenate([np.asarray(getattr(f, attr), dtype=str) for f in self.folds])[order]
        return out

    def prediction_table(self) -> pd.DataFrame:
        """One row per evaluated utterance, in input order: where it is in the feature file,
        its fold, path and speaker (when the file has them), true and predicted class, and
        the score of every class (``score_<class>``: the probability for a softmax model,
        the cosine similarity to the class centroid for an embedding model)."""
        pred = self.predictions()
        labels = np.asarray(self.class_labels)
        scores = pred["probs"] if "probs" in pred else pred["scores"]
        columns: dict[str, Any] = {"index": pred["index"], "fold": pred["fold"]}
        for key in ("path", "speaker"):
            if key in pred:
                columns[key] = pred[key]
        columns["true_label"] = labels[pred["y_true"]]
        columns["predicted_label"] = labels[pred["y_pred"]]
        columns["correct"] = pred["y_true"] == pred["y_pred"]
        for c, label in enumerate(self.class_labels):
            columns[f"score_{label}"] = scores[:, c]
        return pd.DataFrame(columns)

    def write(self, folder: Path, excel_name: str | None = None) -> dict[str, Path]:
        """Write metrics.json, predictions.npz and the Excel workbook into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = {"metrics": folder / "metrics.json", "predictions": folder / "predictions.npz",
                 "predictions_csv": folder / "predictions.csv"}
        with atomic_path(paths["metrics"]) as tmp:
            tmp.write_text(json.dumps(self.summary(), indent=2, default=json_default))
        with atomic_path(paths["predictions"]) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **self.predictions())
        with atomic_path(paths["predictions_csv"]) as tmp:
            # 7 significant digits: the float32 scores exactly, without float64 noise.
            self.prediction_table().to_csv(tmp, index=False, float_format="%.7g")
        paths["workbook"] = folder / (excel_name or "results.xlsx")
        with timings.phase("workbook"), atomic_path(paths["workbook"]) as tmp:
            write_workbook(tmp, self)
        return paths


def write_workbook(path: Path, report: EvaluationReport) -> None:
    """The original's workbook: per fold a confusion-matrix and a report sheet, plus a summary."""
    labels = list(report.class_labels)
    true_rows = report.rows
    # Built in memory, then written in one go: a full disk fails that write cleanly (a zip
    # file left open on disk by a failed save complains again when it is collected).
    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        rows = [{"fold": f.name, "WAR": m["WAR"], "UAR": m["UAR"], "macro_F1": m["macro_F1"], "n": m["n"]}
                for f, m in zip(report.folds, report.fold_metrics())]
        summary = pd.DataFrame(rows)
        if len(rows) > 1:
            summary.loc[len(summary)] = {"fold": "mean", "WAR": summary["WAR"].mean(),
                                         "UAR": summary["UAR"].mean(), "macro_F1": summary["macro_F1"].mean(),
                                         "n": summary["n"].sum()}
        summary.to_excel(writer, sheet_name="summary", index=False)
        for f in report.folds:
            cm = confusion_matrix(f.y_true, f.y_pred, labels=np.arange(len(labels)))[true_rows]
            pd.DataFrame(cm, index=[labels[i] for i in true_rows], columns=labels).to_excel(
                writer, sheet_name=f"fold{f.fold}_confusion")
            rep = classification_report(f.y_true, f.y_pred, labels=true_rows,
                                        target_names=[labels[i] for i in true_rows],
                                        output_dict=True, zero_division=0)
            pd.DataFrame(rep).transpose().to_excel(writer, sheet_name=f"fold{f.fold}_report")
    Path(path).write_bytes(buffer.getvalue())


def _nan_to_none(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def _defined(values: list[float | None]) -> list[float]:
    return [v for v in values if v is not None and not np.isnan(v)]


def mean_of(values: list[float | None]) -> float | None:
    """The mean of the defined values (a fold without any true utterance has no F1; a run not yet done has none)."""
    defined = _defined(values)
    return float(np.mean(defined)) if defined else None


def std_of(values: list[float | None]) -> float | None:
    """NumPy's std (ddof 0) of the defined values."""
    defined = _defined(values)
    return float(np.std(defined)) if defined else None


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


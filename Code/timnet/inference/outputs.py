"""What ``predict`` writes and prints: predictions.csv, predictions.json, windows.csv, a table.

Files are written atomically (a reader never sees half a CSV). The writers take the
:class:`~timnet.inference.predictor.Predictor` for the class labels and the
preprocessing that the JSON records, so a result file says how it was made.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from timnet.features.files import atomic_path
from timnet.inference.predictor import PredictionRow, Predictor

TABLE_ROWS = 50


def _scores_dict(labels: Sequence[str], scores: np.ndarray | None) -> dict[str, float] | None:
    return None if scores is None else {c: float(v) for c, v in zip(labels, scores)}


def rows_to_json(rows: Sequence[PredictionRow], predictor: Predictor, window_hop: float | None) -> dict[str, Any]:
    """The predictions.json document: the model, its preprocessing and every file's scores."""
    files = []
    for r in rows:
        item: dict[str, Any] = {"file": r.file, "status": r.status, "detail": r.detail,
                                "predicted": r.predicted or None,
                                "scores": _scores_dict(predictor.class_labels, r.scores)}
        if window_hop is not None:
            item["windows"] = [{"start_s": round(w.start_s, 4), "end_s": round(w.end_s, 4), "status": w.status,
                                "predicted": w.predicted or None,
                                "scores": _scores_dict(predictor.class_labels, w.scores)} for w in r.windows]
        files.append(item)
    return {
        "model": predictor.source,
        "head": predictor.head,
        "score": predictor.score_kind,
        "class_labels": list(predictor.class_labels),
        "preprocessing": {"sample_rate": predictor.sample_rate, "mean_signal_length": predictor.mean_signal_length,
                          "n_mfcc": predictor.n_mfcc, "frames": predictor.frames,
                          "window": "centred" if window_hop is None else f"every {window_hop} s, mean of windows"},
        "window_hop_s": window_hop,
        "scored": sum(r.ok for r in rows),
        "files": files,
    }


def _fmt(v: float) -> str:
    return f"{float(v):.6f}"


def write_outputs(rows: Sequence[PredictionRow], folder: Path, predictor: Predictor,
                  window_hop: float | None) -> dict[str, Path]:
    """predictions.csv (one row per file), predictions.json and, with windows, windows.csv."""
    labels = list(predictor.class_labels)
    written = {"csv": folder / "predictions.csv", "json": folder / "predictions.json"}
    with atomic_path(written["csv"]) as tmp, open(tmp, "w", newline="", encoding="utf8") as f:
        w = csv.writer(f)
        w.writerow(["file", "status", "predicted", *labels, "windows", "detail"])
        for r in rows:
            scores = [_fmt(v) for v in r.scores] if r.scores is not None else [""] * len(labels)
            w.writerow([r.file, r.status, r.predicted, *scores, len(r.windows) or (1 if r.ok else 0), r.detail])
    with atomic_path(written["json"]) as tmp:
        tmp.write_text(json.dumps(rows_to_json(rows, predictor, window_hop), indent=1), encoding="utf8")
    if window_hop is not None:
        written["windows"] = folder / "windows.csv"
        with atomic_path(written["windows"]) as tmp, open(tmp, "w", newline="", encoding="utf8") as f:
            w = csv.writer(f)
            w.writerow(["file", "window", "start_s", "end_s", "status", "predicted", *labels])
            for r in rows:
                for j, win in enumerate(r.windows, start=1):
                    scores = [_fmt(v) for v in win.scores] if win.scores is not None else [""] * len(labels)
                    w.writerow([r.file, j, f"{win.start_s:.4f}", f"{win.end_s:.4f}", win.status, win.predicted,
                                *scores])
    return written


def print_table(rows: Sequence[PredictionRow], labels: Sequence[str], base: Path | None = None,
                limit: int = TABLE_ROWS) -> None:
    """The first ``limit`` rows on the terminal; file names relative to ``base`` (a --wav folder)."""
    def short(name: str) -> str:
        if base is not None:
            try:
                return str(Path(name).relative_to(base))
            except ValueError:
                pass
        return name

    shown = rows[:limit]
    width = max([len("file"), *(len(short(r.file)) for r in shown)])
    status_w = max([len("status"), *(len(r.status) for r in shown)])
    pred_w = max([len("predicted"), *(len(r.predicted) for r in shown)])
    col_w = [max(6, len(c)) for c in labels]
    print(f"{'file':<{width}}  {'status':<{status_w}}  {'predicted':<{pred_w}}  "
          + "  ".join(f"{c:>{cw}}" for c, cw in zip(labels, col_w)))
    for r in shown:
        line = f"{short(r.file):<{width}}  {r.status:<{status_w}}  {r.predicted:<{pred_w}}  "
        if r.scores is not None:
            line += "  ".join(f"{v:>{cw}.3f}" for v, cw in zip(r.scores, col_w))
        else:
            line += r.detail
        print(line.rstrip())
    if len(rows) > limit:
        print(f"... {len(rows) - limit} more rows in the CSV")

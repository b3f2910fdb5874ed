"""Files a run leaves in its result folder: reports, figures and a one-page summary."""

from __future__ import annotations

import json
import shlex
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from timnet import timings
from timnet.evaluation.reports import EvaluationReport
from timnet.features.files import atomic_path

TSNE_MAX_POINTS = 2000


def write_train_outputs(outcome: Any, figures: bool = True) -> dict[str, Path]:
    """``history.json`` and ``curves.png`` (one panel row per fold) of a training run."""
    folder: Path = outcome.result_dir
    folder.mkdir(parents=True, exist_ok=True)
    written = {"history": folder / "history.json"}
    with timings.phase("history.json"), atomic_path(written["history"]) as tmp:
        tmp.write_text(json.dumps(outcome.histories, indent=1))
    if figures and any(outcome.histories):
        with timings.phase("curves figure"):
            from timnet.evaluation.figures import plot_curves

            titles = [f.name for f in outcome.report.folds]
            titles += [f"fold {i + 1}" for i in range(len(titles), len(outcome.histories))]
            written["curves"] = plot_curves(outcome.histories, folder / "curves.png", titles=titles)
    return written


def write_test_outputs(report: EvaluationReport, folder: Path, excel_name: str | None = None,
                       figures: bool = True, already: dict[str, Path] | None = None) -> dict[str, Path]:
    """metrics.json, predictions.npz, the workbook, confusion_matrix.png, tsne.png, summary.md.
    ``already``: files written before (training's history.json, curves.png) for summary.md's links.
    The t-SNE embedding (the slow part) is computed in a background thread meanwhile."""
    tsne = _start_tsne(report) if figures else None
    with timings.phase("reports (metrics, predictions, workbook)"):
        written = {**(already or {}), **report.write(folder, excel_name)}
    if figures:
        with timings.phase("confusion matrix figure"):
            from timnet.evaluation.figures import plot_confusion_matrix, plot_tsne

            summary = report.summary()
            title = report.data  # the figure adds WA, UAR and the count itself
            written["confusion_matrix"] = plot_confusion_matrix(
                np.asarray(summary["confusion_matrix"]), list(report.class_labels), folder / "confusion_matrix.png",
                title=title, row_labels=summary.get("confusion_rows"))
        if tsne is not None:
            points, labels, title, embedding = tsne
            with timings.phase("t-SNE figure (waiting and drawing)"):
                written["tsne"] = plot_tsne(points, labels, list(report.class_labels), folder / "tsne.png",
                                            title=title, embedding=embedding.result())
    with timings.phase("summary.md"):
        written["summary"] = write_summary(report, folder, written)
    return written


def _start_tsne(report: EvaluationReport) -> tuple[np.ndarray, np.ndarray, str, Future] | None:
    """The t-SNE figure's points, labels and title, and its embedding being computed in a
    background thread (None: too few points for a t-SNE)."""
    fused = [f.fused for f in report.folds if f.fused is not None]
    if not fused or sum(len(f) for f in fused) < 4:
        return None
    points = np.concatenate(fused)
    labels = np.concatenate([f.y_true for f in report.folds if f.fused is not None])
    title = f"{report.data}: fused features (t-SNE)"
    if len(points) > TSNE_MAX_POINTS:  # t-SNE is quadratic-ish: a stratified-enough random sample
        keep = np.sort(np.random.default_rng(0).permutation(len(points))[:TSNE_MAX_POINTS])
        points, labels = points[keep], labels[keep]
        title += f", {TSNE_MAX_POINTS} random utterances"
    from timnet.evaluation.figures import tsne_embedding

    def embed() -> np.ndarray:
        with timings.phase("t-SNE embedding (background)"):
            return tsne_embedding(points)

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="timnet-tsne")
    future = pool.submit(embed)
    pool.shutdown(wait=False)  # the thread ends with its one job
    return points, labels, title, future


def write_summary(report: EvaluationReport, folder: Path, written: dict[str, Path]) -> Path:
    """A one-page ``summary.md``: settings, WAR/UAR/macro-F1 (mean and per fold), links to figures."""
    s = report.summary()
    lines = [f"# TIM-Net run: {report.data}", ""]
    lines += [f"- **WAR** {s['WAR']:.4f}" + (f" ± {s['WAR_std']:.4f}" if "WAR_std" in s else ""),
              f"- **UAR** {s['UAR']:.4f}" + (f" ± {s['UAR_std']:.4f}" if "UAR_std" in s else ""),
              f"- **macro-F1** {_fmt(s['macro_F1'])}" + (f" ± {_fmt(s['macro_F1_std'])}" if "macro_F1_std" in s else ""),
              f"- utterances evaluated: {s['n']}; head: {report.head}; classes: {', '.join(report.class_labels)}",
              ""]
    if "folds" in s:
        lines += ["| fold | WAR | UAR | macro-F1 | n |", "|---|---|---|---|---|"]
        lines += [f"| {f['name']} | {f['WAR']:.4f} | {f['UAR']:.4f} | {_fmt(f['macro_F1'])} | {f['n']} |"
                  for f in s["folds"]]
        lines.append("")
    lines += ["## Per-class recall and F1", "", "| class | recall | F1 |", "|---|---|---|"]
    lines += [f"| {c} | {_fmt(r)} | {_fmt(s['per_class_F1'][c])} |" for c, r in s["per_class_recall"].items()]
    lines.append("")
    figures = [(k, written[k]) for k in ("curves", "confusion_matrix", "tsne") if k in written]
    if figures:
        lines += ["## Figures", ""]
        lines += [f"![{k}]({p.name})" for k, p in figures]
        lines.append("")
    lines += ["## Files", ""]
    lines += [f"- [{p.name}]({p.name})" for k, p in written.items() if k not in dict(figures)]
    lines.append("")
    if report.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in report.notes] + [""]
    lines += _provenance_lines(report.provenance)
    lines += ["## Settings", "", "| setting | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in report.settings.items()]
    path = folder / "summary.md"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return path


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _provenance_lines(prov: dict[str, Any]) -> list[str]:
    """The few provenance facts worth a glance (metrics.json has them all)."""
    if not prov:
        return []
    lines = ["## Provenance", ""]
    if "command_line" in prov:
        lines.append(f"- command: `{shlex.join(prov['command_line'])}`")
    git = prov.get("git")
    if git:
        lines.append(f"- code: timnet {prov.get('timnet_version', '?')}, commit {git['commit'][:12]}"
                     + (" (with uncommitted changes)" if git.get("dirty") else ""))
    if "versions" in prov:
        lines.append("- " + ", ".join(f"{k} {v}" for k, v in prov["versions"].items()))
    feature = prov.get("feature_file")
    if feature:
        lines.append(f"- features: {feature['path']} ({feature['bytes']} bytes, sha256 {feature['sha256'][:16]}…)")
    times = [t["seconds"] for t in prov.get("fold_seconds", []) if t.get("seconds") is not None]
    if times:
        lines.append(f"- wall time per fold: {', '.join(f'{t:.1f} s' for t in times)}")
    return lines + [""]

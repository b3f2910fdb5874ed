"""A series of runs: the same protocol for several seeds (``--seeds``), or every ordered
pair of corpora for each seed (``timnet cross-corpus``), one run after another.

Each entry trains in its own subfolder (``<model_path>/<series>/<entry>/<run>``, the same
under ``result_path`` and ``log_dir``), so resuming a series is simple: an entry whose run
is complete is read back from its ``metrics.json``; a started but incomplete one resumes
(``run_training`` with ``resume=<its run folder>``); one not started starts. The series
folder under ``model_path`` keeps ``series.json`` (the plan: every entry's settings,
written atomically), which ``--resume <series folder>`` reads.

The summary goes to ``<result_path>/<series>/``: ``metrics.json`` (every entry's WAR, UAR
and macro-F1; per seed; mean ± std over seeds; for cross-corpus per pair and the mean over
pairs), ``summary.md``, and for cross-corpus ``uar_matrix.png`` (rows: training corpus,
columns: test corpus); TensorBoard scalars go to ``<log_dir>/<series>/summary``. The std
is NumPy's (ddof 0), as the std over folds of a run.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from timnet import paths
from timnet.config import TrainingConfig, corpus_name, make_config
from timnet.errors import Interrupted, UserError, WriteError
from timnet.features.files import atomic_path
from timnet.training.run import Run, absolute_data_list, run_training

SERIES_FILE = "series.json"
FORMAT_VERSION = 1
METRICS = ("WAR", "UAR", "macro_F1")
KINDS = ("seeds", "cross-corpus")
HEATMAP = "uar_matrix.png"


@dataclass
class Entry:
    """One run of a series: its name (its subfolder), settings, seed, and corpus pair."""

    name: str
    config: TrainingConfig
    seed: int
    train: str | None = None
    test: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "seed": self.seed, "train": self.train, "test": self.test,
                "settings": self.config.as_dict()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Entry:
        from timnet.training import resume

        return cls(values["name"], resume.config_from_settings(values["settings"]), int(values["seed"]),
                   values.get("train"), values.get("test"))

    def status(self) -> tuple[str, Path | None]:
        """("complete", run), ("incomplete", run) or ("new", None), from the entry's folders."""
        from timnet.training import resume

        folder = self.config.model_path
        runs = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
        incomplete = [p for p in runs if resume.is_incomplete(p)]
        if incomplete:
            return "incomplete", incomplete[-1]
        for run in runs:
            if (self.config.result_path / run.name / "metrics.json").is_file():
                return "complete", run
        for run in runs:  # a run killed before its first epoch ended saved nothing: start again
            paths.remove_empty([run, self.config.result_path / run.name, self.config.log_dir / run.name])
        return "new", None


@dataclass
class Series:
    """A planned or resumed series (see the module)."""

    name: str
    kind: str
    model_dir: Path
    result_dir: Path
    log_dir: Path
    entries: list[Entry]
    seeds: list[int]
    corpora: list[str] = field(default_factory=list)

    @property
    def resume_command(self) -> str:
        command = "cross-corpus" if self.kind == "cross-corpus" else "train"
        return f"timnet {command} --resume {self.model_dir}"

    def save(self) -> None:
        record = {"format_version": FORMAT_VERSION, "name": self.name, "kind": self.kind, "seeds": self.seeds,
                  "corpora": self.corpora, "result_dir": str(self.result_dir), "log_dir": str(self.log_dir),
                  "resume_command": self.resume_command, "entries": [e.to_dict() for e in self.entries]}
        with atomic_path(self.model_dir / SERIES_FILE) as tmp:
            tmp.write_text(json.dumps(record, indent=1))

    @classmethod
    def load(cls, folder: Path) -> Series:
        path = folder / SERIES_FILE
        try:
            record = json.loads(path.read_text())
            if record.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"format {record.get('format_version')} is not {FORMAT_VERSION}")
            entries = [Entry.from_dict(e) for e in record["entries"]]
            return cls(record["name"], record["kind"], folder, Path(record["result_dir"]), Path(record["log_dir"]),
                       entries, [int(s) for s in record["seeds"]], list(record.get("corpora") or []))
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever a damaged file raises
            raise UserError(f"{path}: the series plan is damaged ({exc}); start the series again") from None


def is_series(spec: str | None, model_path: Path) -> Path | None:
    """``--resume``'s folder when it is a series folder (holds series.json), else None."""
    if not spec or spec == "last":
        return None
    given = Path(spec).expanduser()
    for candidate in ([given.absolute()] if given.is_absolute() else [given.absolute(), model_path / given]):
        if (candidate / SERIES_FILE).is_file():
            return candidate
    return None


def _create(name: str, config: TrainingConfig) -> tuple[Path, Path, Path]:
    model_path, result_path, log_dir = (paths.resolve(p) for p in (config.model_path, config.result_path,
                                                                      config.log_dir))
    for path, flag in ((model_path, "--model_path"), (result_path, "--result_path"), (log_dir, "--log_dir")):
        paths.check_writable(path, flag)
    made = paths.create_exclusive([model_path / name, result_path / name, log_dir / name])
    return made[0], made[1], made[2]


def _entry_config(config: TrainingConfig, series: tuple[Path, Path, Path], name: str) -> TrainingConfig:
    model_dir, result_dir, log_dir = series
    return config.replace(model_path=model_dir / name, result_path=result_dir / name, log_dir=log_dir / name)


def _absolute(config: TrainingConfig) -> TrainingConfig:
    """``.npy`` paths absolute: a series resumed from another folder finds its data."""
    changes: dict[str, Any] = {"data": absolute_data_list(config.data)}
    if config.test_data:
        changes["test_data"] = absolute_data_list(config.test_data)
    return config.replace(**changes)


def plan_seeds(config: TrainingConfig) -> Series:
    """``config``'s run once per seed of ``config.seeds`` (folders created, plan saved)."""
    seeds = list(config.seed_list)
    Run(config.replace(seeds=None, random_seed=seeds[0])).setup()  # every user error before a folder is made
    base = config.data_name + ("_to_" + "+".join(map(corpus_name, config.test_corpora)) if config.test_data else "")
    folders = _create(f"{base}_seeds_{paths.timestamp()}", config)
    config = _absolute(config).replace(seeds=None)
    entries = [Entry(f"seed_{s}", _entry_config(config.replace(random_seed=s), folders, f"seed_{s}"), s,
                     config.data_name if config.test_data else None,
                     ",".join(map(corpus_name, config.test_corpora)) or None) for s in seeds]
    series = Series(folders[0].name, "seeds", *folders, entries, seeds)
    series.save()
    return series


def plan_cross_corpus(corpora: list[str], given: dict[str, Any]) -> Series:
    """Every ordered pair (train A, test B) of ``corpora`` for each seed of ``given["seeds"]``
    (else ``random_seed``), each with the settings ``given`` (flag names), seeds outermost."""
    from timnet.features.cross_corpus import check_corpora, check_corpus_names

    check_corpus_names(corpora)
    names = [corpus_name(c) for c in corpora]
    common = {k: v for k, v in given.items() if k not in ("seeds", "data", "test_data", "protocol")}
    first = make_config({**common, "data": corpora[0], "test_data": corpora[1], "protocol": "cross-corpus",
                         **({"seeds": given["seeds"]} if given.get("seeds") else {})})
    seeds = list(first.seed_list) or [first.random_seed]
    check_corpora(corpora, first.classes)
    folders = _create(f"cross-corpus_{'-'.join(names)}_{paths.timestamp()}", first)
    entries = []
    for seed in seeds:
        for a, name_a in zip(corpora, names):
            for b, name_b in zip(corpora, names):
                if a == b:
                    continue
                config = make_config({**common, "data": a, "test_data": b, "protocol": "cross-corpus",
                                      "random_seed": seed})
                entry = f"{name_a}_to_{name_b}_seed_{seed}"
                entries.append(Entry(entry, _entry_config(_absolute(config), folders, entry), seed, name_a, name_b))
    series = Series(folders[0].name, "cross-corpus", *folders, entries, seeds, names)
    series.save()
    return series


@dataclass
class SeriesOutcome:
    """A finished (or interrupted) series: every entry's metrics so far, and its summary."""

    series: Series
    results: dict[str, dict[str, Any]]  # entry name -> {"WAR", "UAR", "macro_F1", "run", ...}
    metrics: dict[str, Any] = field(default_factory=dict)
    written: dict[str, Path] = field(default_factory=dict)
    interrupted: bool = False
    resume_command: str | None = None

    def print(self) -> None:
        print(summary_text(self.series, self.metrics))


def _entry_metrics(entry: Entry, run: Path) -> dict[str, Any]:
    record = json.loads((entry.config.result_path / run.name / "metrics.json").read_text())
    return {"seed": entry.seed, "train": entry.train, "test": entry.test, "run": str(run),
            **{m: record.get(m) for m in METRICS}, "class_labels": record.get("class_labels"),
            "n": record.get("n")}


def run_series(series: Series, gpu: str | None = None, figures: bool = True, verbose: int | str = "auto",
               quiet_devices: bool = False) -> SeriesOutcome:
    """Run (or resume) every entry in order, then write the series summary. A run stopped
    by Ctrl-C/SIGTERM stops the series; the command that continues it is printed."""
    command = series.resume_command
    print(f"Series {series.model_dir}: {len(series.entries)} runs (seeds {', '.join(map(str, series.seeds))}); "
          f"if it stops, continue it with: {command}")
    results: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(series.entries, start=1):
        status, run = entry.status()
        if status == "complete":
            assert run is not None
            results[entry.name] = _entry_metrics(entry, run)
            print(f"[{i}/{len(series.entries)}] {entry.name}: complete ({run})")
            continue
        config = entry.config if gpu is None else entry.config.replace(gpu=gpu)
        if status == "incomplete":
            config = config.replace(resume=str(run))
        print(f"\n[{i}/{len(series.entries)}] {entry.name}: " + ("resuming " + str(run) if run else "starting"))
        try:
            outcome = run_training(config, given={"gpu": config.gpu} if run else None, figures=figures,
                                   verbose=verbose, quiet_devices=quiet_devices or i > 1)
        except WriteError as exc:
            raise exc.then(f"continue the series with: {command}") from None
        except KeyboardInterrupt:
            raise Interrupted(f"the series {series.model_dir} stopped during {entry.name}; continue it with: "
                              f"{command}") from None
        from timnet.evaluation.reports import fmt  # loaded by the training already

        summary = outcome.report.summary()
        print(f"{entry.name}: WAR {summary['WAR']:.4f}  UAR {summary['UAR']:.4f}  macro-F1 "
              f"{fmt(summary.get('macro_F1'))}" + (" (interrupted)" if outcome.resume_command else ""))
        for note in outcome.report.notes:  # the run's own --resume: the series' command is printed instead
            if not note.startswith("continue this run with"):
                print(f"note: {note}")
        if outcome.resume_command is None:
            results[entry.name] = _entry_metrics(entry, outcome.model_dir)
        if outcome.interrupted or outcome.resume_command:
            metrics = series_metrics(series, results)
            print(f"\nThe series is incomplete ({len(results)} of {len(series.entries)} runs complete); "
                  f"continue it with:\n  {command}")
            return SeriesOutcome(series, results, metrics, interrupted=True, resume_command=command)
    metrics = series_metrics(series, results)
    written = write_series_outputs(series, metrics, figures=figures)
    return SeriesOutcome(series, results, metrics, written)


def _mean_std(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """{"WAR": mean, "WAR_std": std, ...} over ``rows``."""
    from timnet.evaluation.reports import mean_of, std_of  # pandas and scikit-learn: not for a flag error

    out: dict[str, Any] = {}
    for m in METRICS:
        values = [r.get(m) for r in rows]
        out[m], out[f"{m}_std"] = mean_of(values), std_of(values)
    out["n_seeds"] = len(rows)
    return out


def series_metrics(series: Series, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The series' metrics.json (see the module): entries, per seed, mean ± std over seeds."""
    from timnet.evaluation.reports import mean_of

    entries = [{"name": e.name, **results[e.name]} for e in series.entries if e.name in results]
    out: dict[str, Any] = {"series": series.name, "kind": series.kind, "seeds": series.seeds,
                           "complete": len(entries) == len(series.entries), "entries": entries,
                           "std": "numpy std over seeds (ddof 0)"}
    if series.kind == "seeds":
        out["per_seed"] = {str(r["seed"]): {m: r[m] for m in METRICS} for r in entries}
        out["mean"] = _mean_std(entries)
        return out
    out["corpora"] = series.corpora
    pairs = []
    for a in series.corpora:
        for b in series.corpora:
            if a == b:
                continue
            rows = [r for r in entries if r["train"] == a and r["test"] == b]
            pairs.append({"train": a, "test": b, **_mean_std(rows),
                          "per_seed": {str(r["seed"]): {m: r[m] for m in METRICS} for r in rows},
                          "class_labels": rows[0]["class_labels"] if rows else None})
    out["pairs"] = pairs
    # The paper's "average over pairs ± std": the mean over pairs of each seed, then mean ± std over seeds.
    per_seed = []
    n_pairs = len(pairs)
    for seed in series.seeds:
        rows = [r for r in entries if r["seed"] == seed]
        if len(rows) == n_pairs:
            per_seed.append({"seed": seed, **{m: mean_of([r[m] for r in rows]) for m in METRICS}})
    out["mean_over_pairs"] = {**_mean_std(per_seed), "per_seed": {str(r["seed"]): {m: r[m] for m in METRICS}
                                                                  for r in per_seed}}
    return out


def _pm(row: dict[str, Any], metric: str) -> str:
    if row.get(metric) is None:
        return "n/a"
    return f"{row[metric]:.4f} ± {row[f'{metric}_std']:.4f}"


def summary_text(series: Series, metrics: dict[str, Any]) -> str:
    """The series' report as Markdown (summary.md, and what the command line prints)."""
    from timnet.evaluation.reports import fmt

    lines = [f"# TIM-Net series: {series.name}", ""]
    if series.kind == "seeds":
        lines += ["| seed | WAR | UAR | macro-F1 |", "|---|---|---|---|"]
        for r in metrics["entries"]:
            lines.append(f"| {r['seed']} | {fmt(r['WAR'])} | {fmt(r['UAR'])} | {fmt(r['macro_F1'])} |")
        mean = metrics["mean"]
        lines.append(f"| **mean ± std** | {_pm(mean, 'WAR')} | {_pm(mean, 'UAR')} | {_pm(mean, 'macro_F1')} |")
    else:
        names = series.corpora
        lines += ["UAR, mean ± std over seeds (rows: training corpus, columns: test corpus):", "",
                  "| train \\ test | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        by_pair = {(p["train"], p["test"]): p for p in metrics["pairs"]}
        for a in names:
            cells = ["—" if a == b else _pm(by_pair[(a, b)], "UAR") for b in names]
            lines.append(f"| {a} | " + " | ".join(cells) + " |")
        lines += ["", "| pair | classes | WAR | UAR | macro-F1 | seeds |", "|---|---|---|---|---|---|"]
        for p in metrics["pairs"]:
            classes = ", ".join(p["class_labels"] or [])
            lines.append(f"| {p['train']} → {p['test']} | {classes} | {_pm(p, 'WAR')} | {_pm(p, 'UAR')} | "
                         f"{_pm(p, 'macro_F1')} | {p['n_seeds']} |")
        m = metrics["mean_over_pairs"]
        lines.append(f"| **mean over pairs** | | {_pm(m, 'WAR')} | {_pm(m, 'UAR')} | {_pm(m, 'macro_F1')} | "
                     f"{m['n_seeds']} |")
        lines += ["", "The mean over pairs is taken per seed, then its mean ± std over seeds. Checkpoints are the "
                  "last epoch: never chosen on the test corpus."]
    lines += ["", f"Seeds: {', '.join(map(str, series.seeds))}; std: NumPy's (ddof 0). Runs: "
              f"{series.model_dir}/<entry>/; resume: `{series.resume_command}`."]
    if not metrics.get("complete", True):
        lines.append(f"Incomplete: {len(metrics['entries'])} of {len(series.entries)} runs.")
    return "\n".join(lines) + "\n"


def write_series_outputs(series: Series, metrics: dict[str, Any], figures: bool = True) -> dict[str, Path]:
    """metrics.json, summary.md, the UAR heatmap (cross-corpus) and TensorBoard scalars."""
    from timnet.jsonable import json_default

    folder = series.result_dir
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {"metrics": folder / "metrics.json", "summary": folder / "summary.md"}
    with atomic_path(written["metrics"]) as tmp:
        tmp.write_text(json.dumps(metrics, indent=1, default=json_default))
    if figures and series.kind == "cross-corpus":
        from timnet.evaluation.figures import plot_matrix

        names = series.corpora
        by_pair = {(p["train"], p["test"]): p for p in metrics["pairs"]}
        values = np.full((len(names), len(names)), np.nan)
        texts = [["" for _ in names] for _ in names]
        for i, a in enumerate(names):
            for j, b in enumerate(names):
                p = by_pair.get((a, b))
                if p and p["UAR"] is not None:
                    values[i, j] = p["UAR"]
                    texts[i][j] = f"{p['UAR']:.3f}\n± {p['UAR_std']:.3f}"
        mean = metrics["mean_over_pairs"]
        title = f"UAR, train → test (mean ± std over {len(series.seeds)} seed(s)); mean over pairs {_pm(mean, 'UAR')}"
        written["heatmap"] = plot_matrix(values, names, names, folder / HEATMAP, title=title, texts=texts,
                                         xlabel="test corpus", ylabel="training corpus")
    with atomic_path(written["summary"]) as tmp:
        text = summary_text(series, metrics)
        if "heatmap" in written:
            text += f"\n![UAR matrix]({HEATMAP})\n"
        tmp.write_text(text)
    written["tensorboard"] = log_series_scalars(series, metrics)
    return written


def log_series_scalars(series: Series, metrics: dict[str, Any]) -> Path:
    """Scalars for TensorBoard in ``<log_dir>/<series>/summary``: every entry's metrics at
    step = seed (``<metric>/<pair>`` for cross-corpus), and the means (step 0). Rewritten
    whole (beside, then renamed) when a resumed series ends."""
    import tensorflow as tf

    target = series.log_dir / "summary"
    series.log_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=series.log_dir, prefix=".summary-") as tmp:
        writer = tf.summary.create_file_writer(tmp)
        with writer.as_default():
            for r in metrics["entries"]:
                tag = "seeds" if series.kind == "seeds" else f"{r['train']}_to_{r['test']}"
                for m in METRICS:
                    if r.get(m) is not None:
                        tf.summary.scalar(f"{m}/{tag}", r[m], step=r["seed"])
            means = [("mean", metrics["mean"])] if series.kind == "seeds" else \
                [(f"{p['train']}_to_{p['test']}_mean", p) for p in metrics["pairs"]] + \
                [("mean_over_pairs", metrics["mean_over_pairs"])]
            for tag, row in means:
                for m in METRICS:
                    if row.get(m) is not None:
                        tf.summary.scalar(f"{m}/{tag}", row[m], step=0)
                        tf.summary.scalar(f"{m}_std/{tag}", row[f"{m}_std"], step=0)
        writer.close()
        shutil.rmtree(target, ignore_errors=True)
        Path(tmp).rename(target)
        Path(tmp).mkdir()  # TemporaryDirectory removes it again
    return target


__all__ = ["Entry", "Series", "SeriesOutcome", "is_series", "plan_cross_corpus", "plan_seeds", "run_series",
           "series_metrics", "summary_text", "write_series_outputs"]

"""The whole paper recipe end to end: this project's command line against the plain reference.

    python benchmarks/bench_protocol.py [--epochs 10] [--folds 10] [--max_folds N] [--utterances 535] [--repeats 1]

Issue 16, item 4. Short protocols (quick checks, LOSO, seeds, sweeps) are dominated by
what every fold pays besides its steady epochs: tracing the first epoch, evaluation,
model files and figures. This times both ways of running the paper's recipe (10-fold
CV, N epochs per fold, batch 64, label smoothing 0.1, Adam 0.001/0.93/0.98) on a
generated EMO-DB-sized feature file (535 utterances, 188 frames x 39 MFCCs, 7 classes;
written with ``timnet.features.files.write_npy_dict`` into a temporary folder):

- ours: ``python Code/main.py --mode train --recipe paper --bidirection --data FILE
  --epoch N ...`` in a subprocess, outputs (weights, .keras files, reports, figures)
  in the temporary folder, as a user runs it;
- reference: ``timnet.network.reference.build_plain_timnet`` (standard Keras layers)
  driven the way the original drove its network, in a subprocess of this script: per
  fold a new model, ``model.fit`` on the smoothed training labels with the fold's test
  part as validation data and a best-``val_accuracy`` ``ModelCheckpoint`` (weights
  only), reload those weights, ``model.evaluate``, ``model.predict``, confusion matrix
  and classification report; the same KFold splits and seed.

Both runs alternate (ours, reference, ours, ...) for ``--repeats`` rounds; the best wall
time of each counts. Prints both wall times (process start to exit), the steady epoch
(median of all epochs after each fold's first), the per-fold fixed cost = (wall -
folds x epochs x steady epoch) / folds, split into the first epoch's extra time (first
epoch minus a steady epoch) and the rest (model build, evaluation, outputs, and the
process start-up shared out over the folds), and the ratio reference / ours.
``--histogram_freq`` (default 0, as the paper's code) adds TensorBoard weight
histograms to both. The machine is shared: compare figures of one run only.

Then where the time goes, for both runs (issue 21): per fold (the mean over the folds)
the training steps, the validation passes, the epoch-end callbacks (weights file,
resume state, TensorBoard), the evaluation and each per-fold output; per run the
process start (launch to the first fold: imports, data, devices), every run-level
output (``.keras`` files, figures, t-SNE, TensorBoard, workbook, reports) and the exit.
Both children record these with :mod:`timnet.timings` (``TIMNET_TIMINGS=<file>``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MAIN = REPO_ROOT / "Code" / "main.py"
EMODB_LABELS = ("angry", "boredom", "disgust", "fear", "happy", "neutral", "sad")
FOLD_MARK = "@@fold"  # a child's line that says one fold began (drives the progress bar)
RESULT_MARK = "@@result "  # the reference child's last line: its per-fold times as JSON


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--epochs", type=int, default=10, help="epochs per fold (at least 2: one to trace, one steady)")
    p.add_argument("--folds", type=int, default=10, help="k of the k-fold protocol (the paper: 10)")
    p.add_argument("--max_folds", type=int, default=None,
                   help="train only the first N folds of the --folds splits (a shorter run; the fixed cost per fold "
                   "then carries more of the process start)")
    p.add_argument("--utterances", type=int, default=535, help="utterances in the generated file (EMO-DB: 535)")
    p.add_argument("--frames", type=int, default=188, help="frames per utterance (EMO-DB at 96000 samples: 188)")
    p.add_argument("--n_mfcc", type=int, default=39)
    p.add_argument("--classes", type=int, default=7, help="classes (at most 7, named as EMO-DB's)")
    p.add_argument("--dilation_size", type=int, default=8, help="temporal-aware blocks per branch (the paper: 8)")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=1, help="alternating rounds of both runs; the best wall time counts")
    p.add_argument("--seed", type=int, default=46, help="random seed (the paper: 46)")
    p.add_argument("--histogram_freq", type=int, default=0,
                   help="TensorBoard weight histograms every N epochs in both runs (0: none, as the paper's code)")
    p.add_argument("--work_dir", default=None, help="keep the generated file and all outputs here (default: a "
                   "temporary folder, deleted at the end)")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    p.add_argument("--reference_worker", default=None, help=argparse.SUPPRESS)  # internal: the reference child
    p.add_argument("--reference_out", default=None, help=argparse.SUPPRESS)
    return p


def check_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.epochs < 2:
        p.error("--epochs must be at least 2 (a first epoch and a steady one)")
    if args.folds < 2:
        p.error("--folds must be at least 2")
    if not 2 <= args.classes <= len(EMODB_LABELS):
        p.error(f"--classes must be between 2 and {len(EMODB_LABELS)}")
    if args.utterances < args.folds * args.classes:
        p.error(f"--utterances must be at least --folds x --classes ({args.folds * args.classes})")
    if args.max_folds is not None and not 1 <= args.max_folds <= args.folds:
        p.error("--max_folds must be between 1 and --folds")
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    for name in ("frames", "n_mfcc", "dilation_size", "batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")


def write_features(path: Path, args: argparse.Namespace) -> Path:
    """An EMO-DB-sized, learnable feature file: each class shifts one MFCC row."""
    import numpy as np

    from timnet.features.files import write_npy_dict

    rng = np.random.default_rng(args.seed)
    labels = np.arange(args.utterances) % args.classes
    rng.shuffle(labels)
    x = rng.normal(0.0, 1.0, (args.utterances, args.frames, args.n_mfcc)).astype(np.float32)
    for c in range(args.classes):
        x[labels == c, :, c % args.n_mfcc] += 0.5
    y = np.eye(args.classes, dtype=np.float32)[labels]
    return write_npy_dict(path, {"x": x, "y": y, "class_labels": np.asarray(EMODB_LABELS[: args.classes])})


@dataclass
class RunTimes:
    """One run's wall time, its per-fold epoch times and where its time went."""

    wall: float
    epochs: list[list[float]] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)  # run total of each phase (fold rows: over all folds)

    @property
    def steady(self) -> float:
        return statistics.median(t for fold in self.epochs for t in fold[1:])

    @property
    def first_extra(self) -> float:
        return statistics.mean(fold[0] for fold in self.epochs) - self.steady

    def fixed_per_fold(self, epochs: int) -> float:
        folds = len(self.epochs)
        return (self.wall - folds * epochs * self.steady) / folds


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("MPLBACKEND", "Agg")
    env["PYTHONUNBUFFERED"] = "1"  # lines as they come, for the progress bar
    return env


def run_child(cmd: list[str], log: Path, bar: object | None) -> tuple[float, list[str], dict[str, float]]:
    """Run ``cmd`` (output to ``log``), advance ``bar`` at each fold; (wall seconds, lines, phases)."""
    lines: list[str] = []
    timing_file = log.with_suffix(".timings.json")
    env = {**child_env(), "TIMNET_TIMINGS": str(timing_file)}
    launched = time.time()
    start = time.perf_counter()
    with open(log, "w") as out, subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                                                 stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            lines.append(line.rstrip("\n"))
            if bar is not None and (line.startswith(FOLD_MARK) or line.startswith("[fold ")):
                bar.update(1)  # type: ignore[attr-defined]
        code = proc.wait()
    wall = time.perf_counter() - start
    ended = launched + wall
    if code != 0:
        tail = "\n".join(lines[-30:])
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {code} (log {log}):\n{tail}")
    return wall, lines, read_phases(timing_file, launched, ended)


def read_phases(path: Path, launched: float, ended: float) -> dict[str, float]:
    """A child's :mod:`timnet.timings` record: each phase's total over the run, plus the
    process start (launch to the first fold) and exit (the end of ``main`` to the process end)."""
    record = json.loads(path.read_text()) if path.is_file() else {"phases": [], "marks": {}}
    phases: dict[str, float] = {}
    for row in record["phases"]:
        phases[row["phase"]] = phases.get(row["phase"], 0.0) + row["seconds"]
    marks = record["marks"]
    if "training begins" in marks:
        phases["process start"] = marks["training begins"] - launched
    if "exit" in marks:
        phases["process exit"] = ended - marks["exit"]
    return phases


# The breakdown: (label, phases summed, phases subtracted), per fold then per run.
FOLD_ROWS: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    ("model build or reset", ("model build or reset",), ()),
    ("training steps", ("training steps",), ()),
    ("validation (fit's pass)", ("validation",), ()),
    ("validation UAR pass", ("validation UAR pass",), ()),
    ("weights file every epoch", ("weights file (every epoch)",), ()),
    ("resume state", ("resume state", "resume state (fold end)"), ()),
    ("other epoch-end callbacks", ("epoch-end callbacks",),
     ("validation UAR pass", "weights file (every epoch)", "resume state")),
    ("fit's own overhead", ("fit",), ("training steps", "validation", "epoch-end callbacks")),
    ("evaluation", ("evaluation",), ()),
    ("weights file (final)", ("weights file (final)",), ()),
]
RUN_ROWS: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    ("process start (imports, data)", ("process start",), ()),
    (".keras files", (".keras files",), ()),
    ("TensorBoard hparams", ("TensorBoard hparams",), ()),
    ("provenance", ("provenance",), ()),
    ("history.json", ("history.json",), ()),
    ("curves figure", ("curves figure",), ()),
    ("metrics, predictions", ("reports (metrics, predictions, workbook)",), ("workbook",)),
    ("workbook", ("workbook",), ()),
    ("confusion matrix figure", ("confusion matrix figure",), ()),
    ("t-SNE figure", ("t-SNE figure", "t-SNE figure (waiting and drawing)"), ()),
    ("summary.md", ("summary.md",), ()),
    ("process exit", ("process exit",), ()),
]
# Written by background threads while the main thread goes on: overlapping the rows above.
BACKGROUND_ROWS: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    ("TensorBoard confusion image", ("TensorBoard confusion image",), ()),
    ("t-SNE embedding", ("t-SNE embedding (background)",), ()),
]


def row_value(phases: dict[str, float], added: tuple[str, ...], subtracted: tuple[str, ...]) -> float | None:
    if not any(name in phases for name in added):
        return None
    return sum(phases.get(n, 0.0) for n in added) - sum(phases.get(n, 0.0) for n in subtracted)


def print_breakdown(best: dict[str, RunTimes]) -> None:
    """Where each run's time went: per fold (mean over folds), then per run; the rest is unaccounted."""
    names = list(best)
    folds = {name: len(t.epochs) for name, t in best.items()}
    print(f"where the time goes, seconds (per fold: mean over {folds[names[0]]} folds; per run: the whole run):")
    print(f"  {'per fold':<32}" + "".join(f"{name:>11}" for name in names))
    accounted = dict.fromkeys(names, 0.0)
    sections = ((FOLD_ROWS, True, ""), (RUN_ROWS, False, "per run"),
                (BACKGROUND_ROWS, False, "in background threads (run totals, overlapping the above)"))
    for rows, per_fold, title in sections:
        if title:
            print(f"  {title}")
        for label, added, subtracted in rows:
            values = {name: row_value(best[name].phases, added, subtracted) for name in names}
            if all(v is None for v in values.values()):
                continue
            cells = ""
            for name in names:
                v = values[name]
                if rows is not BACKGROUND_ROWS:
                    accounted[name] += v or 0.0
                shown = v / folds[name] if per_fold and v is not None else v
                cells += f"{'-':>11}" if shown is None else f"{shown:11.2f}"
            print(f"    {label:<30}{cells}")
    print("  the rest")
    print(f"    {'unaccounted (run)':<30}" + "".join(f"{best[n].wall - accounted[n]:11.2f}" for n in names))
    print(f"    {'wall (run)':<30}" + "".join(f"{best[n].wall:11.2f}" for n in names))


def ours_command(args: argparse.Namespace, data: Path, out: Path) -> list[str]:
    return [sys.executable, str(MAIN), "--mode", "train", "--recipe", "paper", "--bidirection", "--data", str(data),
            "--epoch", str(args.epochs), "--split_fold", str(args.folds), "--random_seed", str(args.seed),
            "--batch_size", str(args.batch_size), "--dilation_size", str(args.dilation_size),
            "--histogram_freq", str(args.histogram_freq), "--model_path", str(out / "models"),
            "--result_path", str(out / "results"), "--log_dir", str(out / "log")] + \
        (["--max_folds", str(args.max_folds)] if args.max_folds else [])


def trained_folds(args: argparse.Namespace) -> int:
    return args.max_folds or args.folds


def run_ours(args: argparse.Namespace, data: Path, out: Path, bar: object | None) -> RunTimes:
    wall, _, phases = run_child(ours_command(args, data, out), out / "ours.log", bar)
    histories = sorted((out / "results").glob("*/history.json"))
    if len(histories) != 1:
        raise RuntimeError(f"expected one history.json under {out / 'results'}, found {len(histories)}")
    folds = json.loads(histories[0].read_text())
    epochs = [[float(t) for t in fold["epoch_time"]] for fold in folds]
    if len(epochs) != trained_folds(args) or any(len(fold) != args.epochs for fold in epochs):
        raise RuntimeError(f"{histories[0]}: expected {trained_folds(args)} folds of {args.epochs} epoch times")
    return RunTimes(wall, epochs, phases)


def reference_command(args: argparse.Namespace, data: Path, out: Path) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--reference_worker", str(data), "--reference_out",
            str(out), "--epochs", str(args.epochs), "--folds", str(args.folds), "--seed", str(args.seed),
            "--batch_size", str(args.batch_size), "--dilation_size", str(args.dilation_size),
            "--histogram_freq", str(args.histogram_freq), "--utterances", str(args.utterances),
            "--classes", str(args.classes)] + (["--max_folds", str(args.max_folds)] if args.max_folds else [])


def run_reference(args: argparse.Namespace, data: Path, out: Path, bar: object | None) -> RunTimes:
    wall, lines, phases = run_child(reference_command(args, data, out), out / "reference.log", bar)
    results = [line[len(RESULT_MARK):] for line in lines if line.startswith(RESULT_MARK)]
    if not results:
        raise RuntimeError(f"the reference run printed no result (log {out / 'reference.log'})")
    return RunTimes(wall, json.loads(results[-1])["epochs"], phases)


def reference_worker(args: argparse.Namespace) -> int:
    """The original's k-fold loop (its Model.train) on the plain reference network."""
    import keras
    import numpy as np
    from sklearn.metrics import classification_report, confusion_matrix

    from timnet import timings
    from timnet.config import make_config
    from timnet.features.files import load_features
    from timnet.network.losses import smooth_labels
    from timnet.network.reference import build_plain_timnet
    from timnet.protocols import kfold_splits

    class EpochTimes(keras.callbacks.Callback):
        """Epoch times; and, as our run records them, the training steps, the validation pass
        and the epoch-end callbacks (here the checkpoint, which runs after this one)."""

        def __init__(self, fold: int) -> None:
            super().__init__()
            self.fold = fold

        def on_train_begin(self, logs: dict | None = None) -> None:
            self.times: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.start = time.perf_counter()

        def on_test_begin(self, logs: dict | None = None) -> None:
            self.test_start = time.perf_counter()
            timings.record("training steps", self.test_start - self.start, self.fold)

        def on_test_end(self, logs: dict | None = None) -> None:
            self.test_end = time.perf_counter()
            timings.record("validation", self.test_end - self.test_start, self.fold)

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.times.append(time.perf_counter() - self.start)

    class Checkpoint(keras.callbacks.ModelCheckpoint):
        """The original's best-val_accuracy checkpoint, timed."""

        def __init__(self, fold: int, *a: object, **k: object) -> None:
            super().__init__(*a, **k)
            self.fold = fold

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            with timings.phase("weights file (every epoch)", self.fold):
                super().on_epoch_end(epoch, logs)
            timings.record("epoch-end callbacks", time.perf_counter() - timer.test_end, self.fold)

    recipe = make_config({"recipe": "paper", "bidirection": True, "dilation_size": args.dilation_size,
                          "batch_size": args.batch_size, "epoch": args.epochs, "random_seed": args.seed})
    features = load_features(args.reference_worker)
    x, y = features.x, features.y
    out = Path(args.reference_out)
    keras.utils.set_random_seed(args.seed)
    epochs: list[list[float]] = []
    splits = kfold_splits(len(features.labels), args.folds, args.seed)[: trained_folds(args)]
    timings.mark("training begins")
    for split in splits:
        print(f"{FOLD_MARK} {split.fold}", flush=True)
        with timings.phase("model build or reset", split.fold):
            model = build_plain_timnet(x.shape[1:], y.shape[1], head="softmax", **recipe.architecture.as_dict())
            model.compile(optimizer=keras.optimizers.Adam(recipe.lr, recipe.beta1, recipe.beta2, epsilon=1e-8),
                          loss="categorical_crossentropy", metrics=["accuracy"])
        weights = out / "reference_models" / f"{args.folds}-fold_weights_best_{split.fold}.weights.h5"
        weights.parent.mkdir(parents=True, exist_ok=True)
        timer = EpochTimes(split.fold)
        callbacks = [timer, Checkpoint(split.fold, str(weights), monitor="val_accuracy", mode="max",
                                       save_best_only=True, save_weights_only=True)]
        if args.histogram_freq:
            callbacks.append(keras.callbacks.TensorBoard(str(out / "reference_log" / f"fold_{split.fold}"),
                                                         histogram_freq=args.histogram_freq))
        y_train = smooth_labels(y[split.train], recipe.label_smoothing)
        with timings.phase("fit", split.fold):
            model.fit(x[split.train], y_train, validation_data=(x[split.test], y[split.test]),
                      batch_size=args.batch_size, epochs=args.epochs, verbose=2, callbacks=callbacks)
        with timings.phase("evaluation", split.fold):
            model.load_weights(str(weights))
            model.evaluate(x[split.test], y[split.test], verbose=0)
            predicted = np.argmax(model.predict(x[split.test], verbose=0), axis=1)
            truth = np.argmax(y[split.test], axis=1)
            confusion_matrix(truth, predicted, labels=range(y.shape[1]))
            classification_report(truth, predicted, labels=range(y.shape[1]), output_dict=True, zero_division=0)
        epochs.append(timer.times)
    print(RESULT_MARK + json.dumps({"epochs": epochs}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    if args.reference_worker:
        return reference_worker(args)
    from tqdm import tqdm

    with tempfile.TemporaryDirectory(prefix="bench_protocol_") as tmp:
        work = Path(args.work_dir) if args.work_dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        data = write_features(work / "EMODB_generated.npy", args)
        histograms = f"histograms every {args.histogram_freq} epochs" if args.histogram_freq else "no histograms"
        folds = f"{args.folds} folds" if not args.max_folds else f"{args.max_folds} of {args.folds} folds"
        print(f"{folds} x {args.epochs} epochs, {args.utterances} generated utterances of "
              f"({args.frames}, {args.n_mfcc}), {args.classes} classes, batch {args.batch_size}, dilations "
              f"{args.dilation_size}, {histograms}; {os.cpu_count()} CPUs, "
              f"load {os.getloadavg()[0]:.2f}", flush=True)
        print("ours: " + " ".join(ours_command(args, data, work / "ours_1")), flush=True)
        runs = {"ours": run_ours, "reference": run_reference}
        best: dict[str, RunTimes] = {}
        bar = None if args.no_progress else tqdm(total=2 * args.repeats * trained_folds(args), unit="fold", desc="folds")
        try:
            for r in range(args.repeats):
                for name, run in runs.items():  # alternating
                    out = work / f"{name}_{r + 1}"
                    out.mkdir(parents=True, exist_ok=True)
                    times = run(args, data, out, bar)
                    if name not in best or times.wall < best[name].wall:
                        best[name] = times
        finally:
            if bar is not None:
                bar.close()
    for name, t in best.items():
        fixed = t.fixed_per_fold(args.epochs)
        print(f"{name:<9}: wall {t.wall:7.1f} s; steady epoch {t.steady:6.2f} s; fixed cost per fold {fixed:6.2f} s "
              f"= first epoch extra {t.first_extra:6.2f} s + build, evaluation, outputs and start "
              f"{fixed - t.first_extra:6.2f} s")
    print_breakdown(best)
    ours, ref = best["ours"], best["reference"]
    print(f"ratio (reference / ours): wall x{ref.wall / ours.wall:.2f}, steady epoch x{ref.steady / ours.steady:.2f}, "
          f"fixed cost per fold x{ref.fixed_per_fold(args.epochs) / ours.fixed_per_fold(args.epochs):.2f}; "
          f"load at end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

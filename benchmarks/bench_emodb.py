"""Real-data benchmark: the paper's recipe on EMO-DB, 10-fold CV or leave one speaker out.

    python benchmarks/bench_emodb.py [--emodb_dir DIR] [--epochs 500] [--protocol kfold|loso]
                                     [--folds 10] [--max_folds N] [--work_dir benchmarks/out/emodb] [--jobs N]

Runs the project's own commands as a user would (subprocesses, output streamed):
``timnet extract --corpus EMODB`` (mean_signal_length 96000 -> (N, 188, 39)),
then ``Code/main.py --mode train --recipe paper --bidirection`` (softmax head, label
smoothing 0.1, dropout 0.1, batch 64, Adam 0.001/0.93/0.98/1e-8, KFold(shuffle=True,
random_state=46), seed 46). It then reads the run's metrics.json and history.json and
prints per-fold WAR/UAR, mean ± std, seconds per epoch, total time and the machine.
The folder defaults to $TIMNET_EMODB_DIR, else ../shared/corpora/emodb-2s; any EMO-DB
with ``wav/`` and the original file names works.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
CODE = REPO_ROOT / "Code"

from timnet.features.files import read_npy  # noqa: E402

REPORTS_LINE = re.compile(r"^Reports in (.+?):?$")
WEIGHTS_LINE = re.compile(r"weights in (.+)$")
KFOLD_FILE = re.compile(r"^\d+-fold_weights_best_(\d+)\.hdf5$")
LOSO_FILE = re.compile(r"^loso_weights_\d+_(.+)\.hdf5$")


def default_emodb_dir() -> Path | None:
    """$TIMNET_EMODB_DIR, else the shared copy next to the repository, when it holds ``wav/``."""
    env = os.environ.get("TIMNET_EMODB_DIR")
    candidate = Path(env) if env else REPO_ROOT.parent / "shared" / "corpora" / "emodb-2s"
    return candidate if (candidate / "wav").is_dir() else None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--emodb_dir", default=None,
                   help="EMO-DB folder holding wav/ (default: $TIMNET_EMODB_DIR, else ../shared/corpora/emodb-2s)")
    p.add_argument("--epochs", type=int, default=500, help="epochs per fold (the paper: 500)")
    p.add_argument("--protocol", choices=("kfold", "loso"), default="kfold",
                   help="kfold: the paper's 10-fold CV; loso: leave one speaker out (speaker-independent)")
    p.add_argument("--folds", type=int, default=10, help="k of the k-fold protocol")
    p.add_argument("--first_fold", type=int, default=1,
                   help="start at this fold (1-based), to run the protocol in parts")
    p.add_argument("--max_folds", type=int, default=None,
                   help="train only the first N folds (the splits stay those of --folds / of the speakers)")
    p.add_argument("--work_dir", default="benchmarks/out/emodb",
                   help="features, weights, reports and logs go here (relative: from the repository root)")
    p.add_argument("--jobs", type=int, default=None, help="worker processes for the feature extraction")
    p.add_argument("--seed", type=int, default=46, help="random seed (the paper: 46)")
    p.add_argument("--reuse_features", action="store_true",
                   help="skip the extraction when <work_dir>/features/EMODB.npy exists")
    p.add_argument("--histogram_freq", type=int, default=0,
                   help="TensorBoard weight histograms every N epochs (0: none; they cost time)")
    p.add_argument("--no_figures", action="store_true", help="skip the PNG figures")
    return p


def stream(cmd: list[str], env: dict[str, str]) -> tuple[int, list[str]]:
    """Run ``cmd``, echo its output line by line, return (exit code, lines).

    Ctrl-C is left to the child (training stops after the batch, evaluates the saved
    weights and writes its reports), so the summary can still be printed."""
    print("$ " + " ".join(cmd), flush=True)
    lines: list[str] = []
    with subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1) as proc:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                lines.append(line.rstrip("\n"))
            code = proc.wait()
        finally:
            signal.signal(signal.SIGINT, previous)
    return code, lines


def extract_command(emodb_dir: Path, features_dir: Path, jobs: int | None, overwrite: bool = False) -> list[str]:
    cmd = [sys.executable, "-m", "timnet", "extract", "--corpus", "EMODB", "--input", str(emodb_dir),
           "--output", str(features_dir), "--no_progress"]
    return cmd + (["--jobs", str(jobs)] if jobs else []) + (["--overwrite"] if overwrite else [])


def corpus_record(emodb_dir: Path) -> dict[str, Any]:
    """What the features are made from: the folder, and every wav file's name, size and time."""
    wavs = sorted(p for p in emodb_dir.rglob("*") if p.suffix.lower() == ".wav")
    listing = "\n".join(f"{p.relative_to(emodb_dir)} {p.stat().st_size} {p.stat().st_mtime_ns}" for p in wavs)
    return {"emodb_dir": str(emodb_dir), "files": len(wavs),
            "listing_sha256": hashlib.sha256(listing.encode()).hexdigest()}


def source_file(features: Path) -> Path:
    return features.with_name(features.stem + ".source.json")


def recorded_source(features: Path) -> dict[str, Any] | None:
    """The corpus record written beside the features when they were extracted (None: unknown)."""
    try:
        return json.loads(source_file(features).read_text())
    except (OSError, ValueError):
        return None


def train_command(args: argparse.Namespace, features: Path, work: Path) -> list[str]:
    cmd = [sys.executable, str(CODE / "main.py"), "--mode", "train", "--recipe", "paper", "--bidirection",
           "--data", str(features), "--protocol", args.protocol, "--epoch", str(args.epochs),
           "--split_fold", str(args.folds), "--random_seed", str(args.seed),
           "--model_path", str(work / "models"), "--result_path", str(work / "results"),
           "--log_dir", str(work / "log"), "--histogram_freq", str(args.histogram_freq)]
    if args.max_folds:
        cmd += ["--max_folds", str(args.max_folds)]
    if args.first_fold != 1:
        cmd += ["--first_fold", str(args.first_fold)]
    if args.no_figures:
        cmd.append("--no_figures")
    return cmd


def found(lines: list[str], pattern: re.Pattern[str]) -> Path | None:
    for line in reversed(lines):
        match = pattern.search(line.strip())
        if match:
            return Path(match.group(1).strip())
    return None


def newest_run(results: Path, since: float) -> Path | None:
    """The run folder this training wrote (when its 'Reports in' line was not recognised)."""
    runs = [p.parent for p in results.glob("*/metrics.json") if p.stat().st_mtime >= since]
    return max(runs, key=lambda p: p.stat().st_mtime) if runs else None


def fold_name(weights: str) -> str:
    """A one-fold report has no fold list: name the fold from its weights file."""
    name = Path(weights).name
    if match := KFOLD_FILE.match(name):
        return f"fold {match.group(1)}"
    if match := LOSO_FILE.match(name):
        return f"speaker {match.group(1)}"
    return "all"


def epoch_times(histories: list[dict[str, list[float]]]) -> dict[str, float | None]:
    """Mean seconds per epoch over every epoch, and without each fold's first epoch
    (graph tracing and XLA compilation happen there)."""
    all_times = [t for h in histories for t in h.get("epoch_time", [])]
    steady = [t for h in histories for t in h.get("epoch_time", [])[1:]]
    return {
        "mean_epoch_s": float(np.mean(all_times)) if all_times else None,
        "steady_epoch_s": float(np.mean(steady)) if steady else None,
        "first_epoch_s": float(np.mean([h["epoch_time"][0] for h in histories if h.get("epoch_time")]))
        if all_times else None,
        "epochs_timed": len(all_times),
    }


def machine_info(train_lines: list[str]) -> dict[str, Any]:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpu_model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    # What the training printed about its devices (stdout and stderr are merged).
    on_cpu = any("No GPU in use" in line or "running on the CPU" in line for line in train_lines)
    gpu_lines = [line.strip() for line in train_lines
                 if re.search(r"\bGPU\b.*(in use|mirrored|:)", line) and "running on the CPU" not in line]
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "tensorflow": _version("tensorflow"),
        "keras": _version("keras"),
        "device": "CPU" if on_cpu else (gpu_lines[-1] if gpu_lines else "GPU"),
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def summarise(result_dir: Path) -> dict[str, Any]:
    """Per-fold and mean figures of a finished run folder."""
    metrics = json.loads((result_dir / "metrics.json").read_text())
    histories = json.loads((result_dir / "history.json").read_text())
    folds = metrics.get("folds") or [{"name": fold_name(metrics.get("weights", "")), "WAR": metrics["WAR"],
                                      "UAR": metrics["UAR"], "macro_F1": metrics.get("macro_F1"), "n": metrics["n"]}]
    war = [f["WAR"] for f in folds]
    uar = [f["UAR"] for f in folds]
    f1 = [f.get("macro_F1") for f in folds]
    f1 = [v for v in f1 if v is not None]
    return {
        "result_dir": str(result_dir),
        "folds": [{"name": f["name"], "WAR": f["WAR"], "UAR": f["UAR"], "macro_F1": f.get("macro_F1"), "n": f["n"],
                   "epochs": len(h.get("loss", []))} for f, h in zip(folds, histories)],
        "WAR_mean": float(np.mean(war)), "WAR_std": float(np.std(war)),
        "UAR_mean": float(np.mean(uar)), "UAR_std": float(np.std(uar)),
        "macro_F1_mean": float(np.mean(f1)) if f1 else None, "macro_F1_std": float(np.std(f1)) if f1 else None,
        "pooled_WAR": metrics.get("pooled_WAR", metrics["WAR"]),
        "pooled_UAR": metrics.get("pooled_UAR", metrics["UAR"]),
        **epoch_times(histories),
    }


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def print_summary(summary: dict[str, Any]) -> None:
    print("\n## EMO-DB benchmark")
    print(f"benchmark: {summary['bench_command']}\ntraining: {summary['command']}")
    print(f"protocol {summary['protocol']}, {summary['epochs']} epochs, {len(summary['folds'])} fold(s) trained; "
          f"data {summary['features_shape']}")
    print("\n| fold | n | epochs | WAR | UAR | macro-F1 |\n|---|---|---|---|---|---|")
    for f in summary["folds"]:
        print(f"| {f['name']} | {f['n']} | {f['epochs']} | {f['WAR']:.4f} | {f['UAR']:.4f} | {_fmt(f['macro_F1'])} |")
    if len(summary["folds"]) > 1:
        print(f"| **mean ± std** | | | {summary['WAR_mean']:.4f} ± {summary['WAR_std']:.4f} | "
              f"{summary['UAR_mean']:.4f} ± {summary['UAR_std']:.4f} | "
              f"{_fmt(summary['macro_F1_mean'])} ± {_fmt(summary['macro_F1_std'])} |")
    t = summary
    steady = f"{t['steady_epoch_s']:.2f}" if t["steady_epoch_s"] is not None else "n/a"
    mean = f"{t['mean_epoch_s']:.2f}" if t["mean_epoch_s"] is not None else "n/a"
    first = f"{t['first_epoch_s']:.2f}" if t["first_epoch_s"] is not None else "n/a"
    print(f"\nseconds per epoch: {mean} mean over {t['epochs_timed']} epochs; {steady} without each fold's first "
          f"epoch (first: {first})")
    print(f"time: extraction {t['extract_s']:.0f} s, training+evaluation {t['train_s']:.0f} s, "
          f"total {dt.timedelta(seconds=round(t['total_s']))}")
    m = t["machine"]
    print(f"machine: {m['cpu_count']} CPUs ({m['cpus_usable']} usable, {m['cpu_model']}), device {m['device']}, "
          f"TensorFlow {m['tensorflow']}, Keras {m['keras']}, Python {m['python']}, "
          f"load average at the end {m['load_average_1min']}")
    print(f"run folder: {t['result_dir']}\nsummary: {t['summary_file']}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    emodb_dir = Path(args.emodb_dir).expanduser().resolve() if args.emodb_dir else default_emodb_dir()
    if emodb_dir is None:
        print("error: no EMO-DB folder: give --emodb_dir DIR (the corpus folder holding wav/), "
              "or set TIMNET_EMODB_DIR", file=sys.stderr)
        return 2
    if not (emodb_dir / "wav").is_dir() and not any(emodb_dir.glob("*.wav")):
        print(f"error: {emodb_dir}: no wav/ folder with EMO-DB files (e.g. wav/03a01Wa.wav); "
              "give the corpus folder with --emodb_dir", file=sys.stderr)
        return 2
    if args.epochs < 1 or args.folds < 2 or (args.max_folds is not None and args.max_folds < 1):
        print("error: --epochs and --max_folds must be at least 1 and --folds at least 2", file=sys.stderr)
        return 2
    work = Path(args.work_dir)
    work = (work if work.is_absolute() else REPO_ROOT / work).resolve()
    features_dir = work / "features"
    features = features_dir / "EMODB.npy"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}

    start = time.time()
    source = corpus_record(emodb_dir)
    if args.reuse_features and features.is_file():
        print(f"Reusing {features} (--reuse_features)")
    elif features.is_file() and recorded_source(features) == source:
        print(f"Reusing {features}: extracted from the same {source['files']} files of {emodb_dir}")
    else:
        if features.is_file():
            print(f"Replacing {features}: it was not extracted from the current files of {emodb_dir}")
        code, _ = stream(extract_command(emodb_dir, features_dir, args.jobs, overwrite=features.is_file()), env)
        if code != 0:
            print(f"error: feature extraction failed (exit {code})", file=sys.stderr)
            return code
        source_file(features).write_text(json.dumps(source, indent=1))
    extract_s = time.time() - start

    train_start = time.time()
    cmd = train_command(args, features, work)
    code, lines = stream(cmd, env)
    train_s = time.time() - train_start
    if code != 0:
        print(f"error: training failed (exit {code})", file=sys.stderr)
        return code
    result_dir = found(lines, REPORTS_LINE) or newest_run(work / "results", train_start)
    if result_dir is None or not (result_dir / "metrics.json").is_file():
        print("error: the training run printed no 'Reports in <folder>' line with a metrics.json", file=sys.stderr)
        return 1

    summary = summarise(result_dir)
    shape = str(tuple(read_npy(features)["x"].shape))
    summary.update({
        "command": " ".join(["python", *[str(Path(c).relative_to(REPO_ROOT)) if c.startswith(str(CODE)) else c
                                         for c in cmd[1:]]]),
        "bench_command": " ".join(["python", "benchmarks/bench_emodb.py", *(sys.argv[1:] if argv is None else argv)]),
        "emodb_dir": str(emodb_dir), "protocol": args.protocol, "epochs": args.epochs, "folds_k": args.folds,
        "max_folds": args.max_folds, "seed": args.seed, "features_shape": shape,
        "model_dir": str(found(lines, WEIGHTS_LINE) or ""),
        "extract_s": extract_s, "train_s": train_s, "total_s": time.time() - start,
        "machine": machine_info(lines),
    })
    summary_file = work / f"bench_{args.protocol}_{result_dir.name}.json"
    summary["summary_file"] = str(summary_file)
    summary_file.write_text(json.dumps(summary, indent=2))
    print_summary(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Real-data benchmark on two corpora: cross-corpus pairs and RAVDESS within the corpus.

    python benchmarks/bench_cross_corpus.py [--part extract|cross|kfold|group|all] [--epochs 100]
        [--seeds 46,47,48] [--max_folds N] [--work_dir benchmarks/out/cross_corpus]

Runs the project's own commands as a user would (subprocesses, output streamed):

- ``extract``: ``timnet extract`` of EMO-DB-2s and RAVDESS (FLAC). The cross-corpus pair
  shares one ``mean_signal_length``, 96000 (the paper's EMO-DB value: 188 frames); the
  within-corpus RAVDESS runs use the original's RAVDESS length, 110000 (215 frames).
  Features are reused when the corpus files are unchanged.
- ``cross``: ``timnet cross-corpus --corpora EMODB2S,RAVDESS`` on their six shared
  classes (angry, disgust, fear, happy, neutral, sad), paper recipe, every seed.
- ``kfold``: RAVDESS 10-fold cross-validation (the paper's protocol), paper recipe.
- ``group``: RAVDESS ``--protocol group-kfold --group speaker`` (10 folds, actors disjoint).

Every part resumes: a killed part is continued (``--resume``) when the benchmark runs
again, and a complete part is read back instead of trained again; ``--max_folds`` trains
the within-corpus parts in pieces across sessions. At the end it prints the tables
beside the paper's figures and writes ``<work_dir>/summary.json``. Corpora come from
``$TIMNET_EMODB_DIR``/``$TIMNET_RAVDESS_DIR``, else ``../shared/corpora``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench_emodb import REPO_ROOT, machine_info, stream, summarise

SHARED = REPO_ROOT.parent / "shared" / "corpora"
CORPORA = {  # name -> (corpus parser, folder env variable, default folder, sub-folder with the audio)
    "EMODB2S": ("EMODB", "TIMNET_EMODB_DIR", SHARED / "emodb-2s", "wav"),
    "RAVDESS": ("RAVDE", "TIMNET_RAVDESS_DIR", SHARED / "ravdess-speech", "flac"),
}
CROSS_LENGTH = 96000  # one mean_signal_length for both corpora of a pair, as in the paper
SHARED_CLASSES = "angry,disgust,fear,happy,neutral,sad"
PAPER = {  # the paper's RAVDESS 10-fold figures, and the authors' corrected last-epoch table
    "paper": {"UAR": 91.93, "WAR": 92.08},
    "corrected (last epoch)": {"UAR": 90.04, "WAR": 90.07},
}
PARTS = ("extract", "cross", "kfold", "group")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--part", default="all", choices=(*PARTS, "all"), help="which part to run (default: all)")
    p.add_argument("--epochs", type=int, default=100, help="epochs per fold or pair (the paper: 500)")
    p.add_argument("--seeds", default="46,47,48", help="seeds of the cross-corpus pairs")
    p.add_argument("--seed", type=int, default=46, help="seed of the within-corpus runs (the paper: 46)")
    p.add_argument("--folds", type=int, default=10, help="k of the within-corpus k-fold and group-kfold")
    p.add_argument("--max_folds", type=int, default=None,
                   help="train at most N more folds of a within-corpus part in this call (resume later)")
    p.add_argument("--work_dir", default="benchmarks/out/cross_corpus",
                   help="features, weights, reports and logs (relative: from the repository root)")
    return p


def corpus_dir(name: str) -> Path:
    _, env, default, audio = CORPORA[name]
    folder = Path(os.environ.get(env) or default)
    if not (folder / audio).is_dir():
        raise SystemExit(f"error: {folder}: no {audio}/ folder; set {env} to the corpus folder")
    return folder / audio


def timnet(*args: str) -> list[str]:
    return [sys.executable, "-m", "timnet", *args]


def run(cmd: list[str], env: dict[str, str]) -> list[str]:
    code, lines = stream(cmd, env)
    if code != 0:
        raise SystemExit(f"error: {' '.join(cmd[2:4])} failed (exit {code})")
    return lines


def extract(work: Path, env: dict[str, str]) -> dict[str, Path]:
    """The three feature files, reused when their corpus listing is unchanged."""
    features = work / "features"
    wanted = {"EMODB2S": ("EMODB2S", CROSS_LENGTH), "RAVDESS": ("RAVDESS", CROSS_LENGTH), "RAVDE": ("RAVDESS", None)}
    out = {}
    for name, (corpus, length) in wanted.items():
        folder = corpus_dir(corpus)
        listing = sorted(f"{p.relative_to(folder)} {p.stat().st_size}" for p in folder.rglob("*") if p.is_file())
        record = {"input": str(folder), "mean_signal_length": length, "files": len(listing),
                  "listing_sha256": hashlib.sha256("\n".join(listing).encode()).hexdigest()}
        path, source = features / f"{name}.npy", features / f"{name}.source.json"
        if path.is_file() and source.is_file() and json.loads(source.read_text()) == record:
            print(f"Reusing {path}")
        else:
            cmd = timnet("extract", "--corpus", CORPORA[corpus][0], "--input", str(folder), "--name", name,
                         "--output", str(features), "--no_progress", "--overwrite")
            run(cmd + (["--mean_signal_length", str(length)] if length else []), env)
            source.write_text(json.dumps(record))
        out[name] = path
    return out


def run_folders(models: Path) -> tuple[list[Path], list[Path]]:
    """(incomplete, complete) run folders under ``models``: a run keeps its resume state until complete."""
    from timnet.training.resume import is_incomplete

    runs = sorted(p for p in models.glob("*") if p.is_dir()) if models.is_dir() else []
    return [p for p in runs if is_incomplete(p)], [p for p in runs if not is_incomplete(p)]


def within(part: str, args: argparse.Namespace, data: Path, work: Path, env: dict[str, str]) -> dict[str, Any] | None:
    """RAVDESS k-fold or group-kfold by actor: resumed where a run stopped, read back when complete."""
    folder = work / part
    models, results = folder / "models", folder / "results"
    incomplete, complete = run_folders(models)
    if complete and not incomplete:
        result = results / complete[-1].name
        print(f"Reading the complete run {result}")
        return summarise(result)
    if incomplete:
        cmd = timnet("train", "--resume", str(incomplete[-1]), "--model_path", str(models))
    else:
        protocol = ["--protocol", "kfold"] if part == "kfold" else ["--protocol", "group-kfold", "--group", "speaker"]
        cmd = timnet("train", "--data", str(data), "--recipe", "paper", "--bidirection", "--epoch", str(args.epochs),
                     "--split_fold", str(args.folds), "--random_seed", str(args.seed), *protocol,
                     "--model_path", str(models), "--result_path", str(results), "--log_dir", str(folder / "log"))
    if args.max_folds:
        cmd += ["--max_folds", str(args.max_folds)]  # a resumed run trains its remaining folds in pieces too
    run(cmd, env)
    incomplete, complete = run_folders(models)
    if incomplete:
        print(f"{part}: incomplete; run the benchmark again to continue {incomplete[-1]}")
        return None
    return summarise(results / complete[-1].name)


def cross(args: argparse.Namespace, features: dict[str, Path], work: Path, env: dict[str, str]) -> dict[str, Any]:
    """EMO-DB-2s <-> RAVDESS on their shared classes, every seed: the matrix of ``timnet cross-corpus``."""
    folder = work / "cross"
    series = sorted(folder.glob("models/*/series.json")) if folder.is_dir() else []
    if series:  # a series started earlier: resumed (entries already complete are read back)
        cmd = timnet("cross-corpus", "--resume", str(series[-1].parent), "--model_path", str(folder / "models"))
    else:
        cmd = timnet("cross-corpus", "--corpora", f"{features['EMODB2S']},{features['RAVDESS']}",
                     "--classes", SHARED_CLASSES, "--seeds", args.seeds, "--recipe", "paper", "--bidirection",
                     "--epoch", str(args.epochs), "--model_path", str(folder / "models"),
                     "--result_path", str(folder / "results"), "--log_dir", str(folder / "log"))
    run(cmd, env)
    (series,) = sorted(folder.glob("models/*/series.json"))[-1:]
    return json.loads((folder / "results" / series.parent.name / "metrics.json").read_text())


def print_within(name: str, summary: dict[str, Any]) -> None:
    print(f"\n## RAVDESS {name}: {len(summary['folds'])} folds, {summary['folds'][0]['epochs']} epochs")
    print("| | UAR | WAR | macro-F1 |\n|---|---|---|---|")
    print(f"| ours (mean ± std over folds) | {100 * summary['UAR_mean']:.2f} ± {100 * summary['UAR_std']:.2f} | "
          f"{100 * summary['WAR_mean']:.2f} ± {100 * summary['WAR_std']:.2f} | "
          f"{100 * (summary['macro_F1_mean'] or 0):.2f} |")
    if name == "10-fold":
        for label, figures in PAPER.items():
            print(f"| {label} | {figures['UAR']:.2f} | {figures['WAR']:.2f} | |")


def print_cross(metrics: dict[str, Any]) -> None:
    print("\n## Cross-corpus (mean ± std over seeds)")
    print("| train -> test | UAR | WAR | macro-F1 |\n|---|---|---|---|")
    for pair in metrics["pairs"]:
        cells = [f"{100 * pair[k]:.2f} ± {100 * pair[k + '_std']:.2f}" for k in ("UAR", "WAR", "macro_F1")]
        print(f"| {pair['train']} -> {pair['test']} | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    work = Path(args.work_dir)
    work = (work if work.is_absolute() else REPO_ROOT / work).resolve()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    parts = PARTS if args.part == "all" else ("extract", args.part)
    start = time.time()
    features = extract(work, env)
    summary: dict[str, Any] = {"epochs": args.epochs, "seeds": args.seeds}
    if "cross" in parts:
        summary["cross"] = cross(args, features, work, env)
        print_cross(summary["cross"])
    for part, name in (("kfold", "10-fold"), ("group", "group-kfold by actor")):
        if part in parts:
            result = within(part, args, features["RAVDE"], work, env)
            if result is not None:
                summary[part] = result
                print_within(name, result)
    summary["seconds"] = time.time() - start
    summary["machine"] = machine_info([])
    path = work / "summary.json"
    previous = json.loads(path.read_text()) if path.is_file() else {}
    path.write_text(json.dumps({**previous, **summary}, indent=1))
    print(f"\nsummary: {path} ({summary['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

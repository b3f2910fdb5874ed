"""Cross-corpus training (``--protocol cross-corpus --test_data``), the cross-corpus matrix
(``timnet cross-corpus``) and series of seeds (``--seeds``): on two generated corpora whose
classes partly differ and are named differently (``anger`` = ``angry``, ...)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import FAST, REPO_ROOT, SIGNALLER, cli_env, finish, only_run_folder, read_metrics, run_cli, write_tiny
from timnet import protocols
from timnet.modelfiles import keras2 as legacy_weights

CODE = str(REPO_ROOT / "Code")
SHARED = ["angry", "happy", "neutral", "sad"]
SMALL = ["--loss", "ce", "--dilation_size", "2", "--filter_size", "8", *FAST]


def _env() -> dict[str, str]:
    return {**cli_env(), "PYTHONPATH": os.pathsep.join(filter(None, [CODE, os.environ.get("PYTHONPATH")]))}


def timnet(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m timnet ARGS`` in a fresh interpreter (CPU only)."""
    return subprocess.run([sys.executable, "-m", "timnet", *args], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=timeout)


def _dirs(base: Path) -> list[str]:
    return ["--model_path", str(base / "models"), "--result_path", str(base / "results"), "--log_dir",
            str(base / "log")]


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A: the 5 tiny classes; B: 4 of them under other names and "fearful" (shared: 4);
    C: A's classes with other frame counts; D: no class in common."""
    base = tmp_path_factory.mktemp("corpora")
    write_tiny(base / "A.npy", n=40, frames=20, seed=0)
    write_tiny(base / "B.npy", class_labels=("anger", "fearful", "happiness", "neutral", "sadness"), n=40, frames=20,
               seed=1)
    write_tiny(base / "C.npy", n=40, frames=24, seed=2)
    write_tiny(base / "D.npy", class_labels=("low", "high"), n=20, frames=20, seed=3)
    return base


MATRIX = ["--corpora", "A.npy,B.npy", "--seeds", "1,2", "--epoch", "2", *SMALL, "--no_figures"]


@pytest.fixture(scope="module")
def matrix(corpora: Path) -> dict[str, Any]:
    """An uninterrupted ``timnet cross-corpus`` of 2 pairs x 2 seeds (figures on)."""
    base = corpora / "matrix"
    done = timnet(["cross-corpus", *[a for a in MATRIX if a != "--no_figures"], *_dirs(base)], corpora)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    series = only_run_folder(base / "results")
    return {"base": base, "series": series, "metrics": read_metrics(series), "stdout": done.stdout}


def test_cross_corpus_run_reports_the_test_corpus_and_tests_on_its_own_file(corpora: Path,
                                                                          matrix: dict[str, Any]) -> None:
    base = corpora / "single"
    done = timnet(["train", "--data", "A.npy", "--protocol", "cross-corpus", "--test_data", "B.npy",
                   "--random_seed", "1", "--epoch", "2", *SMALL, "--no_figures", *_dirs(base)], corpora)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = only_run_folder(base / "models")
    assert run.name.startswith("A_to_B_1_")
    weights = run / "cross-corpus_weights_1_B.hdf5"
    assert weights.is_file() and weights.with_suffix(".keras").is_file()
    by_name = protocols.identify_file(weights)  # the name parses back ...
    assert (by_name.protocol, by_name.fold, by_name.held_out) == ("cross-corpus", 1, "B")
    recorded = legacy_weights.read_weight_file(weights).metadata  # ... and the file records the same fold
    assert recorded["protocol"]["protocol"] == "cross-corpus" and recorded["protocol"]["held_out"] == "B"
    assert recorded["protocol"]["seed"] == 1 and recorded["epoch"] == 2  # the last epoch, never chosen on B
    metrics = read_metrics(only_run_folder(base / "results"))
    assert metrics["class_labels"] == SHARED and metrics["n"] == 32  # B's 40 less its 8 "fearful"
    assert any("B: 8 utterances" in n and "fearful 8" in n for n in metrics["notes"])
    assert any("A: 8 utterances" in n and "surprise 8" in n for n in metrics["notes"])
    # The matrix's A -> B seed 1 is this very run.
    entry = next(e for e in matrix["metrics"]["entries"] if e["name"] == "A_to_B_seed_1")
    assert (entry["WAR"], entry["UAR"], entry["macro_F1"]) == (metrics["WAR"], metrics["UAR"], metrics["macro_F1"])
    # timnet test on B's own file: classes by name, the whole file (not the training data), the same scores.
    tested = timnet(["test", "--data", "B.npy", "--test_path", str(run), "--gpu", "-1", "--result_path",
                     str(base / "tests"), "--no_figures"], corpora)
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-3000:]
    test_metrics = read_metrics(only_run_folder(base / "tests"))
    assert test_metrics["n"] == 32 and test_metrics["class_labels"] == SHARED
    assert test_metrics["WAR"] == pytest.approx(metrics["WAR"]) and test_metrics["UAR"] == pytest.approx(metrics["UAR"])
    assert any("not the data the model was trained on" in n for n in test_metrics["notes"])


def test_cross_corpus_matrix_over_seeds(matrix: dict[str, Any]) -> None:
    metrics, series = matrix["metrics"], matrix["series"]
    assert metrics["kind"] == "cross-corpus" and metrics["complete"] and metrics["seeds"] == [1, 2]
    assert sorted(e["name"] for e in metrics["entries"]) == ["A_to_B_seed_1", "A_to_B_seed_2", "B_to_A_seed_1",
                                                             "B_to_A_seed_2"]
    for pair in metrics["pairs"]:
        rows = [e for e in metrics["entries"] if (e["train"], e["test"]) == (pair["train"], pair["test"])]
        assert len(rows) == pair["n_seeds"] == 2
        for m in ("WAR", "UAR", "macro_F1"):
            assert pair[m] == pytest.approx(np.mean([r[m] for r in rows]))
            assert pair[f"{m}_std"] == pytest.approx(np.std([r[m] for r in rows]))
            # every entry's figure is its run's metrics.json
        for r in rows:
            run = Path(r["run"])
            entry_results = matrix["base"] / "results" / series.name / f"{r['train']}_to_{r['test']}_seed_{r['seed']}"
            assert read_metrics(entry_results / run.name)["UAR"] == r["UAR"]
    per_seed = [np.mean([e["UAR"] for e in metrics["entries"] if e["seed"] == s]) for s in (1, 2)]
    assert metrics["mean_over_pairs"]["UAR"] == pytest.approx(np.mean(per_seed))
    assert metrics["mean_over_pairs"]["UAR_std"] == pytest.approx(np.std(per_seed))
    assert (series / "uar_matrix.png").stat().st_size > 1000
    summary = (series / "summary.md").read_text()
    assert "| A | — |" in summary and "mean over pairs" in summary and "uar_matrix.png" in summary
    assert list((matrix["base"] / "log" / series.name / "summary").glob("events.out.tfevents.*"))
    plan = json.loads((matrix["base"] / "models" / series.name / "series.json").read_text())
    assert plan["kind"] == "cross-corpus" and len(plan["entries"]) == 4
    assert "mean over pairs" in matrix["stdout"]


# A validation error: one line, exit 2, before TensorFlow loads.
PROBE = """
import runpy, sys
sys.argv = ["timnet", *sys.argv[1:]]
code = 0
try:
    runpy.run_module("timnet", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
print("@@probe", code, "tensorflow" in sys.modules or "keras" in sys.modules)
"""
ERRORS = [
    (["train", "--data", "A.npy", "--protocol", "cross-corpus", "--test_data", "C.npy"],
     "--mean_signal_length 9728"),
    (["cross-corpus", "--corpora", "A.npy,C.npy"], "extract both corpora alike"),
    (["train", "--data", "A.npy", "--protocol", "cross-corpus", "--test_data", "D.npy"], "share no class"),
    (["cross-corpus", "--corpora", "A.npy,D.npy"], "--corpora: A and D share no class"),
    (["train", "--data", "A.npy", "--protocol", "cross-corpus"], "--test_data B"),
    (["train", "--data", "A.npy", "--protocol", "kfold", "--test_data", "B.npy"], "--protocol cross-corpus"),
    (["train", "--data", "A.npy", "--protocol", "cross-corpus", "--test_data", "./A.npy"], "must differ from --data"),
    (["train", "--data", "A.npy", "--seeds", "1,x"], "--seeds 1,x"),
    (["train", "--data", "A.npy", "--seeds", "3,3"], "distinct"),
    (["cross-corpus", "--corpora", "A.npy,B.npy", "--classes", "angry,fear"], "--classes: fear not among"),
]


@pytest.mark.parametrize(("argv", "message"), ERRORS, ids=[" ".join(a) for a, _ in ERRORS])
def test_errors_are_one_line_before_tensorflow(corpora: Path, argv: list[str], message: str,
                                               probed: dict[str, tuple[int, bool, str]]) -> None:
    code, loaded, stderr = probed[" ".join(argv)]
    assert code == 2, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in stderr, stderr
    assert not loaded, f"{argv} loaded TensorFlow"


@pytest.fixture(scope="module")
def probed(corpora: Path) -> dict[str, tuple[int, bool, str]]:
    def probe(argv: list[str]) -> tuple[int, bool, str]:
        done = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=corpora, env=_env(), capture_output=True,
                              text=True, timeout=120)
        line = next(x for x in done.stdout.splitlines() if x.startswith("@@probe"))
        _, code, loaded = line.split()
        return int(code), loaded == "True", done.stderr

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(probe, [a for a, _ in ERRORS]))
    return {" ".join(a): r for (a, _), r in zip(ERRORS, results)}


def test_seeds_repeat_a_kfold_run_and_report_mean_and_std(corpora: Path) -> None:
    """The seed's entry point (main.py --mode train) with --seeds: a run per seed, and their mean ± std."""
    base = corpora / "seeds"
    done = run_cli(["--mode", "train", "--data", "A.npy", "--protocol", "kfold", "--split_fold", "2", "--seeds",
                    "5,6", "--epoch", "1", *SMALL, "--no_figures", *_dirs(base)], cwd=corpora)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    series = only_run_folder(base / "results")
    metrics = read_metrics(series)
    assert metrics["kind"] == "seeds" and sorted(metrics["per_seed"]) == ["5", "6"]
    for seed in (5, 6):
        run = only_run_folder(base / "results" / series.name / f"seed_{seed}")
        own = read_metrics(run)
        assert own["settings"]["random_seed"] == seed and own["settings"]["seeds"] is None
        assert metrics["per_seed"][str(seed)]["UAR"] == own["UAR"] and len(own["folds"]) == 2
    uars = [metrics["per_seed"][s]["UAR"] for s in ("5", "6")]
    assert metrics["mean"]["UAR"] == pytest.approx(np.mean(uars))
    assert metrics["mean"]["UAR_std"] == pytest.approx(np.std(uars))
    assert "**mean ± std**" in (series / "summary.md").read_text() and "mean ± std" in done.stdout


def _start_signalled_timnet(args: list[str], cwd: Path, log: Path, *, fold: int, epoch: int,
                            signal_name: str) -> subprocess.Popen:
    """helpers.start_signalled_cli for the ``timnet`` command (``timnet cross-corpus``)."""
    script = log.with_suffix(".signaller.py")
    script.write_text(SIGNALLER.replace("from timnet.cli.legacy import main", "from timnet.cli import main"))
    env = {**_env(), "SIGNAL_FOLD": str(fold), "SIGNAL_EPOCH": str(epoch), "SIGNAL_NAME": signal_name}
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, str(script), *args], cwd=cwd, env=env, stdout=out,
                                stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_a_killed_series_resumes_to_the_numbers_of_an_uninterrupted_one(corpora: Path,
                                                                       matrix: dict[str, Any]) -> None:
    base = corpora / "killed"
    log = base / "run.log"
    base.mkdir()
    proc = _start_signalled_timnet(["cross-corpus", *MATRIX, *_dirs(base)], corpora, log, fold=1, epoch=1,
                                   signal_name="SIGKILL")  # the first entry, after its first epoch
    rc, output = finish(proc, log)
    assert rc == -9, output[-3000:]
    command = next(line.split("continue it with: ", 1)[1] for line in output.splitlines()
                   if "continue it with: " in line)
    assert command.startswith("timnet cross-corpus --resume ")
    resumed = timnet([*command.split()[1:], "--gpu", "-1"], corpora)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resuming" in resumed.stdout
    metrics = read_metrics(only_run_folder(base / "results"))
    reference = {e["name"]: e for e in matrix["metrics"]["entries"]}
    assert metrics["complete"] and len(metrics["entries"]) == 4
    for entry in metrics["entries"]:
        for m in ("WAR", "UAR", "macro_F1"):
            assert entry[m] == pytest.approx(reference[entry["name"]][m], abs=1e-9), (entry["name"], m)
    assert metrics["mean_over_pairs"]["UAR"] == pytest.approx(matrix["metrics"]["mean_over_pairs"]["UAR"])
    again = timnet([*command.split()[1:], "--gpu", "-1"], corpora)  # everything complete: read back, no training
    assert again.returncode == 0 and again.stdout.count(": complete (") == 4, again.stdout[-2000:]

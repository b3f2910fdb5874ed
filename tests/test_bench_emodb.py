"""The EMO-DB benchmark end to end on the real copy, reduced to 2 folds x 2 epochs
(skipped when the copy is absent), and its input checks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import KFold


def run_bench(repo_root: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(repo_root / "benchmarks" / "bench_emodb.py"), *args]
    return subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=1800)


def test_bench_emodb_reduced_run(emodb_dir: Path, repo_root: Path, tmp_path: Path) -> None:
    work = tmp_path / "bench"
    result = run_bench(repo_root, "--emodb_dir", str(emodb_dir), "--epochs", "2", "--max_folds", "2",
                       "--work_dir", str(work), "--no_figures", "--jobs", "2")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    out = result.stdout
    assert "## EMO-DB benchmark" in out and "| fold 1 |" in out and "| fold 2 |" in out
    assert "mean ± std" in out and "seconds per epoch" in out and "| WAR | UAR | macro-F1 |" in out

    (summary_file,) = list(work.glob("bench_kfold_*.json"))
    summary = json.loads(summary_file.read_text())
    assert summary["features_shape"] == "(535, 188, 39)"
    assert [f["name"] for f in summary["folds"]] == ["fold 1", "fold 2"]
    assert all(f["epochs"] == 2 for f in summary["folds"])
    assert summary["epochs_timed"] == 4 and summary["mean_epoch_s"] > 0
    assert summary["machine"]["device"] == "CPU" and summary["machine"]["cpu_count"] >= 1
    for key in ("WAR_mean", "UAR_mean", "macro_F1_mean"):
        assert 0.0 <= summary[key] <= 1.0

    # The paper's recipe reached the run: settings as recorded in metrics.json.
    result_dir = Path(summary["result_dir"])
    settings = json.loads((result_dir / "metrics.json").read_text())["settings"]
    assert (settings["loss"], settings["protocol"], settings["split_fold"], settings["max_folds"]) == \
        ("ce", "kfold", 10, 2)
    assert (settings["architecture"]["dropout"], settings["label_smoothing"], settings["batch_size"]) == (0.1, 0.1, 64)
    assert (settings["lr"], settings["beta1"], settings["beta2"], settings["random_seed"]) == \
        (0.001, 0.93, 0.98, 46)
    assert settings["architecture"]["bidirection"] is True

    # Only the first two folds were trained, on the splits of the 10-fold CV.
    model_dir = Path(summary["model_dir"])
    assert sorted(p.name for p in model_dir.glob("*.hdf5")) == \
        ["10-fold_weights_best_1.hdf5", "10-fold_weights_best_2.hdf5"]
    tests = [te for _, te in KFold(n_splits=10, shuffle=True, random_state=46).split(np.arange(535))][:2]
    predictions = np.load(result_dir / "predictions.npz")
    np.testing.assert_array_equal(predictions["index"], np.sort(np.concatenate(tests)))
    for fold, test_index in enumerate(tests, start=1):
        np.testing.assert_array_equal(np.sort(predictions["index"][predictions["fold"] == fold]), test_index)


def test_bench_emodb_missing_folder(repo_root: Path, tmp_path: Path) -> None:
    result = run_bench(repo_root, "--emodb_dir", str(tmp_path / "nowhere"), "--work_dir", str(tmp_path / "w"))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "nowhere" in result.stderr
    assert not (tmp_path / "w").exists()


def _bench_module(repo_root: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_emodb", repo_root / "benchmarks" / "bench_emodb.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_emodb_reuses_features_only_from_the_same_files(repo_root: Path, tmp_path: Path) -> None:
    """A second run reuses the features when the corpus files are those they were made from."""
    bench = _bench_module(repo_root)
    corpus = tmp_path / "emodb"
    (corpus / "wav").mkdir(parents=True)
    (corpus / "wav" / "03a01Wa.wav").write_bytes(b"RIFF one")
    features = tmp_path / "features" / "EMODB.npy"
    features.parent.mkdir()
    features.write_bytes(b"features")
    assert bench.recorded_source(features) is None  # made by an older version: extracted again
    bench.source_file(features).write_text(json.dumps(bench.corpus_record(corpus)))
    assert bench.recorded_source(features) == bench.corpus_record(corpus)
    (corpus / "wav" / "03a02Wa.wav").write_bytes(b"RIFF two")
    assert bench.recorded_source(features) != bench.corpus_record(corpus)
    assert "--overwrite" in bench.extract_command(corpus, features.parent, None, overwrite=True)


@pytest.mark.slow
def test_bench_emodb_twice_in_a_row(emodb_dir: Path, repo_root: Path, tmp_path: Path) -> None:
    work = tmp_path / "bench"
    args = ("--emodb_dir", str(emodb_dir), "--epochs", "1", "--max_folds", "1", "--work_dir", str(work),
            "--no_figures", "--jobs", "2")
    first = run_bench(repo_root, *args)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    second = run_bench(repo_root, *args)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "Reusing" in second.stdout and "timnet extract" not in second.stdout

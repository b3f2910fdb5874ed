"""Leave-one-speaker-out end to end through the CLI, on tiny generated data with 3 speakers:
one fold per speaker, the fold names and files, and test mode on the LOSO run folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from timnet.features.files import write_npy_dict
from timnet.protocols import loso_splits

SPEAKERS = ("03", "11", "x_y")  # an underscore in a speaker id must survive the file name
CLASSES = ("angry", "happy", "sad")


def tiny_features(path: Path, with_speakers: bool = True) -> dict:
    """45 utterances x 24 frames x 39 MFCCs, speakers interleaved (not sorted) in the file."""
    rng = np.random.default_rng(0)
    n = 45
    labels = np.arange(n) % len(CLASSES)
    speakers = np.array([SPEAKERS[(i * 2 + i // 7) % 3] for i in range(n)])
    x = rng.normal(size=(n, 24, 39)).astype(np.float32)
    x += labels[:, None, None] * 0.8  # learnable a little
    y = np.eye(len(CLASSES), dtype=np.float32)[labels]
    data = {"x": x, "y": y, "class_labels": np.array(CLASSES)}
    if with_speakers:
        data["speaker"] = speakers
    write_npy_dict(path, data)
    return data


def run_cli(repo_root: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(repo_root / "Code" / "main.py"), *args]
    return subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=900)


def common(tmp: Path) -> list[str]:
    return ["--model_path", str(tmp / "models"), "--result_path", str(tmp / "results"), "--log_dir", str(tmp / "log"),
            "--histogram_freq", "0", "--no_figures", "--dilation_size", "2"]


def test_loso_splits_one_fold_per_speaker_sorted() -> None:
    speakers = np.array(["b", "a", "c", "a", "b", "c", "c"])
    splits = loso_splits(speakers, "data")
    assert [s.name for s in splits] == ["speaker a", "speaker b", "speaker c"]
    assert [s.fold for s in splits] == [1, 2, 3]
    for split in splits:
        held_out = split.name.removeprefix("speaker ")
        assert set(speakers[split.test]) == {held_out}
        assert held_out not in set(speakers[split.train])
        assert len(split.train) + len(split.test) == len(speakers)


def test_loso_train_then_test_on_the_run_folder(tmp_path: Path, repo_root: Path) -> None:
    data_file = tmp_path / "TINY.npy"
    data = tiny_features(data_file)
    speakers = data["speaker"]
    train = run_cli(repo_root, "--mode", "train", "--recipe", "paper", "--protocol", "loso", "--bidirection",
                    "--epoch", "2", "--batch_size", "16", "--data", str(data_file), *common(tmp_path))
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]

    runs = list((tmp_path / "models").iterdir())
    assert len(runs) == 1
    model_dir = runs[0]
    expected = [f"loso_weights_{i}_{s}" for i, s in enumerate(sorted(SPEAKERS), start=1)]
    assert sorted(p.stem for p in model_dir.glob("*.hdf5")) == expected
    assert sorted(p.stem for p in model_dir.glob("*.keras")) == expected

    result_dir = tmp_path / "results" / model_dir.name
    metrics = json.loads((result_dir / "metrics.json").read_text())
    assert [f["name"] for f in metrics["folds"]] == [f"speaker {s}" for s in sorted(SPEAKERS)]
    assert [f["n"] for f in metrics["folds"]] == [int(np.sum(speakers == s)) for s in sorted(SPEAKERS)]
    assert metrics["settings"]["protocol"] == "loso"
    history = json.loads((result_dir / "history.json").read_text())
    assert len(history) == 3
    assert all(len(h["epoch_time"]) == 2 and min(h["epoch_time"]) > 0 for h in history)
    predictions = np.load(result_dir / "predictions.npz")
    np.testing.assert_array_equal(predictions["index"], np.arange(len(speakers)))
    for fold, speaker in enumerate(sorted(SPEAKERS), start=1):
        assert set(speakers[predictions["fold"] == fold]) == {speaker}

    test = run_cli(repo_root, "--mode", "test", "--test_path", str(model_dir), "--data", str(data_file),
                   "--result_path", str(tmp_path / "test_results"), "--no_figures")
    assert test.returncode == 0, test.stdout[-3000:] + test.stderr[-3000:]
    (test_dir,) = list((tmp_path / "test_results").iterdir())
    tested = json.loads((test_dir / "metrics.json").read_text())
    assert [f["name"] for f in tested["folds"]] == [f["name"] for f in metrics["folds"]]
    # The saved weights are the evaluated ones: test mode reproduces training's figures.
    for got, want in zip(tested["folds"], metrics["folds"]):
        assert got["n"] == want["n"]
        assert got["WAR"] == pytest.approx(want["WAR"])
        assert got["UAR"] == pytest.approx(want["UAR"])
    tested_pred = np.load(test_dir / "predictions.npz")
    np.testing.assert_array_equal(tested_pred["y_pred"], predictions["y_pred"])
    np.testing.assert_allclose(tested_pred["probs"], predictions["probs"], atol=1e-5)


def test_loso_needs_speakers(tmp_path: Path, repo_root: Path) -> None:
    data_file = tmp_path / "NOSPK.npy"
    tiny_features(data_file, with_speakers=False)
    result = run_cli(repo_root, "--mode", "train", "--recipe", "paper", "--protocol", "loso", "--epoch", "1",
                     "--data", str(data_file), *common(tmp_path))
    assert result.returncode == 2
    assert "speaker" in result.stderr and str(data_file) in result.stderr
    assert not list(tmp_path.rglob("*.hdf5"))


def test_loso_test_mode_refuses_unknown_speaker(tmp_path: Path, repo_root: Path) -> None:
    """LOSO weights tested on a file without their speaker: one error line, no empty fold."""
    data_file = tmp_path / "TINY.npy"
    tiny_features(data_file)
    train = run_cli(repo_root, "--mode", "train", "--recipe", "paper", "--protocol", "loso", "--max_folds", "1",
                    "--epoch", "1", "--batch_size", "16", "--data", str(data_file), *common(tmp_path))
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    (model_dir,) = list((tmp_path / "models").iterdir())
    assert [p.name for p in model_dir.glob("*.hdf5")] == [f"loso_weights_1_{sorted(SPEAKERS)[0]}.hdf5"]
    other = tmp_path / "OTHER.npy"
    data = tiny_features(other)
    data["speaker"] = np.array([f"new{s}" for s in data["speaker"]])
    write_npy_dict(other, data)
    test = run_cli(repo_root, "--mode", "test", "--test_path", str(model_dir), "--data", str(other),
                   "--result_path", str(tmp_path / "test_results"), "--no_figures")
    assert test.returncode == 2
    assert "has no utterance" in test.stderr and str(other) in test.stderr
    assert not (tmp_path / "test_results").exists()

"""--mode predict and --mode export on a tiny trained model and generated recordings.

One softmax model is trained once (a 4-class feature file named IEMOCAP.npy, so that
an original-style weights file without metadata can take its labels from --data);
its windows are 8192 samples (T = 17 frames) at 22 050 Hz.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf

from timnet.cli import legacy as main
from timnet.features import mfcc
from timnet.features.files import write_npy_dict
from timnet.inference import featurise
from timnet.inference.predictor import Predictor

LENGTH = 8192  # samples per window -> 17 frames
CLASSES = ("angry", "happy", "neutral", "sad")  # IEMOCAP's class tuple
SHORT_S, LONG_S = 0.2, 1.5  # shorter and longer than the 0.37 s window


def _run(*argv: str) -> int:
    return main.main(list(argv))


def _latest(folder: Path, pattern: str = "predict_*") -> Path:
    return max(folder.glob(pattern), key=lambda p: p.stat().st_mtime_ns)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf8") as f:
        return list(csv.DictReader(f))


def _tone(sr: int, seconds: float, freq: float, seed: int) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    noise = np.random.default_rng(seed).standard_normal(len(t))
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * noise).astype(np.float32)


def _strip_metadata(src: Path, dst: Path) -> Path:
    """An original Keras 2 weights file: our layout without metadata or centroids."""
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "a") as f:
        del f.attrs["timnet_metadata"]
        if "timnet_centroids" in f:
            del f["timnet_centroids"]
    return dst


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("predict")
    rng = np.random.default_rng(0)
    n = 40
    labels = np.arange(n) % len(CLASSES)
    x = rng.standard_normal((n, mfcc.n_frames(LENGTH), 39)).astype(np.float32) * 5 + labels[:, None, None] * 3
    data = root / "IEMOCAP.npy"
    write_npy_dict(data, {"x": x, "y": np.eye(len(CLASSES), dtype=np.float32)[labels],
                          "mean_signal_length": LENGTH})
    assert _run("--mode", "train", "--data", str(data), "--model_path", str(root / "models"),
                "--result_path", str(root / "results"), "--loss", "ce", "--protocol", "holdout",
                "--epoch", "1", "--batch_size", "16", "--dilation_size", "2", "--histogram_freq", "0",
                "--no_figures") == 0
    run = next((root / "models").iterdir())
    wavs = root / "wavs"
    (wavs / "bad").mkdir(parents=True)
    for i, sr in enumerate((8000, 16000, 44100)):
        sf.write(wavs / f"short_{sr}.wav", _tone(sr, SHORT_S, 220 * (i + 1), i), sr)
        sf.write(wavs / f"long_{sr}.flac", _tone(sr, LONG_S, 330 * (i + 1), 10 + i), sr)
    sf.write(wavs / "bad" / "silent.wav", np.zeros(16000, np.float32), 16000)
    (wavs / "bad" / "empty.wav").write_bytes(b"")
    (wavs / "bad" / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot audio at all" * 4)
    (wavs / "notes.txt").write_text("not audio: skipped")
    return {"root": root, "data": data, "run": run, "wavs": wavs, "bad": wavs / "bad"}


def test_training_writes_a_complete_portable_file(setup: dict[str, Path]) -> None:
    from timnet.modelfiles import portable as portable_model

    meta = portable_model.read_portable_metadata(setup["run"] / "weights_best.keras")
    assert meta["class_labels"] == list(CLASSES)
    assert (meta["mean_signal_length"], meta["frames"], meta["n_mfcc"], meta["sample_rate"]) == (LENGTH, 17, 39, 22050)
    assert meta["head"] == "softmax" and meta["architecture"]["dilation_size"] == 2


def test_predict_folder_rows_scores_and_exit_code(setup: dict[str, Path]) -> None:
    out = setup["root"] / "out_folder"
    assert _run("--mode", "predict", "--test_path", str(setup["run"]), "--wav", str(setup["wavs"]),
                "--result_path", str(out)) == 0
    folder = _latest(out)
    rows = _read_csv(folder / "predictions.csv")
    assert list(rows[0]) == ["file", "status", "predicted", *CLASSES, "windows", "detail"]
    by_name = {Path(r["file"]).name: r for r in rows}
    assert "notes.txt" not in by_name and len(rows) == 9
    assert by_name["silent.wav"]["status"] == "silent"
    assert by_name["empty.wav"]["status"] == "empty"
    assert by_name["corrupt.wav"]["status"] == "unreadable" and by_name["corrupt.wav"]["detail"]
    for name in ("silent.wav", "empty.wav", "corrupt.wav"):
        assert by_name[name]["predicted"] == "" and by_name[name]["angry"] == ""
    predictor = Predictor.load(setup["run"])
    for name, row in by_name.items():
        if name.startswith(("short", "long")):
            assert row["status"] == "ok"
            probs = np.array([float(row[c]) for c in CLASSES])
            assert probs.sum() == pytest.approx(1.0, abs=1e-5)
            assert row["predicted"] == CLASSES[int(np.argmax(probs))]
            # the model's own preprocessing: the centred 8192-sample window, 39 MFCCs
            expected = predictor.score_features(mfcc.get_mfcc(row["file"], LENGTH, 39)[None])[0]
            np.testing.assert_allclose(probs, expected, atol=1e-5)
    doc = json.loads((folder / "predictions.json").read_text())
    assert doc["class_labels"] == list(CLASSES) and doc["score"] == "probability"
    assert doc["preprocessing"]["mean_signal_length"] == LENGTH and doc["scored"] == 6
    for item in doc["files"]:
        row = next(r for r in rows if r["file"] == item["file"])
        assert item["status"] == row["status"]
        if item["scores"]:
            assert item["scores"]["sad"] == pytest.approx(float(row["sad"]), abs=1e-6)


def test_predict_exit_codes(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    out = setup["root"] / "out_codes"
    assert _run("--mode", "predict", "--test_path", str(setup["run"]), "--wav", str(setup["bad"]),
                "--result_path", str(out)) == 2
    assert "no file could be scored" in capsys.readouterr().err
    assert {r["status"] for r in _read_csv(_latest(out) / "predictions.csv")} == {"silent", "empty", "unreadable"}
    missing = setup["root"] / "nowhere.wav"
    before = sorted(out.iterdir())
    assert _run("--mode", "predict", "--test_path", str(setup["run"]), "--wav", str(missing),
                "--result_path", str(out)) == 2
    err = capsys.readouterr().err
    assert "--wav" in err and "no such file" in err
    assert sorted(out.iterdir()) == before  # no results folder for a --wav that does not exist
    assert _run("--mode", "predict", "--test_path", str(setup["run"]), "--result_path", str(out)) == 2
    assert "--wav" in capsys.readouterr().err
    assert _run("--mode", "predict", "--wav", str(setup["wavs"]), "--result_path", str(out)) == 2
    assert "--test_path" in capsys.readouterr().err


def test_window_hop_scores_every_window(setup: dict[str, Path]) -> None:
    out = setup["root"] / "out_windows"
    hop = 0.25
    assert _run("--mode", "predict", "--test_path", str(setup["run"]), "--wav", str(setup["wavs"]),
                "--window_hop", str(hop), "--result_path", str(out)) == 0
    folder = _latest(out)
    doc = json.loads((folder / "predictions.json").read_text())
    windows_csv = _read_csv(folder / "windows.csv")
    rows = {r["file"]: r for r in _read_csv(folder / "predictions.csv")}
    for item in doc["files"]:
        if item["status"] != "ok":
            continue
        n_samples = len(mfcc.load_signal(item["file"]))
        starts = featurise.window_starts(n_samples, LENGTH, round(hop * 22050))
        assert len(item["windows"]) == len(starts) == int(rows[item["file"]]["windows"])
        assert [w["start_s"] for w in item["windows"]] == [round(s / 22050, 4) for s in starts]
        mean = np.mean([[w["scores"][c] for c in CLASSES] for w in item["windows"]], axis=0)
        np.testing.assert_allclose([item["scores"][c] for c in CLASSES], mean, atol=1e-6)
        assert sum(1 for w in windows_csv if w["file"] == item["file"]) == len(starts)
        if Path(item["file"]).name.startswith("long"):
            assert len(starts) > 1 and starts[-1] + LENGTH == n_samples
        else:
            assert len(starts) == 1
    assert next(f for f in doc["files"] if f["file"].endswith("silent.wav"))["status"] == "silent"


def test_window_starts() -> None:
    assert featurise.window_starts(100, 200, 50) == [0]
    assert featurise.window_starts(200, 200, 50) == [0]
    assert featurise.window_starts(330, 200, 50) == [0, 50, 100, 130]
    assert featurise.window_starts(300, 200, 50) == [0, 50, 100]


def test_cli_with_forked_workers_matches_one_process(setup: dict[str, Path], repo_root: Path) -> None:
    """The command line featurises before loading TensorFlow, in forked workers from
    PARALLEL_MIN_FILES files on: same rows as one process."""
    folder = setup["root"] / "many"
    folder.mkdir()
    sources = sorted(p for p in setup["wavs"].rglob("*") if p.suffix in (".wav", ".flac"))
    for k in range(featurise.PARALLEL_MIN_FILES // len(sources) + 2):
        for src in sources:
            (folder / f"{k}_{src.name}").write_bytes(src.read_bytes())
    out = setup["root"] / "out_many"
    proc = subprocess.run([sys.executable, "Code/main.py", "--mode", "predict", "--test_path", str(setup["run"]),
                           "--wav", str(folder), "--window_hop", "0.3", "--jobs", "2", "--result_path", str(out)],
                          cwd=repo_root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = _read_csv(_latest(out) / "predictions.csv")
    assert len(rows) >= featurise.PARALLEL_MIN_FILES
    one = Predictor.load(setup["run"]).predict_files([r["file"] for r in rows], window_hop=0.3, jobs=1)
    for row, ref in zip(rows, one):
        assert (row["file"], row["status"], row["predicted"]) == (ref.file, ref.status, ref.predicted)
        if ref.ok:
            np.testing.assert_allclose([float(row[c]) for c in CLASSES], ref.scores, atol=1e-5)


def test_keras_file_alone_reproduces_test_mode(setup: dict[str, Path]) -> None:
    """--mode test with the run's weights .hdf5 and with its .keras: same predictions."""
    results = {}
    for suffix in ("hdf5", "keras"):
        out = setup["root"] / f"test_{suffix}"
        assert _run("--mode", "test", "--test_path", str(setup["run"] / f"weights_best.{suffix}"),
                    "--data", str(setup["data"]), "--result_path", str(out), "--no_figures") == 0
        results[suffix] = np.load(next(out.glob("*/predictions.npz")))
    assert len(results["hdf5"]["probs"]) == 40
    np.testing.assert_allclose(results["hdf5"]["probs"], results["keras"]["probs"], atol=1e-6)
    np.testing.assert_array_equal(results["hdf5"]["y_pred"], results["keras"]["y_pred"])


def test_export_original_softmax_file_and_predict(setup: dict[str, Path]) -> None:
    """An original weights file (no metadata) -> .keras with --data's labels -> predict."""
    legacy = _strip_metadata(setup["run"] / "weights_best.hdf5", setup["root"] / "original_softmax.hdf5")
    exported = setup["root"] / "exported_softmax.keras"
    assert _run("--mode", "export", "--test_path", str(legacy), "--data", "IEMOCAP", "--output", str(exported)) == 0
    from timnet.modelfiles import portable as portable_model

    meta = portable_model.read_portable_metadata(exported)
    assert meta["class_labels"] == list(CLASSES) and meta["mean_signal_length"] == 310000  # IEMOCAP's length
    out = setup["root"] / "out_exported"
    scores = {}
    for source in (legacy, exported):
        argv = ["--mode", "predict", "--test_path", str(source), "--wav", str(setup["wavs"]), "--result_path",
                str(out / source.suffix[1:])]
        assert _run(*argv, "--data", "IEMOCAP") == 0
        scores[source.suffix] = {r["file"]: r for r in _read_csv(_latest(out / source.suffix[1:]) / "predictions.csv")}
    assert scores[".hdf5"].keys() == scores[".keras"].keys()
    for name, row in scores[".keras"].items():
        assert row["status"] == scores[".hdf5"][name]["status"]
        if row["status"] == "ok":
            np.testing.assert_allclose([float(row[c]) for c in CLASSES],
                                       [float(scores[".hdf5"][name][c]) for c in CLASSES], atol=1e-5)


def test_export_embedding_model_computes_centroids(setup: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    from timnet.modelfiles import keras2 as legacy_weights
    from timnet.modelfiles import portable as portable_model
    from timnet.network import layers as TIMNET

    model = TIMNET.build_timnet_model((mfcc.n_frames(LENGTH), 39), len(CLASSES), head="embedding",
                                      dilation_size=2, bidirection=False)
    original = legacy_weights.write_weight_file(model, setup["root"] / "emb" / "weights_best.hdf5")
    _strip_metadata(original, original)
    out = setup["root"] / "out_emb"
    # No centroids: predict refuses with the fix in one line.
    assert _run("--mode", "predict", "--test_path", str(original), "--wav", str(setup["wavs"]),
                "--data", "IEMOCAP", "--result_path", str(out)) == 2
    assert "--mode export" in capsys.readouterr().err
    exported = setup["root"] / "emb.keras"
    assert _run("--mode", "export", "--test_path", str(original), "--data", str(setup["data"]),
                "--output", str(exported)) == 0
    assert "training-set centroids" in capsys.readouterr().out
    meta = portable_model.read_portable_metadata(exported)
    assert np.asarray(meta["centroids"]).shape == (len(CLASSES), 39)
    assert meta["mean_signal_length"] == LENGTH  # from the feature file's 17 frames
    assert _run("--mode", "predict", "--test_path", str(exported), "--wav", str(setup["wavs"]),
                "--result_path", str(out)) == 0
    doc = json.loads((_latest(out) / "predictions.json").read_text())
    assert doc["head"] == "embedding" and doc["score"].startswith("cosine")
    for item in doc["files"]:
        if item["status"] == "ok":
            assert all(-1.0 - 1e-6 <= v <= 1.0 + 1e-6 for v in item["scores"].values())

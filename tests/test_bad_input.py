"""Bad input to ``main.py``: exit code 2, one ``error:`` line naming the file, nothing written.

Most cases call ``main.main`` in this process (quick); two run the real command line to check
the process exit code and that stderr holds nothing but the error line.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from helpers import FAST, TINY_LABELS, run_cli, write_tiny
from timnet.cli import legacy as main
from timnet.features.corpora import CLASS_LABELS
from timnet.features.files import read_npy, write_npy_dict

FRAMES = 12  # within the receptive field of every network below: no warning on stderr


@pytest.fixture(autouse=True)
def _no_global_determinism(monkeypatch: pytest.MonkeyPatch) -> None:
    """run.seed_everything would switch on TensorFlow's op determinism for the whole test
    process; seeding is enough here."""
    import keras

    from timnet.training import run

    monkeypatch.setattr(run, "seed_everything", keras.utils.set_random_seed)


def _weights(folder: Path, *, dilation_size: int = 2, num_classes: int = 5, head: str = "softmax",
             n_mfcc: int = 39, class_labels: tuple[str, ...] | None = None, portable: bool = False) -> Path:
    """A trained-run folder holding one model (untrained weights: the shapes are what matters)."""
    from timnet.modelfiles import keras2 as legacy_weights
    from timnet.modelfiles import portable as portable_model
    from timnet.network.layers import build_timnet_model

    model = build_timnet_model((FRAMES, n_mfcc), num_classes, head=head, dilation_size=dilation_size)
    labels = list(class_labels or [f"c{i}" for i in range(num_classes)])
    meta = {"head": head, "num_classes": num_classes, "class_labels": labels, "data": "toy"}
    centroids = np.zeros((num_classes, 39), np.float32) if head == "embedding" else None
    folder.mkdir(parents=True, exist_ok=True)
    if portable:
        return portable_model.save_portable(model, folder / "model.keras", {**meta, "centroids": centroids})
    return legacy_weights.write_weight_file(model, folder / "weights_best.hdf5", meta, centroids=centroids)


def _data(tmp: Path, name: str = "toy.npy", **kwargs) -> Path:
    return write_tiny(tmp / name, n=20, frames=FRAMES, **kwargs)


# Each case: (build files in tmp and return argv, substrings the error line must hold).
Case = Callable[[Path], tuple[list[str], list[str]]]


def _missing(tmp: Path):
    return ["--data", str(tmp / "missing.npy")], [str(tmp / "missing.npy"), "not found"]


def _unknown_name(tmp: Path):
    return ["--data", "NO_SUCH_CORPUS"], ["NO_SUCH_CORPUS.npy", "not found", "expected a .npy feature file"]


def _not_a_dict(tmp: Path):
    np.save(tmp / "array.npy", np.zeros((4, 39), np.float32))
    return ["--data", str(tmp / "array.npy")], [str(tmp / "array.npy"), "expected a dict"]


def _not_npy(tmp: Path):
    (tmp / "text.npy").write_text("x,y\n1,2\n")
    return ["--data", str(tmp / "text.npy")], [str(tmp / "text.npy"), "not a valid .npy"]


def _x_2d(tmp: Path):
    write_npy_dict(tmp / "flat.npy", {"x": np.zeros((6, 39), np.float32), "y": np.eye(3)[[0, 1, 2, 0, 1, 2]],
                                       "class_labels": np.array(["a", "b", "c"])})
    return ["--data", str(tmp / "flat.npy")], [str(tmp / "flat.npy"), "'x' must have shape"]


def _length_mismatch(tmp: Path):
    write_npy_dict(tmp / "short.npy", {"x": np.zeros((6, FRAMES, 39), np.float32), "y": np.eye(3)[[0, 1, 2, 0, 1]],
                                        "class_labels": np.array(["a", "b", "c"])})
    return ["--data", str(tmp / "short.npy")], [str(tmp / "short.npy"), "6 utterances", "5"]


def _not_one_hot(tmp: Path):
    y = np.eye(3)[[0, 1, 2, 0, 1, 2]]
    y[2] = [0.2, 0.3, 0.5]
    write_npy_dict(tmp / "soft.npy", {"x": np.zeros((6, FRAMES, 39), np.float32), "y": y,
                                       "class_labels": np.array(["a", "b", "c"])})
    return ["--data", str(tmp / "soft.npy")], [str(tmp / "soft.npy"), "not one-hot"]


def _no_class_tuple(tmp: Path):
    path = _data(tmp, "mystery.npy", class_labels=None, n_classes=4)
    return ["--data", str(path)], [str(path), "unknown class names"]


def _wrong_class_count(tmp: Path):
    path = _data(tmp, "EMODB.npy", class_labels=None, n_classes=5)  # EMO-DB has 7 classes
    return ["--data", str(path)], [str(path), "5 classes", "7"]


def _loso_without_speakers(tmp: Path):
    path = _data(tmp, speakers=0)
    return ["--data", str(path), "--protocol", "loso"], [str(path), "speaker"]


def _too_many_folds(tmp: Path):
    path = _data(tmp)
    return ["--data", str(path), "--protocol", "kfold", "--split_fold", "50"], ["--split_fold 50", "20"]


TRAIN_CASES: dict[str, Case] = {
    "missing_npy": _missing, "unknown_data_name": _unknown_name, "not_a_dict": _not_a_dict,
    "not_npy": _not_npy, "x_2d": _x_2d, "length_mismatch": _length_mismatch, "not_one_hot": _not_one_hot,
    "no_class_tuple": _no_class_tuple, "wrong_class_count": _wrong_class_count,
    "loso_without_speakers": _loso_without_speakers, "too_many_folds": _too_many_folds,
}


def _no_weights(tmp: Path):
    (tmp / "run").mkdir()
    (tmp / "run" / "notes.txt").write_text("nothing here")
    return ["--data", str(_data(tmp)), "--test_path", str(tmp / "run")], [str(tmp / "run"), "no weights found"]


def _no_such_test_path(tmp: Path):
    return ["--data", str(_data(tmp)), "--test_path", str(tmp / "gone")], [str(tmp / "gone"), "no such file"]


def _corrupt_weights(tmp: Path):
    (tmp / "run").mkdir()
    (tmp / "run" / "weights_best.hdf5").write_bytes(b"not hdf5 at all")
    return (["--data", str(_data(tmp)), "--test_path", str(tmp / "run")],
            [str(tmp / "run" / "weights_best.hdf5"), "HDF5"])


def _other_dilations(tmp: Path):
    weights = _weights(tmp / "run", dilation_size=3)
    return (["--data", str(_data(tmp)), "--test_path", str(tmp / "run"), "--dilation_size", "5"],
            [str(weights), "--dilation_size 5", "3 dilations"])


def _other_dilations_keras(tmp: Path):
    model = _weights(tmp / "run", dilation_size=3, portable=True)
    return (["--data", str(_data(tmp)), "--test_path", str(model), "--dilation_size", "5"],
            [str(model), "--dilation_size 5", "has 3"])


def _seven_classes_on_five(tmp: Path):
    weights = _weights(tmp / "run", num_classes=7)
    data = _data(tmp)
    return (["--data", str(data), "--test_path", str(tmp / "run")],  # classes are matched by name
            [str(weights), "no class in common", "5 classes", str(data), "against 7"])


def _other_class_names(tmp: Path):
    weights = _weights(tmp / "run", head="embedding", class_labels=("a", "b", "c", "d", "e"))
    data = _data(tmp)
    return (["--data", str(data), "--test_path", str(tmp / "run")], [str(weights), "no class in common", str(data)])


def _other_mfcc_count(tmp: Path):
    weights = _weights(tmp / "run", n_mfcc=20)
    data = _data(tmp)
    return (["--data", str(data), "--test_path", str(tmp / "run")], [str(weights), "20", "39"])


TEST_CASES: dict[str, Case] = {
    "no_weights": _no_weights, "no_such_test_path": _no_such_test_path, "corrupt_weights": _corrupt_weights,
    "other_dilations": _other_dilations, "other_dilations_keras": _other_dilations_keras,
    "seven_classes_on_five": _seven_classes_on_five, "other_class_names": _other_class_names,
    "other_mfcc_count": _other_mfcc_count, "missing_npy": _missing, "x_2d": _x_2d,
}


# --- impossible settings: refused where the configuration is built, before anything loads ---

CONFIG_CASES: dict[str, tuple[list[str], list[str]]] = {
    "filter_size_0": (["--filter_size", "0"], ["--filter_size 0", "between 1 and"]),
    "kernel_size_0": (["--kernel_size", "0"], ["--kernel_size 0", "between 1 and"]),
    "stack_size_0": (["--stack_size", "0"], ["--stack_size 0", "between 1 and"]),
    "dilation_size_0": (["--dilation_size", "0"], ["--dilation_size 0", "between 1 and"]),
    "activation_foo": (["--activation", "foo"], ["--activation foo", "choose from", "relu"]),
    "batch_size_0": (["--batch_size", "0"], ["--batch_size 0", "between 1 and"]),
    "batch_size_negative": (["--batch_size", "-8"], ["--batch_size -8", "between 1 and"]),
    "random_seed_negative": (["--random_seed", "-1"], ["--random_seed -1", "between 0 and"]),
    "lr_nan": (["--lr", "nan"], ["--lr nan", "finite"]),
    "lr_negative": (["--lr", "-0.01"], ["--lr -0.01", "positive"]),
    "lr_not_a_number": (["--lr", "fast"], ["--lr", "'fast'", "expected a number"]),
    "dropout_1.5": (["--dropout", "1.5"], ["--dropout 1.5", "[0, 1)"]),
    "label_smoothing_2": (["--label_smoothing", "2"], ["--label_smoothing 2", "[0, 1)"]),
    "beta2_1": (["--beta2", "1"], ["--beta2 1", "[0, 1)"]),
    "epoch_0": (["--epoch", "0"], ["--epoch 0", "between 1 and"]),
    "split_fold_1": (["--split_fold", "1"], ["--split_fold 1", "between 2 and"]),
    "max_folds_0": (["--max_folds", "0"], ["--max_folds 0", "between 1 and"]),
    "first_fold_0": (["--first_fold", "0"], ["--first_fold 0", "between 1 and"]),
    "first_fold_beyond": (["--protocol", "kfold", "--split_fold", "2", "--first_fold", "3"],
                          ["--first_fold 3", "number of folds (2)"]),
    "histogram_freq_negative": (["--histogram_freq", "-1"], ["--histogram_freq -1", "between 0 and"]),
    "gpu_not_an_index": (["--gpu", "a,b"], ["--gpu a,b", "GPU index"]),
    "abbreviated_flag": (["--dil", "4"], ["unrecognized arguments: --dil 4"]),
    "data_not_npy": (["--data", "feat.csv"], ["--data feat.csv", ".npy"]),
    "recipe_foo": (["--recipe", "foo"], ["--recipe foo", "seed, paper"]),
}


def _config_case(flags: list[str], expected: list[str]) -> Case:
    return lambda tmp: (["--data", str(_data(tmp)), *flags], expected)


# --- feature files a training cannot use -------------------------------------------------


def _toy(tmp: Path, name: str, labels: list[int], frames: int = FRAMES, classes: tuple[str, ...] = TINY_LABELS,
         **keys: np.ndarray) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(len(labels), frames, 39)).astype(np.float32)
    data = {"x": x, "y": np.eye(len(classes), dtype=np.float32)[labels], "class_labels": np.array(classes), **keys}
    return write_npy_dict(tmp / name, data)


def _nan_features(tmp: Path):
    labels = [i % 5 for i in range(40)]
    path = _toy(tmp, "nan.npy", labels, path=np.array([f"wav/{i}.wav" for i in range(40)]))
    data = read_npy(path)
    data["x"][3, 2, 1] = np.nan
    data["x"][7, 0, 0] = np.nan
    write_npy_dict(path, data)
    return ["--data", str(path)], [str(path), "utterance 3 (wav/3.wav)", "nan", "2 utterance(s)", "re-extract"]


def _inf_features(tmp: Path):
    path = _toy(tmp, "inf.npy", [i % 5 for i in range(40)])
    data = read_npy(path)
    data["x"][5, 1, 1] = -np.inf
    write_npy_dict(path, data)
    return ["--data", str(path)], [str(path), "utterance 5 ", "-inf"]


def _one_class(tmp: Path):
    path = _toy(tmp, "single.npy", [0] * 40, classes=("angry",))
    return ["--data", str(path)], [str(path), "at least two classes", "only angry (40)"]


def _one_class_present(tmp: Path):
    path = _toy(tmp, "onlysad.npy", [3] * 40)
    return ["--data", str(path)], [str(path), "at least two classes", "only sad (40)"]


def _one_frame(tmp: Path):
    path = _toy(tmp, "short.npy", [i % 5 for i in range(40)], frames=1)
    return ["--data", str(path)], [str(path), "1 frame(s)", "at least 2", "--mean_signal_length"]


def _no_mfcc(tmp: Path):
    write_npy_dict(tmp / "empty.npy", {"x": np.zeros((40, FRAMES, 0), np.float32), "y": np.eye(5)[np.arange(40) % 5],
                                        "class_labels": np.array(TINY_LABELS)})
    return ["--data", str(tmp / "empty.npy")], [str(tmp / "empty.npy"), "n_mfcc >= 1"]


def _rare_class_kfold(tmp: Path):
    path = _toy(tmp, "rare.npy", [0] * 20 + [1] * 19 + [2])
    return (["--data", str(path), "--protocol", "kfold", "--split_fold", "5"],
            [str(path), "class 'neutral' (1 utterance(s))", "training part of fold", "fewer folds (--split_fold)"])


def _holdout_too_small(tmp: Path):
    path = _toy(tmp, "twenty.npy", [i % 5 for i in range(20)])
    return ["--data", str(path)], [str(path), "validates on 2 utterance(s) of 20", "at least 4", "--protocol kfold"]


def _loso_class_of_one_speaker(tmp: Path):
    labels = [i % 3 for i in range(30)]
    speakers = np.array([("s0" if label == 2 else f"s{1 + i % 2}") for i, label in enumerate(labels)])
    path = _toy(tmp, "speakers.npy", labels, speaker=speakers)
    return (["--data", str(path), "--protocol", "loso"],
            [str(path), "class 'neutral'", "training part of speaker s0", "--protocol kfold or holdout"])


# --- output folders that cannot be written --------------------------------------------------


def _model_path_under_a_file(tmp: Path):
    (tmp / "notes.txt").write_text("a file")
    return (["--data", str(_data(tmp)), "--model_path", str(tmp / "notes.txt" / "models")],
            ["--model_path", str(tmp / "notes.txt"), "is a file, not a folder"])


def _log_dir_unwritable(tmp: Path):
    return (["--data", str(_data(tmp)), "--log_dir", "/sys/timnet_log"],
            ["--log_dir /sys/timnet_log", "cannot write in /sys", "choose a folder"])


def _result_path_unwritable(tmp: Path):
    return (["--data", str(_data(tmp)), "--result_path", "/sys/timnet_results"],
            ["--result_path /sys/timnet_results", "cannot write in /sys"])


TRAIN_CASES.update({name: _config_case(*case) for name, case in CONFIG_CASES.items()})
TRAIN_CASES.update({
    "nan_features": _nan_features, "inf_features": _inf_features, "one_class": _one_class,
    "one_class_present": _one_class_present, "one_frame": _one_frame, "no_mfcc": _no_mfcc, "rare_class_kfold": _rare_class_kfold,
    "holdout_too_small": _holdout_too_small, "loso_class_of_one_speaker": _loso_class_of_one_speaker,
    "model_path_under_a_file": _model_path_under_a_file, "log_dir_unwritable": _log_dir_unwritable,
    "result_path_unwritable": _result_path_unwritable,
})


def _test_nan_features(tmp: Path):
    _weights(tmp / "run")
    argv, expected = _nan_features(tmp)
    return [*argv, "--test_path", str(tmp / "run")], expected


def _malformed_keras_metadata(tmp: Path):
    broken = tmp / "broken.keras"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("timnet.json", "{not json")
    return (["--data", str(_data(tmp)), "--test_path", str(broken)], [str(broken), "malformed timnet.json"])


def _other_keras_model(tmp: Path):
    import keras

    other = tmp / "dense.keras"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(other)
    return (["--data", str(_data(tmp)), "--test_path", str(other)], [str(other), "not a TIM-Net model file"])


def _loss_against_head(tmp: Path):
    weights = _weights(tmp / "run", head="embedding", class_labels=TINY_LABELS)
    return (["--data", str(_data(tmp)), "--test_path", str(tmp / "run"), "--loss", "ce"],
            [str(weights), "--loss ce but the weights file has the embedding (N-pair) head"])


TEST_CASES.update({
    "loss_against_head": _loss_against_head, "nan_features": _test_nan_features, "malformed_keras_metadata": _malformed_keras_metadata,
    "other_keras_model": _other_keras_model,
    "result_path_unwritable": lambda tmp: (["--data", str(_data(tmp)), "--test_path", str(_weights(tmp / "run")),
                                            "--result_path", "/sys/timnet_results"],
                                           ["--result_path /sys/timnet_results", "cannot write"]),
})


def _check_error(rc: int, err: str, expected: list[str]) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), f"stderr must be one error line, got:\n{err}"
    for part in expected:
        assert part in lines[0], f"{part!r} not in {lines[0]!r}"
    return lines[0]


def _outputs(tmp: Path) -> list[str]:
    return ["--model_path", str(tmp / "out" / "models"), "--result_path", str(tmp / "out" / "results"),
            "--log_dir", str(tmp / "out" / "log"), *FAST, "--epoch", "1"]


def _written(tmp: Path) -> list[Path]:
    return [p for p in (tmp / "out").rglob("*")] if (tmp / "out").exists() else []


def _main(argv: list[str]) -> int:
    """``main.py ARGV`` in this process; argparse's own errors exit through SystemExit."""
    try:
        return main.main(argv)
    except SystemExit as exc:
        return int(exc.code)


@pytest.mark.parametrize("case", list(TRAIN_CASES))
def test_bad_training_input(case: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv, expected = TRAIN_CASES[case](tmp_path)
    rc = _main(["--mode", "train", *_outputs(tmp_path), *argv])  # the case's flags win
    _check_error(rc, capsys.readouterr().err, expected)
    assert _written(tmp_path) == [], "a failed training left files or folders behind"


@pytest.mark.parametrize("case", list(TEST_CASES))
def test_bad_test_input(case: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv, expected = TEST_CASES[case](tmp_path)
    rc = _main(["--mode", "test", *_outputs(tmp_path), "--no_figures", *argv])
    _check_error(rc, capsys.readouterr().err, expected)
    assert _written(tmp_path) == [], "a failed test left files or folders behind"


# TensorFlow's C++ runtime writes a few lines to stderr when it loads, before Python can stop it.
_RUNTIME_NOISE = re.compile(r"^([IWEF]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] |WARNING: All log messages before absl|"
                            r"To enable the following instructions)")


def test_cli_process_missing_file(tmp_path: Path) -> None:
    """Bad data fails before TensorFlow loads: stderr is exactly the error line."""
    argv, expected = _missing(tmp_path)
    proc = run_cli(["--mode", "train", *argv, *_outputs(tmp_path)], cwd=tmp_path)
    _check_error(proc.returncode, proc.stderr, expected)
    assert _written(tmp_path) == []


def test_cli_process_wrong_architecture(tmp_path: Path) -> None:
    argv, expected = _other_dilations(tmp_path)
    proc = run_cli(["--mode", "test", *argv, *_outputs(tmp_path)], cwd=tmp_path)
    err = "\n".join(line for line in proc.stderr.splitlines() if not _RUNTIME_NOISE.match(line))
    _check_error(proc.returncode, err, expected)
    assert _written(tmp_path) == []


# --- predict, export, extract, mix: the same rules ------------------------------------------


def _wav(path: Path) -> Path:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(4000, np.float32), 16000)
    return path


def _existing_export(tmp: Path):
    (tmp / "model.keras").write_bytes(b"keep me")
    return (["--test_path", str(_weights(tmp / "run")), "--output", str(tmp / "model.keras")],
            [f"--output {tmp / 'model.keras'}", "exists", "--overwrite"])


def _export_malformed(tmp: Path):
    argv, expected = _malformed_keras_metadata(tmp)
    return [argv[2], argv[3], "--output", str(tmp / "out.keras")], expected


def _export_other_keras(tmp: Path):
    argv, expected = _other_keras_model(tmp)
    return [argv[2], argv[3], "--output", str(tmp / "out.keras")], expected


def _export_embedding_without_centroids(tmp: Path):
    from timnet.modelfiles import keras2 as legacy_weights
    from timnet.network.layers import build_timnet_model

    model = build_timnet_model((FRAMES, 39), 5, head="embedding", dilation_size=2)
    (tmp / "run").mkdir()
    weights = legacy_weights.write_weight_file(model, tmp / "run" / "weights_best.hdf5",
                                               {"head": "embedding", "class_labels": list(TINY_LABELS)})
    return (["--test_path", str(weights), "--data", str(tmp / "gone.npy"), "--output", str(tmp / "out.keras")],
            [str(weights), "without class centroids", str(tmp / "gone.npy"), "not found"])


def _export_unwritable(tmp: Path):
    return (["--test_path", str(_weights(tmp / "run")), "--output", "/sys/timnet.keras"],
            ["--output /sys/timnet.keras", "cannot write in /sys"])


def _predict_unwritable(tmp: Path):
    return (["--mode", "predict", "--test_path", str(_weights(tmp / "run", portable=True)), "--wav",
             str(_wav(tmp / "a.wav")), "--result_path", "/sys/timnet_predict"],
            ["--result_path /sys/timnet_predict", "cannot write"])


MODEL_FILE_CASES: dict[str, Case] = {
    "export_existing_output": _existing_export, "export_malformed_metadata": _export_malformed,
    "export_other_keras_model": _export_other_keras,
    "export_embedding_without_centroids": _export_embedding_without_centroids,
    "export_unwritable_output": _export_unwritable,
}


@pytest.mark.parametrize("case", [*MODEL_FILE_CASES, "predict_unwritable"])
def test_bad_model_file_command(case: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    if case == "predict_unwritable":
        argv, expected = _predict_unwritable(tmp_path)
    else:
        argv, expected = MODEL_FILE_CASES[case](tmp_path)
        argv = ["--mode", "export", *argv]
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    rc = _main(argv)
    _check_error(rc, capsys.readouterr().err, expected)
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before, "a failed command wrote, removed or changed a file"


def _feature_folder(tmp: Path) -> Path:
    folder = tmp / "MFCC"
    folder.mkdir()
    write_tiny(folder / "EMODB.npy", class_labels=CLASS_LABELS["EMODB"], n=14, n_classes=7, frames=FRAMES)
    return folder


def test_mix_refuses_nan_features(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from timnet.cli.features import mix_main

    folder = _feature_folder(tmp_path)
    data = read_npy(folder / "EMODB.npy")
    data["x"][4, 0, 0] = np.nan
    data["path"] = np.array([f"wav/{i}.wav" for i in range(14)])
    write_npy_dict(folder / "EMODB.npy", data)
    _check_error(mix_main(["--mfcc_dir", str(folder)]), capsys.readouterr().err,
                 [str(folder / "EMODB.npy"), "utterance 4 (wav/4.wav)", "nan"])
    assert sorted(p.name for p in folder.iterdir()) == ["EMODB.npy"]


def test_mix_replaces_only_its_default_output(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from timnet.cli import main as timnet_main

    folder = _feature_folder(tmp_path)
    mine = tmp_path / "mine.npy"
    mine.write_bytes(b"keep me")
    _check_error(timnet_main(["mix", "--mfcc_dir", str(folder), "--output", str(mine)]), capsys.readouterr().err,
                 [f"--output {mine}", "exists", "--overwrite"])
    assert mine.read_bytes() == b"keep me"
    assert timnet_main(["mix", "--mfcc_dir", str(folder)]) == 0
    assert timnet_main(["mix", "--mfcc_dir", str(folder)]) == 0  # the seed's own output: replaced, and said
    assert "replaced the earlier INTERSECT.npy (8 utterances)" in capsys.readouterr().out
    assert timnet_main(["mix", "--mfcc_dir", str(folder), "--output", str(mine), "--overwrite"]) == 0
    assert len(read_npy(mine)["x"]) == 8


@pytest.mark.parametrize("flags, expected", [
    ([], ["EMODB.npy", "exists", "--overwrite"]),
    (["--mean_signal_length", "100", "--name", "NEW"], ["--mean_signal_length 100", "1 frame(s)", "512"]),
    (["--output", "/sys/timnet_mfcc", "--name", "NEW"], ["--output /sys/timnet_mfcc", "cannot write"]),
])
def test_bad_extraction(flags: list[str], expected: list[str], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from timnet.cli import main as timnet_main

    folder = _feature_folder(tmp_path)
    _wav(tmp_path / "emodb" / "wav" / "03a01Wa.wav")
    before = (folder / "EMODB.npy").read_bytes()
    rc = timnet_main(["extract", "--corpus", "EMODB", "--input", str(tmp_path / "emodb"), "--output", str(folder),
                      "--jobs", "1", "--no_progress", *flags])
    _check_error(rc, capsys.readouterr().err, expected)
    assert sorted(p.name for p in folder.iterdir()) == ["EMODB.npy"]
    assert (folder / "EMODB.npy").read_bytes() == before


@pytest.mark.parametrize("command, expected", [
    (["figures", "architecture", "--output", "/sys/timnet.png"], ["--output /sys/timnet.png", "cannot write in /sys"]),
    (["demo-corpus", "--output", "/sys/timnet_demo"], ["--output /sys/timnet_demo", "cannot write in /sys"]),
    (["mix", "--mfcc_dir", "/sys"], ["--mfcc_dir /sys/INTERSECT.npy", "cannot write in /sys"]),
])
def test_unwritable_outputs_of_other_commands(command: list[str], expected: list[str],
                                              capsys: pytest.CaptureFixture) -> None:
    from timnet.cli import main as timnet_main

    _check_error(timnet_main(command), capsys.readouterr().err, expected)


# --- run folders, devices, Ctrl-C ---------------------------------------------------------


def test_run_folders_are_created_exclusively(tmp_path: Path) -> None:
    from timnet import paths

    wanted = [tmp_path / "models" / "toy_46_t", tmp_path / "results" / "toy_46_t", tmp_path / "log" / "t"]
    first = paths.create_exclusive(wanted)
    assert first == wanted and all(p.is_dir() for p in wanted)
    (tmp_path / "results" / "toy_46_t_2").mkdir()  # taken by some other run: skipped for all three
    assert [p.name for p in paths.create_exclusive(wanted)] == ["toy_46_t_3", "toy_46_t_3", "t_3"]
    paths.remove_empty(first)
    assert not any(p.exists() for p in first)
    same = [tmp_path / "runs" / "toy_46_t", tmp_path / "runs" / "toy_46_t", tmp_path / "log" / "t"]  # one folder twice
    assert paths.create_exclusive(same) == same
    assert paths.create_exclusive(same) == [tmp_path / "runs" / "toy_46_t_2"] * 2 + [tmp_path / "log" / "t_2"]


def test_two_trainings_in_the_same_second_keep_their_own_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture) -> None:
    """The second run's name is taken: it writes to ``..._2`` and the first run's files stay."""
    from timnet import paths

    monkeypatch.setattr(paths, "timestamp", lambda: "20260101-120000")
    data = write_tiny(tmp_path / "toy.npy", n=40, frames=FRAMES)
    first = tmp_path / "out" / "models" / "toy_46_20260101-120000"
    first.mkdir(parents=True)
    (first / "weights_best.hdf5").write_bytes(b"the first run's weights")
    rc = _main(["--mode", "train", "--data", str(data), *_outputs(tmp_path), "--no_figures", "--dilation_size", "2",
                "--filter_size", "4"])
    assert rc == 0, capsys.readouterr().err
    assert (first / "weights_best.hdf5").read_bytes() == b"the first run's weights"
    second = first.with_name(first.name + "_2")
    assert (second / "weights_best.hdf5").is_file()
    assert (tmp_path / "out" / "results" / second.name / "metrics.json").is_file()
    assert (tmp_path / "out" / "log" / second.name).is_dir()  # the log folder is named like the run


def test_gpu_that_does_not_exist_warns_and_uses_the_cpu(capsys: pytest.CaptureFixture) -> None:
    import tensorflow as tf

    from timnet.training.devices import configure_devices

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    configure_devices("3")
    err = capsys.readouterr().err
    assert err.startswith("warning: --gpu 3: this machine has no GPU") and "running on the CPU" in err


# `timnet extract` interrupted after its 20th result, as a terminal's Ctrl-C does it: SIGINT to the
# whole process group (the workers must ignore it), and KeyboardInterrupt in the main process. The
# main process raises it at that point itself instead of taking the signal at whatever instruction
# it is in: an asynchronous KeyboardInterrupt inside multiprocessing's pool can hang the pool
# (seen once in a loaded suite run), which would make this test depend on timing again.
CTRL_C_EXTRACT = '''import os
import signal
import sys

from timnet.features import mfcc

original = mfcc.parallel_map


def interrupted(*args, **kwargs):
    for done, result in enumerate(original(*args, **kwargs), start=1):
        if done == 20:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # this process raises it below instead
            os.killpg(os.getpgrp(), signal.SIGINT)
            raise KeyboardInterrupt
        yield result


mfcc.parallel_map = interrupted
from timnet.cli import main  # noqa: E402

sys.exit(main())
'''


def test_ctrl_c_during_extraction(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it): one line, exit 130,
    no worker traceback, no feature file."""
    import os
    import subprocess
    import sys

    from helpers import REPO_ROOT, cli_env

    for i in range(200):  # 180 files left for the 2 workers when the signal lands
        _wav(tmp_path / "emodb" / "wav" / f"{3 + i % 7:02d}{'abcdefghijkl'[i // 100]}{i % 100:02d}Wa.wav")
    out = tmp_path / "MFCC"
    script = tmp_path / "ctrl_c_extract.py"
    script.write_text(CTRL_C_EXTRACT)
    env = {**cli_env(), "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT / "Code"),
                                                                    os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, str(script), "extract", "--corpus", "EMODB", "--input",
                           str(tmp_path / "emodb"), "--output", str(out), "--jobs", "2"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                          start_new_session=True)  # its own process group, which the signal goes to
    text = proc.stdout + proc.stderr
    assert proc.returncode == 130, text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    assert "interrupted: nothing was saved" in text
    assert not out.exists() or not any(out.iterdir())


def test_every_path_flag_is_taken_from_the_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One rule for every path a user types (stated in --help): the current folder, never the repository."""
    from timnet.cli.options import config_from_args

    monkeypatch.chdir(tmp_path)
    args = main.build_parser().parse_args(["--model_path", "m", "--result_path", "r", "--log_dir", "l"])
    config = config_from_args(args)
    assert (config.model_path, config.result_path, config.log_dir) == (tmp_path / "m", tmp_path / "r", tmp_path / "l")
    assert "taken from the current folder" in main.build_parser().format_help()


def test_a_run_that_saved_nothing_says_why_and_leaves_no_empty_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """No epoch with a finite validation loss (a diverged training): not reported as an interruption."""
    from timnet.training.callbacks import WeightsWriter

    monkeypatch.setattr(WeightsWriter, "on_epoch_end", lambda self, epoch, logs=None: None)
    data = write_tiny(tmp_path / "toy.npy", n=40, frames=FRAMES)
    rc = _main(["--mode", "train", "--data", str(data), *_outputs(tmp_path), "--no_figures", "--dilation_size", "2",
                "--filter_size", "4"])
    line = _check_error(rc, capsys.readouterr().err, ["no epoch ended with a finite validation loss", "--lr"])
    assert "interrupted" not in line
    assert list((tmp_path / "out" / "models").iterdir()) == []
    assert list((tmp_path / "out" / "results").iterdir()) == []

"""End to end through the CLI: train with the seed and the paper recipe on a tiny feature file,
check every output file and that metrics.json agrees with predictions.npz, test the trained
runs with ``--mode test``, and check that two runs with the same seed are identical.

The trainings run as subprocesses, started together once per module (2 cores: the tracing
of one overlaps the Python overhead of the others).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import (
    FAST,
    TINY_LABELS,
    check_consistency,
    check_workbook,
    finish,
    only_run_folder,
    read_metrics,
    start_cli,
    write_tiny,
)
from timnet.modelfiles import keras2 as legacy_weights
from timnet.modelfiles import portable as portable_model
from timnet.protocols import holdout_split, kfold_splits

N, FRAMES, SEED, FOLDS = 40, 20, 46, 3
SMALL_NET = ["--dilation_size", "2"]  # a small graph: tracing dominates tiny runs


def _runs(base: Path, name: str) -> list[str]:
    return ["--model_path", str(base / name / "models"), "--result_path", str(base / name / "results"),
            "--log_dir", str(base / name / "log")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Three trainings at once: seed recipe (with figures), its twin (determinism), paper k-fold."""
    base = tmp_path_factory.mktemp("cli")
    data = write_tiny(base / "tiny.npy", n=N, frames=FRAMES)
    common = ["--data", str(data), *FAST, *SMALL_NET, "--random_seed", str(SEED)]
    commands = {
        "seed": [*common, "--loss", "npair", "--protocol", "holdout", "--epoch", "3", *_runs(base, "seed")],
        "twin": [*common, "--loss", "npair", "--protocol", "holdout", "--epoch", "3", "--no_figures",
                 *_runs(base, "twin")],
        "paper": [*common, "--recipe", "paper", "--epoch", "2", "--split_fold", str(FOLDS), "--no_figures",
                  *_runs(base, "paper")],
    }
    procs = {k: start_cli(args, base, base / f"{k}.log") for k, args in commands.items()}
    out: dict[str, Any] = {"data": data, "base": base}
    for name, proc in procs.items():
        rc, log = finish(proc, base / f"{name}.log", timeout=600)
        assert rc == 0, f"{name} training failed:\n{log[-4000:]}"
        out[name] = {"log": log, "models": only_run_folder(base / name / "models"),
                     "results": only_run_folder(base / name / "results"), "log_dir": base / name / "log"}
    return out


@pytest.fixture(scope="module")
def tested(trained: dict[str, Any]) -> dict[str, Any]:
    """``--mode test`` on both trained run folders (at once)."""
    base = trained["base"]
    procs = {}
    for name, extra in (("seed", []), ("paper", ["--no_figures"])):
        args = ["--mode", "test", "--data", str(trained["data"]), "--test_path", str(trained[name]["models"]),
                "--result_path", str(base / f"test_{name}"), "--gpu", "-1", *extra]
        procs[name] = start_cli(args, base, base / f"test_{name}.log")
    out = {}
    for name, proc in procs.items():
        rc, log = finish(proc, base / f"test_{name}.log")
        assert rc == 0, f"test of {name} failed:\n{log[-4000:]}"
        out[name] = {"log": log, "results": only_run_folder(base / f"test_{name}")}
    return out


def _labels(data: Path) -> np.ndarray:
    from timnet.features.files import load_features

    return load_features(data).labels


# --- the seed recipe: N-pair loss, hold-out ---------------------------------------------------


def test_seed_run_files(trained: dict[str, Any]) -> None:
    run = trained["seed"]
    assert sorted(p.name for p in run["models"].iterdir()) == ["weights_best.hdf5", "weights_best.keras"]
    assert run["models"].name == run["results"].name and run["models"].name.startswith(f"tiny_{SEED}_")
    wf = legacy_weights.read_weight_file(run["models"] / "weights_best.hdf5")
    assert wf.metadata["class_labels"] == list(TINY_LABELS) and wf.metadata["head"] == "embedding"
    assert wf.metadata["architecture"]["dilation_size"] == 2 and 1 <= wf.metadata["epoch"] <= 3
    assert np.asarray(wf.centroids).shape == (len(TINY_LABELS), 39)
    names = {p.name for p in run["results"].iterdir()}
    assert {"metrics.json", "predictions.npz", "predictions.csv", "history.json", "summary.md", "curves.png",
            "confusion_matrix.png", "tsne.png"} <= names
    assert any(n.endswith(".xlsx") for n in names)
    assert not [n for n in names if n.startswith(".")], "temporary files left behind"
    history = json.loads((run["results"] / "history.json").read_text())
    assert len(history) == 1 and len(history[0]["loss"]) == 3 and len(history[0]["val_uar"]) == 3
    summary = (run["results"] / "summary.md").read_text()
    assert "![tsne](tsne.png)" in summary and "![curves](curves.png)" in summary and "**WAR**" in summary
    assert list(run["log_dir"].rglob("events.out.tfevents*")), "no TensorBoard log written"
    assert [p.name for p in run["log_dir"].iterdir()] == [run["models"].name], "log folder not named like the run"


def test_seed_run_reports_agree(trained: dict[str, Any]) -> None:
    run = trained["seed"]
    metrics, pred = check_consistency(run["results"], "embedding")
    (split,) = holdout_split(_labels(trained["data"]), SEED)
    np.testing.assert_array_equal(pred["index"], split.test)
    np.testing.assert_array_equal(pred["y_true"], _labels(trained["data"])[split.test])
    assert set(pred["fold"].tolist()) == {1}
    check_workbook(run["results"], [1])
    assert metrics["settings"]["loss"] == "npair" and metrics["settings"]["protocol"] == "holdout"
    assert metrics["weights"].endswith("weights_best.hdf5")


def test_seed_weights_and_keras_file_agree(trained: dict[str, Any]) -> None:
    """The .keras file and the HDF5 weights hold the same network, and its centroids."""
    run = trained["seed"]
    x = np.random.default_rng(1).normal(size=(6, FRAMES, 39)).astype(np.float32)
    model_h5, wf, _ = legacy_weights.build_model_from_weights(run["models"] / "weights_best.hdf5", (FRAMES, 39))
    model_keras, meta = portable_model.load_portable(run["models"] / "weights_best.keras")
    np.testing.assert_allclose(np.asarray(model_h5(x, training=False)), np.asarray(model_keras(x, training=False)),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(meta.centroids, wf.centroids, rtol=1e-6)
    assert meta.class_labels == TINY_LABELS and meta.frames == FRAMES


def test_same_seed_gives_identical_runs(trained: dict[str, Any]) -> None:
    a, b = trained["seed"], trained["twin"]
    ma, mb = read_metrics(a["results"]), read_metrics(b["results"])
    assert (ma["WAR"], ma["UAR"]) == (mb["WAR"], mb["UAR"])
    wa = legacy_weights.read_weight_file(a["models"] / "weights_best.hdf5")
    wb = legacy_weights.read_weight_file(b["models"] / "weights_best.hdf5")
    assert [layer.name for layer in wa.layer_order] == [layer.name for layer in wb.layer_order]
    for la, lb in zip(wa.layer_order, wb.layer_order):
        for x, y in zip(la.weights, lb.weights):
            np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(wa.centroids, wb.centroids)
    ha = json.loads((a["results"] / "history.json").read_text())[0]
    hb = json.loads((b["results"] / "history.json").read_text())[0]
    assert ha["loss"] == hb["loss"] and ha["val_loss"] == hb["val_loss"]


# --- the paper recipe: softmax, label smoothing, k-fold ----------------------------------------


def test_paper_run_files(trained: dict[str, Any]) -> None:
    run = trained["paper"]
    expected = sorted(f"{FOLDS}-fold_weights_best_{i}.{ext}" for i in range(1, FOLDS + 1) for ext in ("hdf5", "keras"))
    assert sorted(p.name for p in run["models"].iterdir()) == expected
    for i in range(1, FOLDS + 1):
        wf = legacy_weights.read_weight_file(run["models"] / f"{FOLDS}-fold_weights_best_{i}.hdf5")
        assert wf.metadata["head"] == "softmax" and wf.metadata["epoch"] == 2  # the last epoch
        assert wf.metadata["architecture"]["dropout"] == 0.1
    names = {p.name for p in run["results"].iterdir()}
    assert {"metrics.json", "predictions.npz", "history.json", "summary.md"} <= names
    assert not names & {"curves.png", "confusion_matrix.png", "tsne.png"}, "--no_figures wrote figures"
    assert len(json.loads((run["results"] / "history.json").read_text())) == FOLDS
    folds = sorted(p.name for p in (run["log_dir"]).glob("*/fold_*"))
    assert folds == [f"fold_{i}" for i in range(1, FOLDS + 1)]


def test_paper_run_reports_agree(trained: dict[str, Any]) -> None:
    run = trained["paper"]
    metrics, pred = check_consistency(run["results"], "softmax")
    assert len(metrics["folds"]) == FOLDS and {"WAR_std", "UAR_std", "pooled_WAR"} <= set(metrics)
    np.testing.assert_array_equal(pred["index"], np.arange(N))
    np.testing.assert_array_equal(pred["y_true"], _labels(trained["data"]))
    for split in kfold_splits(N, FOLDS, SEED):
        assert np.all(pred["fold"][split.test] == split.fold)
    check_workbook(run["results"], list(range(1, FOLDS + 1)))
    settings = metrics["settings"]
    assert (settings["loss"], settings["protocol"], settings["label_smoothing"]) == ("ce", "kfold", 0.1)
    summary = (run["results"] / "summary.md").read_text()
    assert all(f"| fold {i} |" in summary for i in range(1, FOLDS + 1))


# --- --mode test on the trained folders --------------------------------------------------------


def test_test_mode_on_seed_run(trained: dict[str, Any], tested: dict[str, Any]) -> None:
    folder = tested["seed"]["results"]
    assert folder.name.startswith("tiny_test_")
    metrics, pred = check_consistency(folder, "embedding")
    np.testing.assert_array_equal(pred["index"], np.arange(N))  # one model: the whole file
    assert metrics["settings"]["test_path"] == str(trained["seed"]["models"])
    check_workbook(folder, [1])
    assert {"confusion_matrix.png", "tsne.png", "summary.md"} <= {p.name for p in folder.iterdir()}
    # Same weights and centroids as the training run's evaluation: same scores on its test part.
    with np.load(trained["seed"]["results"] / "predictions.npz") as train_pred:
        idx = train_pred["index"]
        np.testing.assert_allclose(pred["scores"][idx], train_pred["scores"], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(pred["y_pred"][idx], train_pred["y_pred"])


def test_test_mode_on_kfold_run(trained: dict[str, Any], tested: dict[str, Any]) -> None:
    folder = tested["paper"]["results"]
    metrics, pred = check_consistency(folder, "softmax")
    for split in kfold_splits(N, FOLDS, SEED):  # fold i evaluated on split i
        assert np.all(pred["fold"][split.test] == split.fold)
    assert [Path(f["weights"]).name for f in metrics["folds"]] == [
        f"{FOLDS}-fold_weights_best_{i}.hdf5" for i in range(1, FOLDS + 1)]
    check_workbook(folder, list(range(1, FOLDS + 1)))
    with np.load(trained["paper"]["results"] / "predictions.npz") as train_pred:
        np.testing.assert_allclose(pred["probs"], train_pred["probs"], rtol=1e-5, atol=1e-6)
    assert metrics["WAR"] == pytest.approx(read_metrics(trained["paper"]["results"])["WAR"])


def test_train_and_test_write_csv_and_provenance(trained: dict[str, Any], tested: dict[str, Any]) -> None:
    """predictions.csv (one row per evaluated utterance, speakers from the file) and the
    provenance of metrics.json, after ``--mode train`` and ``--mode test``."""
    import hashlib

    import pandas as pd

    digest = hashlib.sha256(Path(trained["data"]).read_bytes()).hexdigest()
    (split,) = holdout_split(_labels(trained["data"]), SEED)
    speakers = np.load(trained["data"], allow_pickle=True).item()["speaker"]
    for folder, rows, mode in ((trained["seed"]["results"], split.test, "train"),
                               (tested["seed"]["results"], np.arange(N), "test")):
        table = pd.read_csv(folder / "predictions.csv")
        np.testing.assert_array_equal(table["index"], rows)
        np.testing.assert_array_equal(table["speaker"], speakers[rows])
        assert "path" not in table.columns  # the tiny file has no paths
        assert list(table.columns[-len(TINY_LABELS):]) == [f"score_{c}" for c in TINY_LABELS]
        with np.load(folder / "predictions.npz") as npz:
            np.testing.assert_allclose(table.iloc[:, -len(TINY_LABELS):].to_numpy(), npz["scores"], rtol=1e-6,
                                       atol=1e-7)
        prov = read_metrics(folder)["provenance"]
        assert "--mode" in prov["command_line"] or mode == "train"
        assert prov["command_line"][prov["command_line"].index("--data") + 1] == str(trained["data"])
        assert prov["feature_file"]["sha256"] == digest
        assert len(prov["fold_seconds"]) == 1 and prov["fold_seconds"][0]["seconds"] > 0
        assert {"python", "tensorflow", "keras", "numpy", "librosa"} <= set(prov["versions"])


# --- settings resolved from the command line ---------------------------------------------------


@pytest.mark.parametrize(("argv", "expected"), [
    (["--data", "INTERSECT"], 8),
    (["--data", "EMODB"], 8),
    (["--data", "IEMOCAP"], 10),
    (["--data", "some/where/IEMOCAP.npy"], 10),
    (["--data", "IEMOCAP", "--dilation_size", "6"], 6),
    (["--data", "EMODB", "--dilation_size", "3"], 3),
])
def test_dilation_size_defaults(argv: list[str], expected: int) -> None:
    from timnet.cli import legacy as main
    from timnet.cli.options import config_from_args

    config = config_from_args(main.build_parser().parse_args(argv))
    assert config.architecture.dilation_size == expected


def test_recipes_resolve(tmp_path: Path) -> None:
    from timnet.cli import legacy as main
    from timnet.cli.options import config_from_args

    def resolve(*argv: str):
        config = config_from_args(main.build_parser().parse_args(list(argv)))
        return _Flat(config)

    seed = resolve()
    assert (seed.loss, seed.protocol, seed.dropout, seed.epoch, seed.label_smoothing) == (
        "npair", "holdout", 0.5, 60, 0.0)
    paper = resolve("--recipe", "paper")
    assert (paper.loss, paper.protocol, paper.dropout, paper.epoch, paper.label_smoothing) == (
        "ce", "kfold", 0.1, 500, 0.1)
    mixed = resolve("--recipe", "paper", "--loss", "npair", "--epoch", "7", "--log_dir", str(tmp_path))
    assert (mixed.loss, mixed.label_smoothing, mixed.epoch, mixed.log_dir) == ("npair", 0.0, 7, tmp_path)


class _Flat:
    """A configuration's fields with the architecture's beside them (as the flags are)."""

    def __init__(self, config) -> None:
        self.__dict__.update(config.architecture.as_dict())
        self.__dict__.update({k: getattr(config, k) for k in config.__dataclass_fields__})

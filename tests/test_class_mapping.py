"""Classes by name: the synonym table, ``--classes`` subsets, and models tested on feature
files with other classes (an EMO-DB-like 7-class corpus against a RAVDESS-like 8-class one
that says ``fearful`` and ``surprised``).

One tiny in-process training (2 folds, a few epochs) serves the end-to-end tests; the
command line runs once (slow), for ``timnet test`` across corpora."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import FAST, recompute_metrics, run_cli, tiny_arrays
from timnet.errors import UserError
from timnet.features.classes import canonical_class, map_classes, select_classes
from timnet.features.files import load_features, write_npy_dict

EMODB_LIKE = ("angry", "boredom", "disgust", "fear", "happy", "neutral", "sad")
RAVDESS_LIKE = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
SUBSET = "anger,boredom,fearful,happy,neutral"  # synonyms on purpose; the file's names are kept
MODEL_CLASSES = ("angry", "boredom", "fear", "happy", "neutral")
FRAMES = 20


def corpus(path: Path, labels: tuple[str, ...], n: int, seed: int, frames: int = FRAMES) -> Path:
    """A learnable toy corpus whose class *names* decide the shifted MFCC row, so that
    "fearful" in one file looks like "fear" in the other."""
    data = tiny_arrays(n=n, frames=frames, n_classes=len(labels), seed=seed, shift=1.5)
    rows = {c: i for i, c in enumerate(("angry", "boredom", "disgust", "fear", "happy", "neutral", "sad", "calm",
                                        "surprise"))}
    y = data["y"].argmax(axis=1)
    x = np.random.default_rng(seed).normal(0.0, 1.0, size=data["x"].shape).astype(np.float32)
    for c, name in enumerate(labels):
        x[y == c, :, rows[canonical_class(name)]] += 1.5
    data["x"], data["class_labels"] = x, np.asarray(labels)
    return write_npy_dict(path, data)


# --- the table and the mapping (no network) --------------------------------------------------


def test_synonyms_and_mapping() -> None:
    assert [canonical_class(c) for c in ("Fearful", "surprised", "anger", "Happiness", "sadness", "bored")] == [
        "fear", "surprise", "angry", "happy", "sad", "boredom"]
    assert canonical_class("Frustrated") == "frustrated"  # unknown names match only themselves
    m = map_classes(EMODB_LIKE, RAVDESS_LIKE)
    assert m.model_labels_of(np.arange(8)).tolist() == [5, -1, 4, 6, 0, 3, 2, -1]
    assert m.shared == (0, 2, 3, 4, 5, 6) and m.model_only == ("boredom",) and m.data_only == ("calm", "surprised")
    assert not m.identity and map_classes(EMODB_LIKE, EMODB_LIKE).identity
    assert m.left_out(np.array([1, 1, 7, 0])) == {"calm": 2, "surprised": 1}
    assert "fearful = fear" in m.describe()
    with pytest.raises(UserError, match="no class in common"):
        map_classes(EMODB_LIKE, ("calm", "surprised"))
    with pytest.raises(UserError, match="'fear' and 'fearful' are the same class"):
        map_classes(EMODB_LIKE, ("fear", "fearful"))
    from timnet.features.mix import mapping_by_name  # INTERSECT's columns are matched by the same table

    assert mapping_by_name(("surprised", "Happiness", "calm", "anger")) == (4, 1, -1, 0)


def test_select_classes_keeps_the_file_order_and_counts(tmp_path: Path) -> None:
    features = load_features(corpus(tmp_path / "emo.npy", EMODB_LIKE, 42, seed=1))
    sel = select_classes(features, SUBSET)
    sub = sel.features
    assert sub.class_labels == MODEL_CLASSES
    keep = np.isin(features.labels, [0, 1, 3, 4, 5])
    np.testing.assert_array_equal(sub.x, features.x[keep])
    np.testing.assert_array_equal(np.asarray(MODEL_CLASSES)[sub.labels], np.asarray(EMODB_LIKE)[features.labels[keep]])
    np.testing.assert_array_equal(sub.speakers, features.speakers[keep])
    assert sel.left_out == {"disgust": 6, "sad": 6} and sel.n_left_out == 12
    assert "30 of 42 utterances" in sel.note() and "12 left out (disgust 6, sad 6)" in sel.note()
    assert sub.fingerprint() == features.fingerprint()  # a model trained on it recognises the file
    assert select_classes(features, None).features is features
    with pytest.raises(UserError, match="calm not among"):
        select_classes(features, "angry,calm")
    with pytest.raises(UserError, match="the same class"):
        select_classes(features, "angry,anger,sad")


def test_classes_flag_is_one_configuration_setting() -> None:
    import timnet
    from timnet.cli import build_parser
    from timnet.cli.options import config_from_args
    from timnet.config import ConfigError

    args = build_parser().parse_args(["train", "--classes", "angry, happy,neutral,sad"])
    assert config_from_args(args).classes == "angry,happy,neutral,sad"
    assert timnet.make_config({"classes": ["angry", "sad"]}).classes == "angry,sad"
    with pytest.raises(ConfigError, match="--classes"):
        timnet.make_config({"classes": "angry"})


def test_report_over_shared_classes_with_predicted_only_columns(tmp_path: Path) -> None:
    """A prediction of a class the data lacks is wrong; WAR, UAR and F1 are over the
    shared classes; the confusion matrix has the data's classes as rows and every model
    class as a column."""
    from timnet.evaluation.reports import EvaluationReport, FoldResult
    from timnet.evaluation.run_outputs import write_test_outputs

    labels = ("angry", "boredom", "fear", "happy")  # the data has no boredom
    y_true = np.array([0, 0, 2, 2, 3, 3, 3])
    y_pred = np.array([0, 1, 2, 1, 3, 0, 3])  # two boredom predictions: wrong
    scores = np.eye(4, dtype=np.float32)[y_pred]
    fold = FoldResult(1, "all", np.arange(7), y_true, y_pred, scores)
    report = EvaluationReport("other", labels, "softmax", [fold], true_classes=(0, 2, 3))
    written = write_test_outputs(report, tmp_path, figures=True)
    metrics = json.loads(written["metrics"].read_text())
    ref = recompute_metrics(y_true, y_pred, 4)
    assert metrics["WAR"] == pytest.approx(4 / 7) == pytest.approx(ref["WAR"])
    assert metrics["UAR"] == pytest.approx((1 / 2 + 1 / 2 + 2 / 3) / 3) == pytest.approx(ref["UAR"])
    assert metrics["macro_F1"] == pytest.approx(ref["macro_F1"])
    assert metrics["confusion_rows"] == ["angry", "fear", "happy"]
    assert metrics["predicted_only_classes"] == ["boredom"]
    assert metrics["confusion_matrix"] == ref["confusion_matrix"][[0, 2, 3]].tolist()
    assert list(metrics["per_class_F1"]) == ["angry", "fear", "happy"]
    assert written["confusion_matrix"].stat().st_size > 1000


# --- end to end ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 2-fold training on 5 of the EMO-DB-like corpus's 7 classes (``--classes``)."""
    import timnet

    base = tmp_path_factory.mktemp("classes")
    emo = corpus(base / "EMOLIKE.npy", EMODB_LIKE, 56, seed=2)
    rav = corpus(base / "RAVLIKE.npy", RAVDESS_LIKE, 48, seed=3)
    config = timnet.make_config({"data": str(emo), "classes": SUBSET, "recipe": "paper", "epoch": 3, "split_fold": 2,
                                 "dilation_size": 2, "batch_size": 16, "gpu": "-1", "histogram_freq": 0,
                                 "random_seed": 5, "model_path": base / "models", "result_path": base / "results",
                                 "log_dir": base / "log"})
    outcome = timnet.train(config)
    return {"base": base, "emo": emo, "rav": rav, "config": config, "outcome": outcome}


def test_training_on_a_class_subset(run: dict[str, Any]) -> None:
    import timnet

    outcome = run["outcome"]
    assert outcome.report.class_labels == MODEL_CLASSES
    assert outcome.report.notes[0].startswith("--classes angry,boredom,fear,happy,neutral: 40 of 56 utterances")
    model = timnet.load(outcome.weights[0])
    assert model.class_labels == MODEL_CLASSES
    full = load_features(run["emo"])
    assert model.metadata.training_data["sha256"] == full.fingerprint()["sha256"]


def test_test_on_the_training_file_rebuilds_the_subset_folds(run: dict[str, Any]) -> None:
    from timnet.evaluation.testing import test

    features = load_features(run["emo"])
    report = test(run["config"], features, run["outcome"].model_dir, {}, with_fused=False)
    kept = np.flatnonzero(np.isin(features.labels, [0, 1, 3, 4, 5]))
    assert [f.name for f in report.folds] == ["fold 1", "fold 2"]
    for tested, trained in zip(report.folds, run["outcome"].report.folds):
        np.testing.assert_array_equal(tested.index, kept[trained.index])  # the same test part, in file positions
        np.testing.assert_array_equal(tested.y_true, trained.y_true)
        np.testing.assert_array_equal(tested.y_pred, trained.y_pred)
    assert report.true_classes is None or list(report.true_classes) == [0, 1, 2, 3, 4]
    assert any("16 of 56 utterances" in n and "disgust 8, sad 8" in n for n in report.notes)


def test_test_on_another_corpus_scores_every_model_on_the_whole_file(run: dict[str, Any]) -> None:
    from timnet.evaluation.testing import test

    features = load_features(run["rav"])
    report = test(run["config"], features, run["outcome"].model_dir, {}, with_fused=False)
    # RAVDESS-like classes the model has: neutral, happy, angry, fearful (= fear); no boredom in the data.
    to_model = {"neutral": 4, "happy": 3, "angry": 0, "fearful": 2}
    names = np.asarray(RAVDESS_LIKE)[features.labels]
    kept = np.flatnonzero(np.isin(names, list(to_model)))
    assert [f.name for f in report.folds] == ["model of fold 1", "model of fold 2"]
    s = report.summary()
    assert s["confusion_rows"] == ["angry", "fear", "happy", "neutral"] and s["predicted_only_classes"] == ["boredom"]
    for f, entry in zip(report.folds, s["folds"]):
        np.testing.assert_array_equal(f.index, kept)  # the whole file, every model
        np.testing.assert_array_equal(f.y_true, [to_model[c] for c in names[kept]])
        np.testing.assert_array_equal(f.y_pred, f.scores.argmax(axis=1))  # over all 5 of the model's classes
        assert f.scores.shape == (len(kept), 5)
        ref = recompute_metrics(f.y_true, f.y_pred, 5)
        assert (entry["WAR"], entry["UAR"], entry["macro_F1"]) == pytest.approx(
            (ref["WAR"], ref["UAR"], ref["macro_F1"]))
        assert entry["confusion_matrix"] == ref["confusion_matrix"][[0, 2, 3, 4]].tolist()
    notes = " | ".join(report.notes)
    assert "fearful = fear" in notes and "left out: classes the model lacks (calm 6, sad 6, disgust 6, surprised 6)" in notes
    assert "not the data the model was trained on" in notes and "boredom" in notes
    # The Python API maps the same way.
    import timnet

    result = timnet.load(run["outcome"].weights[0]).evaluate(features)
    np.testing.assert_array_equal(result.index, kept)
    np.testing.assert_array_equal(result.y_pred, report.folds[0].y_pred)


def test_mismatched_frames_and_no_shared_class_are_one_clear_error(run: dict[str, Any]) -> None:
    from timnet.evaluation.testing import test

    base = run["base"]
    longer = load_features(corpus(base / "LONGER.npy", RAVDESS_LIKE, 16, seed=4, frames=FRAMES + 4))
    with pytest.raises(UserError, match=f"takes {FRAMES} frames .* has {FRAMES + 4}: .*--mean_signal_length"):
        test(run["config"], longer, run["outcome"].model_dir, {}, with_fused=False)
    other = load_features(corpus(base / "OTHER.npy", ("calm", "surprised", "sad"), 9, seed=5))
    with pytest.raises(UserError, match="no class in common"):
        test(run["config"], other, run["outcome"].model_dir, {}, with_fused=False)


@pytest.mark.slow
def test_cli_test_across_corpora(run: dict[str, Any]) -> None:
    base = run["base"]
    result = run_cli(["--mode", "test", "--data", str(run["rav"]), "--test_path", str(run["outcome"].model_dir),
                      "--result_path", str(base / "cross"), *FAST], cwd=base)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "predicted only, the data has none" in result.stdout and "macro-F1" in result.stdout
    (folder,) = (base / "cross").iterdir()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["class_labels"] == list(MODEL_CLASSES) and metrics["predicted_only_classes"] == ["boredom"]
    assert metrics["n"] == 2 * 24 and (folder / "confusion_matrix.png").is_file()


def test_export_computes_centroids_of_the_shared_classes(tmp_path: Path) -> None:
    """An N-pair weights file without centroids, exported with a feature file whose classes
    have other names and include one the model lacks: centroids by name, that class left out;
    a model class without any utterance is one clear error."""
    from timnet.evaluation.scoring import class_centroids, predict_array
    from timnet.modelfiles import keras2
    from timnet.modelfiles.export import export_model
    from timnet.network.layers import build_timnet_model

    model = build_timnet_model((FRAMES, 39), 5, head="embedding", dilation_size=2)
    source = keras2.write_weight_file(model, tmp_path / "weights.hdf5", {
        "head": "embedding", "class_labels": list(MODEL_CLASSES), "mean_signal_length": (FRAMES - 1) * 512})
    named = ("anger", "bored", "calm", "fearful", "happiness", "neutral")
    features = load_features(corpus(tmp_path / "named.npy", named, 24, seed=6))
    result = export_model(source, tmp_path / "out.keras", "named", features, seed=1)
    labels = np.array([0, 1, -1, 2, 3, 4])[features.labels]  # calm left out
    keep = np.flatnonzero(labels >= 0)
    expected = class_centroids(predict_array(model, features.x, keep), labels[keep], 5)
    np.testing.assert_allclose(result.metadata.centroids, expected, rtol=1e-5, atol=1e-6)
    assert "20 utterances" in result.centroids_note
    rav = load_features(corpus(tmp_path / "rav.npy", RAVDESS_LIKE, 16, seed=7))
    with pytest.raises(UserError, match="no utterance of the model's class.* boredom"):
        export_model(source, tmp_path / "out2.keras", "rav", rav, seed=1)


def test_a_class_subset_run_resumes(tmp_path: Path) -> None:
    """A --classes run killed in fold 2 resumes: the run recorded the subset it trained on."""
    import subprocess
    import sys

    from helpers import FAST, cli_env, write_tiny

    data = write_tiny(tmp_path / "tiny.npy", n=60, frames=20)
    folders = ["--model_path", str(tmp_path / "m"), "--result_path", str(tmp_path / "r"), "--log_dir",
               str(tmp_path / "l")]
    train = [sys.executable, "-m", "timnet", "train", "--data", str(data), "--recipe", "paper", "--split_fold", "3",
             "--epoch", "2", "--classes", "angry,happy,sad", "--dilation_size", "2", "--no_figures", *FAST, *folders]
    killed = subprocess.run(train, cwd=tmp_path, env={**cli_env(), "TIMNET_FAULT": "epoch_end:fold=2:epoch=1:SIGKILL"},
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    resumed = subprocess.run([sys.executable, "-m", "timnet", "train", "--resume", "last", *folders[:2]],
                             cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "folds 1 complete" in resumed.stdout

"""What a run writes beyond its metrics: ``predictions.csv`` (one row per evaluated
utterance), the provenance in ``metrics.json``, and the TensorBoard summaries (the
hyper-parameters with the final WAR/UAR, one confusion image per fold) read back with
TensorBoard's own event reader.

One tiny in-process training (2 folds, 1 epoch) serves every test here; the command
line's files are checked in test_cli_train_test.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from helpers import TINY_LABELS, tiny_arrays
from timnet.evaluation import provenance
from timnet.evaluation.tensorboard_logs import CONFUSION_TAG, METRIC_TAGS
from timnet.features.files import load_features, write_npy_dict

N, FRAMES, FOLDS, SEED = 40, 20, 2, 7


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 2-fold softmax training on a feature file with paths and speakers, its reports written."""
    import timnet
    from timnet.evaluation.run_outputs import write_test_outputs

    base = tmp_path_factory.mktemp("outputs")
    data = tiny_arrays(n=N, frames=FRAMES)
    data["path"] = np.asarray([f"/corpus/{data['speaker'][i]}/utt{i:03d}.wav" for i in range(N)])
    data["class_labels"] = np.asarray(TINY_LABELS)
    file = write_npy_dict(base / "tiny.npy", data)
    features = load_features(file)
    config = timnet.make_config({"data": str(file), "recipe": "paper", "epoch": 1, "split_fold": FOLDS,
                                 "dilation_size": 2, "batch_size": 16, "gpu": "-1", "histogram_freq": 0,
                                 "random_seed": SEED, "model_path": base / "models",
                                 "result_path": base / "results", "log_dir": base / "log"})
    record = provenance.feature_file_record(file)
    outcome = timnet.train(config, features)
    outcome.report.provenance = provenance.collect(outcome.report, record, argv=["main.py", "--data", str(file)])
    written = write_test_outputs(outcome.report, outcome.result_dir, figures=False)
    return {"base": base, "file": file, "features": features, "outcome": outcome, "written": written,
            "metrics": json.loads(written["metrics"].read_text())}


# --- predictions.csv ------------------------------------------------------------------------


def test_predictions_csv_one_row_per_evaluated_utterance(run: dict[str, Any]) -> None:
    features, folder = run["features"], run["outcome"].result_dir
    table = pd.read_csv(folder / "predictions.csv")
    with np.load(folder / "predictions.npz") as npz:
        pred = {k: npz[k] for k in npz.files}
    score_columns = [f"score_{c}" for c in TINY_LABELS]
    assert list(table.columns) == ["index", "fold", "path", "speaker", "true_label", "predicted_label", "correct",
                                   *score_columns]
    assert len(table) == N  # k-fold: every utterance evaluated once, by its fold's model
    np.testing.assert_array_equal(table["index"], np.arange(N))
    np.testing.assert_array_equal(table["path"], features.files)
    np.testing.assert_array_equal(table["speaker"], features.speakers)
    np.testing.assert_array_equal(table["true_label"], np.asarray(TINY_LABELS)[features.labels])
    np.testing.assert_array_equal(table["fold"], pred["fold"])
    assert set(table["fold"]) == {1, 2}
    scores = table[score_columns].to_numpy()
    np.testing.assert_allclose(scores, pred["probs"], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(table["predicted_label"], np.asarray(TINY_LABELS)[scores.argmax(axis=1)])
    np.testing.assert_array_equal(table["correct"], table["true_label"] == table["predicted_label"])
    # The npz gains the same paths and speakers, in the same order.
    np.testing.assert_array_equal(pred["path"], features.files)
    np.testing.assert_array_equal(pred["speaker"], features.speakers)
    # WAR of fold 1 from the CSV is metrics.json's.
    fold1 = table[table["fold"] == 1]
    assert run["metrics"]["folds"][0]["WAR"] == pytest.approx(fold1["correct"].mean())


def test_predictions_csv_holdout_embedding_without_paths(tmp_path: Path) -> None:
    """Only the evaluated utterances; no path/speaker columns when the file has none;
    the cosine scores of an embedding model."""
    from timnet.evaluation.reports import EvaluationReport, FoldResult

    rng = np.random.default_rng(0)
    index = np.array([7, 2, 11])
    scores = rng.uniform(-1, 1, size=(3, 3)).astype(np.float32)
    fold = FoldResult(1, "all", index, np.array([0, 1, 2]), scores.argmax(axis=1), scores,
                      embeddings=rng.normal(size=(3, 4)).astype(np.float32))
    report = EvaluationReport("x", ("a", "b", "c"), "embedding", [fold])
    written = report.write(tmp_path)
    table = pd.read_csv(written["predictions_csv"])
    assert list(table.columns) == ["index", "fold", "true_label", "predicted_label", "correct",
                                   "score_a", "score_b", "score_c"]
    np.testing.assert_array_equal(table["index"], [2, 7, 11])  # input order
    np.testing.assert_allclose(table[["score_a", "score_b", "score_c"]].to_numpy(), scores[[1, 0, 2]], rtol=1e-6)
    with np.load(written["predictions"]) as npz:
        assert "path" not in npz.files and "speaker" not in npz.files
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left behind"


# --- provenance -----------------------------------------------------------------------------


def test_metrics_json_provenance(run: dict[str, Any]) -> None:
    metrics, file = run["metrics"], run["file"]
    prov = metrics["provenance"]
    assert prov["command_line"][1:] == ["main.py", "--data", str(file)]
    versions = prov["versions"]
    assert {"python", "tensorflow", "keras", "numpy", "librosa"} <= set(versions)
    import keras
    import tensorflow as tf

    assert (versions["tensorflow"], versions["keras"], versions["numpy"]) == (
        tf.__version__, keras.__version__, np.__version__)
    import timnet

    assert prov["timnet_version"] == timnet.__version__
    assert prov["feature_file"]["path"] == str(file.resolve())
    assert prov["feature_file"]["bytes"] == file.stat().st_size
    assert prov["feature_file"]["sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()
    assert any(d.endswith("CPU:0") for d in prov["devices"]["tensorflow_devices"])
    assert prov["devices"]["cpu_count"] >= 1
    times = prov["fold_seconds"]
    assert [t["fold"] for t in times] == [1, 2] and all(t["seconds"] > 0 for t in times)
    # The full resolved configuration, architecture included.
    settings = metrics["settings"]
    assert (settings["loss"], settings["epoch"], settings["split_fold"], settings["random_seed"]) == ("ce", 1, 2, SEED)
    assert settings["architecture"]["dilation_size"] == 2 and settings["head"] == "softmax"
    summary = run["written"]["summary"].read_text()
    assert "## Provenance" in summary and prov["feature_file"]["sha256"][:16] in summary
    if (Path(timnet.__file__).resolve().parents[2] / ".git").exists() and shutil.which("git"):
        assert re.fullmatch(r"[0-9a-f]{40}", prov["git"]["commit"]) and isinstance(prov["git"]["dirty"], bool)


def test_content_hash_follows_the_content(tmp_path: Path) -> None:
    path = tmp_path / "f.npy"
    path.write_bytes(b"\0" * (3 * provenance.HASH_CHUNK + 5))  # several chunks
    first = provenance.feature_file_record(path)["sha256"]
    assert first == hashlib.sha256(path.read_bytes()).hexdigest()
    with open(path, "r+b") as f:  # one byte changed in the last chunk, same size
        f.seek(3 * provenance.HASH_CHUNK + 2)
        f.write(b"\1")
    second = provenance.feature_file_record(path)
    assert second["sha256"] != first and second["bytes"] == 3 * provenance.HASH_CHUNK + 5
    assert second["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_git_state_outside_a_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert provenance.git_state(tmp_path) == {}  # no .git above a temporary folder
    fake = tmp_path / "fake"
    (fake / ".git").mkdir(parents=True)  # a broken .git: git fails, nothing recorded
    assert provenance.git_state(fake) == {}
    monkeypatch.setattr(provenance.shutil, "which", lambda name: None)  # no git installed
    assert provenance.git_state(Path(__file__).parent) == {}


# --- TensorBoard ----------------------------------------------------------------------------


def _accumulator(folder: Path) -> Any:
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    return acc


def test_log_folder_named_like_the_run(run: dict[str, Any]) -> None:
    outcome = run["outcome"]
    assert outcome.log_dir == run["base"] / "log" / outcome.model_dir.name
    assert outcome.model_dir.name == outcome.result_dir.name
    assert sorted(p.name for p in outcome.log_dir.glob("fold_*")) == ["fold_1", "fold_2"]
    for fold in ("fold_1", "fold_2"):
        assert list((outcome.log_dir / fold / "train").glob("events.out.tfevents*")), "no curves"


def test_tensorboard_hparams_and_final_metrics(run: dict[str, Any]) -> None:
    from tensorboard.plugins.hparams import metadata as hp_metadata
    from tensorboard.util import tensor_util

    outcome, metrics = run["outcome"], run["metrics"]
    acc = _accumulator(outcome.log_dir)
    content = acc.PluginTagToContent(hp_metadata.PLUGIN_NAME)
    assert {hp_metadata.EXPERIMENT_TAG, hp_metadata.SESSION_START_INFO_TAG} <= set(content)
    start = hp_metadata.parse_session_start_info_plugin_data(content[hp_metadata.SESSION_START_INFO_TAG])
    assert start.group_name == outcome.log_dir.name  # the trial id: the run's name
    values = {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
    assert values["loss"] == "ce" and values["protocol"] == "kfold" and values["lr"] == pytest.approx(0.001)
    assert values["dilation_size"] == 2 and values["split_fold"] == FOLDS and values["random_seed"] == SEED
    assert values["bidirection"] is False and "log_dir" not in values and "model_path" not in values
    experiment = hp_metadata.parse_experiment_plugin_data(content[hp_metadata.EXPERIMENT_TAG])
    assert [m.name.tag for m in experiment.metric_infos] == list(METRIC_TAGS.values())
    unset = {"max_folds", "classes", "splits", "test_data", "seeds"}  # settings this run leaves unset: a column, no value
    assert {h.name for h in experiment.hparam_infos} == {*values, *unset}
    assert not unset & set(values)
    for name, tag in METRIC_TAGS.items():
        (event,) = acc.Tensors(tag)
        assert float(tensor_util.make_ndarray(event.tensor_proto)) == pytest.approx(metrics[name], abs=1e-6)


def test_tensorboard_confusion_image_per_fold(run: dict[str, Any]) -> None:
    from PIL import Image
    from tensorboard.backend.event_processing import event_file_loader
    from tensorboard.util import tensor_util

    outcome = run["outcome"]
    for fold in (1, 2):
        folder = outcome.log_dir / f"fold_{fold}"
        events = [e for f in sorted(folder.glob("events.out.tfevents*"))
                  for e in event_file_loader.EventFileLoader(str(f)).Load()]
        images = [(e.step, v) for e in events for v in e.summary.value if v.tag == CONFUSION_TAG]
        assert len(images) == 1, f"fold {fold}: expected one confusion image"
        step, value = images[0]
        assert step == fold and value.metadata.plugin_data.plugin_name == "images"
        width, height, png = tensor_util.make_ndarray(value.tensor).tolist()
        image = Image.open(io.BytesIO(png))
        assert image.format == "PNG" and image.size == (int(width), int(height)) and image.size[0] > 300
        # Not a blank picture: the heat maps have many colours.
        assert len(np.unique(np.asarray(image.convert("RGB")).reshape(-1, 3), axis=0)) > 20

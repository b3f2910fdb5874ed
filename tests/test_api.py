"""The Python API (``timnet.model.TimNetModel``) on tiny untrained models and short recordings.

Each head's model is written three ways (a ``.keras`` file, a weights ``.hdf5`` and a
k-fold run folder) and loaded through ``TimNetModel.load``; the API lines of the
README are run on each. Windows are 8192 samples (17 frames) at 22 050 Hz.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from timnet.config import ArchitectureConfig
from timnet.errors import UserError
from timnet.model import Classification, TimNetModel
from timnet.modelfiles.metadata import ModelFileError, ModelMetadata

LENGTH, FRAMES = 8192, 17
CLASSES = ("angry", "happy", "neutral", "sad")
ARCH = ArchitectureConfig(dilation_size=4)  # receptive field covers the 17 frames


def _write_model(root: Path, head: str) -> dict[str, Path]:
    from timnet.modelfiles import keras2, portable
    from timnet.network.layers import build_timnet_model

    model = build_timnet_model((FRAMES, 39), len(CLASSES), ARCH, head=head)
    centroids = np.random.default_rng(1).standard_normal((len(CLASSES), 39)) if head == "embedding" else None
    meta = ModelMetadata(architecture=ARCH, head=head, class_labels=CLASSES, frames=FRAMES,
                         mean_signal_length=LENGTH, data="toy", centroids=centroids)
    folder = root / head
    keras_file = portable.save_portable(model, folder / "model.keras", meta)
    weights = keras2.write_weight_file(model, folder / "weights_best.hdf5", meta.to_dict(with_centroids=False),
                                       centroids=meta.centroids)
    run = folder / "run"
    for i in (1, 2):
        keras2.write_weight_file(model, run / f"2-fold_weights_best_{i}.hdf5", meta.to_dict(with_centroids=False),
                                 centroids=meta.centroids)
    return {"keras": keras_file, "hdf5": weights, "run": run}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("api")
    rng = np.random.default_rng(0)
    wavs = []
    for i in range(2):
        path = root / f"noise_{i}.wav"
        sf.write(path, (0.1 * rng.standard_normal(11025)).astype(np.float32), 22050)  # 0.5 s
        wavs.append(path)
    return {"root": root, "wavs": wavs, "softmax": _write_model(root, "softmax"),
            "embedding": _write_model(root, "embedding")}


@pytest.mark.parametrize("head", ["softmax", "embedding"])
def test_api_lines_on_every_file_kind(files: dict, head: str) -> None:
    x = np.random.default_rng(2).standard_normal((3, FRAMES, 39)).astype(np.float32)
    first_scores = None
    for kind, source in files[head].items():
        model = TimNetModel.load(source, fold=2) if kind == "run" else TimNetModel.load(source)
        assert model.class_labels == CLASSES and model.metadata.head == head
        assert isinstance(model.metadata, ModelMetadata) and model.metadata.mean_signal_length == LENGTH
        assert model.keras_model.input_shape[1:] == (FRAMES, 39)

        result = model.classify_file(files["wavs"][0])
        assert isinstance(result, Classification) and result.status == "ok"
        assert result.label in model.class_labels
        assert set(result.scores) == set(CLASSES) and all(isinstance(v, float) for v in result.scores.values())
        assert result.label == max(result.scores, key=result.scores.get)
        if head == "softmax":
            assert sum(result.scores.values()) == pytest.approx(1.0, abs=1e-5)
        else:
            assert all(-1.0 - 1e-6 <= v <= 1.0 + 1e-6 for v in result.scores.values())

        results = model.classify_files(files["wavs"], jobs=None, window_hop=None)
        assert [r.file for r in results] == [str(p) for p in files["wavs"]]
        assert all(r.ok and r.label in CLASSES for r in results)
        assert results[0].scores == pytest.approx(result.scores, abs=1e-6)

        outputs = model.predict(x)
        scores = model.scores(x)
        assert scores.shape == (3, len(CLASSES))
        if head == "softmax":
            np.testing.assert_allclose(outputs, scores, atol=1e-6)
            np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)
        else:
            assert outputs.shape == (3, 39)
            np.testing.assert_allclose(np.linalg.norm(outputs, axis=1), 1.0, atol=2e-2)  # x / (|x| + 1e-5)
        if first_scores is None:
            first_scores = scores
        np.testing.assert_allclose(scores, first_scores, atol=1e-5)  # same weights, every file kind

        missing = model.classify_file(files["root"] / "nowhere.wav")
        assert (missing.status, missing.label, missing.scores) == ("missing", None, {})


def test_save_round_trip_and_from_keras(files: dict, tmp_path: Path) -> None:
    model = TimNetModel.load(files["embedding"]["hdf5"])
    saved = model.save(tmp_path / "copy.keras")
    again = TimNetModel.load(saved)
    assert again.class_labels == CLASSES and again.metadata.architecture == model.metadata.architecture
    np.testing.assert_allclose(again.metadata.centroids, model.metadata.centroids)
    wrapped = TimNetModel.from_keras(model.keras_model, model.metadata)
    assert wrapped.classify_file(files["wavs"][1]).label in CLASSES


def test_bad_audio_never_raises(files: dict, tmp_path: Path) -> None:
    model = TimNetModel.load(files["softmax"]["keras"])
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "junk.wav").write_bytes(b"RIFF not audio" * 8)
    sf.write(tmp_path / "silent.wav", np.zeros(8000, np.float32), 16000)
    statuses = {Path(r.file).name: (r.status, r.label) for r in
                model.classify_files([tmp_path / "empty.wav", tmp_path / "junk.wav", tmp_path / "silent.wav"])}
    assert statuses == {"empty.wav": ("empty", None), "junk.wav": ("unreadable", None),
                        "silent.wav": ("silent", None)}


def test_overrides_name_the_flag(files: dict) -> None:
    for source in (files["embedding"]["keras"], files["embedding"]["hdf5"]):
        with pytest.raises(ModelFileError, match=r"--loss ce but the .* has the embedding \(N-pair\) head"):
            TimNetModel.load(source, overrides={"head": "softmax"})
        with pytest.raises(ModelFileError, match=r"--filter_size 64 but the .* has 39 filters"):
            TimNetModel.load(source, overrides={"filters": 64})


def test_not_a_timnet_keras_file_is_one_line(files: dict, tmp_path: Path) -> None:
    import keras

    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    plain = tmp_path / "plain.keras"
    other.save(plain)
    with pytest.raises(ModelFileError, match=r"plain.keras: not a TIM-Net model file .*timnet.json"):
        TimNetModel.load(plain)
    with zipfile.ZipFile(plain, "a") as archive:
        archive.writestr("timnet.json", json.dumps({"head": "softmax", "class_labels": ["a", "b"]}))
    with pytest.raises(ModelFileError, match=r"plain.keras: a Keras model without the TIM-Net layers"):
        TimNetModel.load(plain)
    broken = tmp_path / "broken.keras"
    broken.write_bytes(files["softmax"]["keras"].read_bytes())
    with zipfile.ZipFile(broken, "a") as archive:
        archive.writestr("timnet.json", "{not json")
    with pytest.raises(ModelFileError, match=r"broken.keras: malformed timnet.json") as info:
        TimNetModel.load(broken)
    assert "\n" not in str(info.value)


def test_export_replaces_only_with_overwrite(files: dict, tmp_path: Path) -> None:
    from timnet.modelfiles.export import export_model

    out = tmp_path / "exported.keras"
    result = export_model(files["softmax"]["hdf5"], out, "toy", None, 46)
    assert result.metadata.exported_from == str(files["softmax"]["hdf5"]) and out.is_file()
    with pytest.raises(UserError, match=r"exported.keras.*--overwrite"):
        export_model(files["softmax"]["hdf5"], out, "toy", None, 46)
    export_model(files["softmax"]["keras"], out, "toy", None, 46, overwrite=True)
    assert TimNetModel.load(out).metadata.exported_from == str(files["softmax"]["keras"])


def test_train_from_python_returns_the_report(tmp_path: Path) -> None:
    """``timnet.train`` runs a protocol as ``timnet train`` does; the report's figures are
    those of the model files it wrote (loaded back through ``timnet.load``)."""
    import timnet
    from helpers import write_tiny
    from timnet.evaluation.reports import EvaluationReport
    from timnet.features.files import load_features
    from timnet.protocols import kfold_splits

    data = write_tiny(tmp_path / "tiny.npy", frames=12)
    config = timnet.make_config({
        "data": str(data), "loss": "ce", "protocol": "kfold", "split_fold": 2, "epoch": 2, "batch_size": 16,
        "dilation_size": 2, "histogram_freq": 0, "gpu": "-1", "model_path": tmp_path / "models",
        "result_path": tmp_path / "results", "log_dir": tmp_path / "log"})
    outcome = timnet.train(config)
    assert isinstance(outcome.report, EvaluationReport) and [f.fold for f in outcome.report.folds] == [1, 2]
    assert outcome.model_dir.parent == tmp_path / "models" and len(outcome.weights) == 2
    features = load_features(data)
    n = len(features.class_labels)
    for split, fold in zip(kfold_splits(len(features.x), 2, config.random_seed), outcome.report.folds, strict=True):
        model = timnet.load(outcome.model_dir, fold=split.fold)
        again = model.evaluate(features, split.test)
        np.testing.assert_array_equal(again.y_pred, fold.y_pred)
        assert again.metrics(n)["WAR"] == pytest.approx(fold.metrics(n)["WAR"])
    assert outcome.report.summary()["WAR"] == pytest.approx(np.mean([f.metrics(n)["WAR"] for f in outcome.report.folds]))

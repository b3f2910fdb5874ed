"""Deploying a model: the MFCC front end as Keras layers, ONNX/LiteRT/SavedModel exports with
their metadata, and the runtime without TensorFlow (``inference/exported.py``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from helpers import REPO_ROOT, cli_env

LENGTH = 11025  # half a second: 22 MFCC frames
LABELS = ("angry", "happy", "sad")
# A child process in which importing TensorFlow or Keras fails (the runtime must not need them).
BLOCK_TF = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
"""


def signals(seed: int = 0) -> list[np.ndarray]:
    """Generated test signals: shorter, equal to and longer than the model's length (odd lengths
    too), tones, noise and a decaying chirp, at speech-like levels."""
    rng = np.random.default_rng(seed)
    t = np.arange(3 * LENGTH) / 22050
    chirp = (0.3 * np.sin(2 * np.pi * (200 + 900 * t) * t) * np.exp(-t)).astype(np.float32)
    return [
        (0.1 * rng.standard_normal(LENGTH)).astype(np.float32),
        (0.2 * rng.standard_normal(LENGTH - 777)).astype(np.float32),
        (0.5 * np.sin(2 * np.pi * 440 * t[: LENGTH + 1001])).astype(np.float32),
        chirp,
        (0.05 * rng.standard_normal(1234)).astype(np.float32),
    ]


def test_front_end_equals_librosa_mfcc():
    """CentreSignal + MfccFeatures compute what features/mfcc.py computes with librosa."""
    import keras

    from timnet.features import mfcc
    from timnet.network.frontend import CentreSignal, MfccFeatures

    inputs = keras.Input((None,))
    front = keras.Model(inputs, MfccFeatures(LENGTH)(CentreSignal(LENGTH)(inputs)))
    for signal in signals():
        want = mfcc.get_mfcc(signal, LENGTH)
        got = keras.ops.convert_to_numpy(front(signal[None]))[0]
        assert got.shape == want.shape == (22, 39)
        assert np.abs(got - want).max() <= 1e-4 * (want.max() - want.min()), len(signal)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny N-pair model with centroids (.keras) and its waveform-input ONNX export."""
    from timnet.config import ArchitectureConfig
    from timnet.model import TimNetModel
    from timnet.modelfiles.deploy_export import export_artifact

    folder = tmp_path_factory.mktemp("deploy")
    model = TimNetModel.build(LABELS, LENGTH, ArchitectureConfig(filters=8, dilation_size=3), head="embedding")
    centroids = np.random.default_rng(1).normal(size=(len(LABELS), 8)).astype(np.float32)
    model.metadata = model.metadata.with_centroids(centroids, "test")
    keras_file = model.save(folder / "weights_best.keras")
    onnx_file = folder / "model.onnx"
    export_artifact(keras_file, onnx_file, "onnx", "waveform", "EMODB", None, 46)
    wav = folder / "clip.wav"
    sf.write(wav, signals()[3], 22050)
    return keras_file, onnx_file, wav


def test_onnx_export_carries_metadata_and_scores_like_keras(exported):
    import onnx

    from timnet.inference.exported import ExportedPredictor
    from timnet.model import TimNetModel

    keras_file, onnx_file, _ = exported
    props = {p.key: p.value for p in onnx.load(str(onnx_file)).metadata_props}
    record = json.loads(props["timnet"])
    assert record["class_labels"] == list(LABELS) and record["input"] == "waveform"
    assert record["head"] == "embedding" and np.asarray(record["centroids"]).shape == (3, 8)
    assert record["preprocessing"]["mean_signal_length"] == LENGTH
    assert record["model_card"]["protocol"] == "holdout"
    reference = TimNetModel.load(keras_file)
    runtime = ExportedPredictor(onnx_file)
    for signal in signals():
        want = reference.classify_waveform(signal, 22050)
        got = runtime.score_signals([signal], ["x"])[0]
        assert got.predicted == want.label
        assert np.abs(got.scores - np.asarray(list(want.scores.values()))).max() < 1e-4


def test_onnx_predict_and_api_import_no_tensorflow(exported, tmp_path):
    """`timnet predict` and timnet.load(...).classify_file/classify_waveform on ONNX Runtime,
    in a process where importing TensorFlow or Keras fails."""
    _, onnx_file, wav = exported
    script = BLOCK_TF + f"""
import numpy as np, soundfile as sf, timnet
from timnet.cli import main
assert main(["predict", "--test_path", {str(onnx_file)!r}, "--wav", {str(wav)!r},
             "--result_path", {str(tmp_path / "out")!r}]) == 0
model = timnet.load({str(onnx_file)!r})
a = model.classify_file({str(wav)!r})
signal, rate = sf.read({str(wav)!r}, dtype="float32")
b = model.classify_waveform(signal, rate)
import soxr
c = model.classify_waveform(soxr.resample(signal, 22050, 16000, quality="soxr_hq"), 16000)
assert a.ok and a.label == b.label and max(abs(a.scores[k] - b.scores[k]) for k in a.scores) < 1e-6, (a, b)
assert c.ok, c
print("LOADED", sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")))
"""
    done = subprocess.run([sys.executable, "-c", script], env=cli_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "LOADED []" in done.stdout
    assert "1 of 1 files scored" in done.stdout
    rows = (next((tmp_path / "out").iterdir()) / "predictions.csv").read_text().splitlines()
    assert rows[0].startswith("file,status,predicted,angry,happy,sad")


def test_exported_file_errors_are_one_line(exported, tmp_path):
    import onnx

    from timnet.errors import UserError
    from timnet.inference.exported import ExportedPredictor
    from timnet.model import TimNetModel

    _, onnx_file, _ = exported
    bare = onnx.load(str(onnx_file))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(UserError, match=r"bare.onnx: no TIM-Net metadata .*timnet export --format onnx"):
        ExportedPredictor(tmp_path / "bare.onnx")
    (tmp_path / "m.tflite").write_bytes(b"not a model")
    with pytest.raises(UserError, match=r"m.tflite: no TIM-Net metadata \(the sidecar m.json\)"):
        ExportedPredictor(tmp_path / "m.tflite")
    model = TimNetModel.load(onnx_file)
    with pytest.raises(UserError, match=r"sample_rate 0: give the signal's sample rate"):
        model.classify_waveform(np.zeros(100, np.float32), 0)
    with pytest.raises(UserError, match=r"waveform 1: expected a mono signal"):
        model.classify_waveform(np.zeros((100, 2), np.float32), 22050)
    # the runtime is not installed: say what to install
    script = f"""
import sys
sys.modules["onnxruntime"] = None
from timnet.cli import main
sys.exit(main(["predict", "--test_path", {str(onnx_file)!r}, "--wav", {str(exported[2])!r},
               "--result_path", {str(tmp_path / "out")!r}]))
"""
    done = subprocess.run([sys.executable, "-c", script], env=cli_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "needs onnxruntime; install it with `pip install onnxruntime`" in done.stderr
    assert "Traceback" not in done.stderr
    # a core install (no TensorFlow) asked for a .keras model: say what to install
    script = script.replace('sys.modules["onnxruntime"]', 'sys.modules["tensorflow"]').replace(
        str(onnx_file), str(exported[0]))
    done = subprocess.run([sys.executable, "-c", script], env=cli_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert 'this command needs tensorflow, which the core install leaves out; install the training extra' in done.stderr


def test_export_flags_are_checked_before_any_work(exported, tmp_path):
    keras_file = exported[0]
    done = subprocess.run([sys.executable, "-m", "timnet", "export", "--test_path", str(keras_file), "--output",
                           str(tmp_path / "m.keras"), "--format", "onnx"], env=cli_env(), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "--format onnx writes a .onnx file" in done.stderr
    from timnet.errors import UserError
    from timnet.modelfiles.deploy_export import export_artifact

    with pytest.raises(UserError, match=r"--quantize: int8 weights are offered for --format onnx only"):
        export_artifact(keras_file, tmp_path / "m.tflite", "litert", "waveform", "EMODB", None, 46, quantize=True)
    with pytest.raises(UserError, match=r"--format keras writes the network itself"):
        export_artifact(keras_file, tmp_path / "m2.keras", "keras", "waveform", "EMODB", None, 46)


@pytest.mark.slow
@pytest.mark.parametrize("fmt,quantize", [("litert", False), ("onnx", True), ("saved_model", False)])
def test_other_formats_score_like_keras(exported, tmp_path, fmt, quantize):
    from timnet.config import EXPORT_SUFFIXES
    from timnet.model import TimNetModel
    from timnet.modelfiles.deploy_export import export_artifact

    keras_file = exported[0]
    out = tmp_path / f"model{EXPORT_SUFFIXES[fmt]}"
    export_artifact(keras_file, out, fmt, "waveform", "EMODB", None, 46, quantize=quantize)
    reference = TimNetModel.load(keras_file)
    batch = np.stack([np.resize(s, LENGTH) for s in signals()])
    want = np.stack([list(reference.classify_waveform(s, 22050).scores.values()) for s in batch])
    if fmt == "saved_model":
        import tensorflow as tf

        assert json.loads((out / "timnet.json").read_text())["class_labels"] == list(LABELS)
        loaded = tf.saved_model.load(str(out))  # kept: the function needs the object's variables
        got = loaded.serve(tf.constant(batch)).numpy()
    else:
        assert json.loads(out.with_suffix(".json").read_text())["class_labels"] == list(LABELS) if fmt == "litert" \
            else True
        got = TimNetModel.load(out).scores(batch)
    assert np.abs(got - want).max() < (5e-2 if quantize else 1e-4)


@pytest.mark.slow
def test_original_weights_export_to_onnx(tmp_path):
    """The original's Keras 2 weights file (no metadata) with --data EMODB -> a waveform ONNX model."""
    from test_legacy_weights import build_original, train_and_save
    from timnet.inference.exported import ExportedPredictor
    from timnet.model import TimNetModel

    path = tmp_path / "10-fold_weights_best_1.hdf5"
    train_and_save(build_original(8, 7), path, np.random.default_rng(0))
    done = subprocess.run([sys.executable, "-m", "timnet", "export", "--test_path", str(path), "--data", "EMODB",
                           "--format", "onnx", "--input", "waveform", "--output", str(tmp_path / "emodb.onnx")],
                          env={**cli_env(), "PYTHONPATH": str(REPO_ROOT / "Code")}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    runtime = ExportedPredictor(tmp_path / "emodb.onnx")
    assert runtime.class_labels[0] == "angry" and runtime.mean_signal_length == 96000
    assert runtime.record["model_card"]["protocol"] == "kfold" and runtime.record["model_card"]["fold"] == 1
    reference = TimNetModel.load(path, data="EMODB")
    signal = np.resize(signals()[3], 96000)
    want = reference.classify_waveform(signal, 22050)
    got = runtime.score_signals([signal], ["x"])[0]
    assert got.predicted == want.label
    assert np.abs(got.scores - np.asarray(list(want.scores.values()))).max() < 1e-4


@pytest.mark.slow
def test_fresh_environment_without_tensorflow_predicts(exported, tmp_path):
    """The package installed without its training extra into a new virtual environment
    (dependencies resolved by pip, not --no-deps) runs the README's ONNX predict lines."""
    _, onnx_file, wav = exported
    source = tmp_path / "src"  # a copy: building in the checkout would leave build/ and egg-info there
    shutil.copytree(REPO_ROOT / "Code" / "timnet", source / "Code" / "timnet",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    done = subprocess.run([*pip, str(source)], capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    listed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list"], capture_output=True, text=True)
    assert "tensorflow" not in listed.stdout.lower() and "onnxruntime" in listed.stdout.lower()
    (tmp_path / "sitecustomize.py").write_text(BLOCK_TF)
    env = {**cli_env(), "PYTHONPATH": str(tmp_path), "TIMNET_HOME": str(tmp_path)}
    env.pop("VIRTUAL_ENV", None)
    run = subprocess.run([str(venv / "bin" / "timnet"), "predict", "--test_path", str(onnx_file), "--wav", str(wav)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "1 of 1 files scored" in run.stdout
    api = subprocess.run([str(venv / "bin" / "python"), "-c",
                          f"import timnet; print(timnet.load({str(onnx_file)!r}).classify_file({str(wav)!r}).label)"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert api.returncode == 0 and api.stdout.strip() in LABELS, api.stderr[-2000:]
    assert os.path.isdir(tmp_path / "Results")

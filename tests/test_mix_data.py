"""INTERSECT: the original's label map and time-axis padding, from whatever MFCC/ holds."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from timnet.cli.features import mix_main
from timnet.features import mix as mix_data
from timnet.features.corpora import CLASS_LABELS, INTERSECT_MAP
from timnet.features.files import FeatureSet, load_features, read_npy, write_npy_dict


def one_hot(labels, n_classes):
    return np.eye(n_classes, dtype=np.float32)[labels]


def feature_set(name, labels, frames, speakers=None, files=None):
    classes = CLASS_LABELS[name]
    n = len(labels)
    x = (np.arange(n * frames * 39, dtype=np.float32).reshape(n, frames, 39) + 1)
    return FeatureSet(x=x, y=one_hot(labels, len(classes)), class_labels=classes, name=name,
                      speakers=None if speakers is None else np.array(speakers),
                      files=None if files is None else np.array(files))


def test_table_is_section_4_and_agrees_with_class_names():
    assert mix_data.intersect_mapping("CASIA", CLASS_LABELS["CASIA"]) == (0, -1, 1, 2, 3, 4)
    assert mix_data.intersect_mapping("EMODB", CLASS_LABELS["EMODB"]) == (0, -1, -1, -1, 1, 2, 3)
    assert mix_data.intersect_mapping("RAVDE", CLASS_LABELS["RAVDE"]) == (0, -1, -1, -1, 1, 2, 3, 4)
    for name, mapping in INTERSECT_MAP.items():
        assert mix_data.mapping_by_name(CLASS_LABELS[name]) == mapping, name
    assert mix_data.intersect_mapping("mine", ("sad", "calm", "angry")) == (3, -1, 0)


def test_remap_drops_and_renumbers():
    y = one_hot([0, 1, 4, 6, 2, 5], 7)  # EMODB: angry boredom happy sad disgust neutral
    keep, new_y = mix_data.remap(y, INTERSECT_MAP["EMODB"])
    assert keep.tolist() == [True, False, True, True, False, True]
    assert new_y.argmax(axis=1).tolist() == [0, 1, 3, 2]
    assert new_y.shape == (4, 5) and new_y.sum() == 4


def test_pad_time_floor_half_before():
    x = np.ones((2, 3, 39), dtype=np.float32)
    out = mix_data.pad_time(x, 6)  # 3 missing: 1 before, 2 after
    assert out.shape == (2, 6, 39)
    assert out[:, :, 0].tolist() == [[0, 1, 1, 1, 0, 0]] * 2
    assert mix_data.pad_time(x, 3) is x
    with pytest.raises(ValueError):
        mix_data.pad_time(x, 2)


def test_mix_pads_maps_and_carries_speakers():
    emodb = feature_set("EMODB", [0, 1, 6], 4, speakers=["03", "08", "16"], files=["a.wav", "b.wav", "c.wav"])
    esd = feature_set("ESD_train", [4, 2], 6, speakers=["0001", "0011"], files=["d.wav", "e.wav"])
    data = mix_data.mix([emodb, esd])
    assert data["x"].shape == (4, 6, 39)
    assert data["y"].argmax(axis=1).tolist() == [0, 3, 4, 2]
    np.testing.assert_array_equal(data["x"][0, 1:5], emodb.x[0])  # 2 missing: 1 before, 1 after
    assert (data["x"][:2, [0, 5]] == 0).all()
    np.testing.assert_array_equal(data["x"][2:], esd.x)
    assert data["speaker"].tolist() == ["EMODB/03", "EMODB/16", "ESD_train/0001", "ESD_train/0011"]
    assert data["path"].tolist() == ["EMODB/a.wav", "EMODB/c.wav", "ESD_train/d.wav", "ESD_train/e.wav"]
    assert data["corpus"].tolist() == ["EMODB", "EMODB", "ESD_train", "ESD_train"]
    assert data["speaker"].dtype.kind == "U"
    without = mix_data.mix([emodb, feature_set("SAVEE", [0], 2)])
    assert "speaker" not in without and "path" not in without


def write_inputs(mfcc_dir):
    rng = np.random.default_rng(1)
    for name, labels, frames in [("SAVEE", [0, 1, 6, 3], 3), ("EMODB", [4, 5, 2], 5), ("ESD_train", [0, 1], 4)]:
        n = len(labels)
        write_npy_dict(mfcc_dir / f"{name}.npy", {
            "x": rng.standard_normal((n, frames, 39)).astype(np.float32),
            "y": one_hot(labels, len(CLASS_LABELS[name])),
        })
    decoy = {"x": np.ones((1, 9, 39), np.float32), "y": np.ones((1, 5), np.float32)}
    for name in ("ESD_test.npy", "ESD_evaluation.npy", "INTERSECT.npy", "other.npy"):
        write_npy_dict(mfcc_dir / name, decoy)


def test_main_merges_present_corpora_deterministically(tmp_path, capsys):
    write_inputs(tmp_path)
    out = tmp_path / "INTERSECT.npy"
    assert mix_main(["--mfcc_dir", str(tmp_path)]) == 0
    stdout, stderr = capsys.readouterr()
    assert "EMODB: 3 utterances, 2 kept" in stdout and "SAVEE: 4 utterances, 3 kept" in stdout
    assert "skipped other.npy" in stderr
    fs = load_features(out)
    assert fs.class_labels == CLASS_LABELS["INTERSECT"]
    assert fs.x.shape == (7, 5, 39)  # longest corpus: EMODB, 5 frames; decoys (9 frames) ignored
    raw = read_npy(out)
    assert raw["corpus"].tolist() == ["EMODB"] * 2 + ["ESD_train"] * 2 + ["SAVEE"] * 3  # sorted file names
    assert fs.labels.tolist() == [1, 2, 0, 1, 0, 4, 1]
    first = out.read_bytes()
    assert mix_main(["--mfcc_dir", str(tmp_path), "--output", str(tmp_path / "again.npy")]) == 0
    assert (tmp_path / "again.npy").read_bytes() == first


def test_main_errors_exit_2_without_output(tmp_path, capsys):
    assert mix_main(["--mfcc_dir", str(tmp_path)]) == 2
    assert "no feature file to merge" in capsys.readouterr().err
    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'pwned'}",)
    with open(tmp_path / "EMODB.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": ()})
        f.write(pickle.dumps(Evil(), protocol=3))
    assert mix_main(["--mfcc_dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "EMODB.npy" in err and "refused" in err
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "INTERSECT.npy").exists()
    assert mix_main(["--mfcc_dir", str(tmp_path / "absent")]) == 2


def test_runs_as_the_seed_does(tmp_path, repo_root):
    write_inputs(tmp_path)
    env = {**os.environ, "PYTHONPATH": ""}
    result = subprocess.run(  # cd MFCC; python mix_data.py
        [sys.executable, "mix_data.py", "--mfcc_dir", str(tmp_path), "--output", str(tmp_path / "X.npy")],
        cwd=repo_root / "MFCC", env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert load_features(tmp_path / "X.npy").x.shape == (7, 5, 39)

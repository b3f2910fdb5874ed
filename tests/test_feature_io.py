"""Feature files: the original format round-trips, and a pickle that would run code is refused."""

from __future__ import annotations

import os
import pickle
import pickletools
from pathlib import Path

import numpy as np
import pytest

from timnet.features.files import FeatureFileError, atomic_path, load_features, read_npy, write_npy_dict


class _RunsCode:
    """Unpickling this calls os.system: what a malicious feature file does."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def write_object_npy(path: Path, payload: bytes) -> None:
    """A .npy whose object-array pickle is ``payload``, as np.save would lay it out."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": ()})
        f.write(payload)


def globals_of(payload: bytes) -> set[str]:
    """The names a pickle would import, read without executing it."""
    names, strings = set(), []
    for op, arg, _ in pickletools.genops(payload):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(arg)
        elif op.name == "STACK_GLOBAL":
            names.add(".".join(strings[-2:]))
        elif op.name == "GLOBAL":
            names.add(arg.replace(" ", "."))
    return names


def sample(n: int = 4, t: int = 5, c: int = 3) -> dict:
    rng = np.random.default_rng(0)
    return {"x": rng.standard_normal((n, t, 39)).astype(np.float32),
            "y": np.eye(c, dtype=np.float32)[np.arange(n) % c]}


def test_round_trip_readable_by_the_original_loader(tmp_path):
    data = {**sample(), "speaker": np.array(["a", "a", "b", "b"]), "path": np.array(["1", "2", "3", "4"])}
    path = write_npy_dict(tmp_path / "EMOVO.npy", data)
    original = np.load(path, allow_pickle=True).item()
    np.testing.assert_array_equal(original["x"], data["x"])
    safe = read_npy(path)
    assert set(safe) == set(data)
    np.testing.assert_array_equal(safe["y"], data["y"])
    fs = load_features(path, ("a", "b", "c"))
    assert fs.x.dtype == np.float32 and fs.speakers.tolist() == ["a", "a", "b", "b"]
    assert fs.files.tolist() == ["1", "2", "3", "4"]
    assert fs.labels.tolist() == [0, 1, 2, 0]
    assert [p.name for p in tmp_path.iterdir()] == ["EMOVO.npy"]  # no temporary left behind


def test_pickle_that_runs_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_RunsCode(marker), protocol=3)
    assert any(name.endswith(".system") for name in globals_of(payload))  # the file is truly dangerous
    bad = tmp_path / "EMODB.npy"
    write_object_npy(bad, payload)
    with pytest.raises(FeatureFileError, match="refused") as info:
        read_npy(bad)
    assert str(bad) in str(info.value)
    with pytest.raises(FeatureFileError, match="refused"):
        load_features(bad)
    assert not marker.exists()


def test_code_hidden_inside_a_legit_dict_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    data = {**sample(), "speaker": _RunsCode(marker)}
    payload = pickle.dumps(np.array(data, dtype=object), protocol=3)
    assert {name for name in globals_of(payload) if name.endswith(".system")}
    bad = tmp_path / "CASIA.npy"
    write_object_npy(bad, payload)
    with pytest.raises(FeatureFileError, match="refused"):
        read_npy(bad)
    assert not marker.exists()


def test_plain_arrays_and_broken_files(tmp_path):
    np.save(tmp_path / "plain.npy", np.arange(6.0))
    assert read_npy(tmp_path / "plain.npy").tolist() == [0, 1, 2, 3, 4, 5]
    with pytest.raises(FeatureFileError, match="expected a dict"):
        load_features(tmp_path / "plain.npy", ("a",))
    (tmp_path / "junk.npy").write_bytes(b"not numpy at all")
    with pytest.raises(FeatureFileError, match="not a valid .npy"):
        read_npy(tmp_path / "junk.npy")
    good = write_npy_dict(tmp_path / "good.npy", sample())
    (tmp_path / "cut.npy").write_bytes(good.read_bytes()[:200])
    with pytest.raises(FeatureFileError):
        read_npy(tmp_path / "cut.npy")
    with pytest.raises(FeatureFileError, match="not found"):
        read_npy(tmp_path / "absent.npy")


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("y"), "keys 'x' and 'y'"),
    (lambda d: d.update(x=d["x"][:, :, 0]), "shape"),
    (lambda d: d.update(y=d["y"][:3]), "utterances"),
    (lambda d: d.update(y=d["y"] * 2), "one-hot"),
    (lambda d: d.update(speaker=np.array(["a"])), "'speaker' has 1 entries"),
])
def test_load_features_validation(tmp_path, change, message):
    data = sample()
    change(data)
    path = write_npy_dict(tmp_path / "EMODB.npy", data)
    with pytest.raises(FeatureFileError, match=message):
        load_features(path, ("a", "b", "c"))


def test_class_labels_key_and_class_count(tmp_path):
    path = write_npy_dict(tmp_path / "mine.npy", {**sample(), "class_labels": np.array(["p", "q", "r"])})
    assert load_features(path).class_labels == ("p", "q", "r")
    plain = write_npy_dict(tmp_path / "other.npy", sample())
    with pytest.raises(FeatureFileError, match="unknown class names"):
        load_features(plain)
    with pytest.raises(FeatureFileError, match="3 classes"):
        load_features(plain, ("a", "b"))


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.npy"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []

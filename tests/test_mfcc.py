"""get_mfcc reproduces the original preprocessing; extract_many keeps order and reports bad files."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from timnet.features.mfcc import centre_signal, extract_many, get_mfcc, n_frames, parallel_map

SR = 22050


def write_wav(path: Path, n_samples: int, seed: int = 0, sr: int = SR) -> np.ndarray:
    rng = np.random.default_rng(seed)
    signal = (0.2 * rng.standard_normal(n_samples)).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, signal, sr, subtype="FLOAT")
    return signal


def direct_mfcc(path: Path, length: int) -> np.ndarray:
    """The seed's get_feature, written out with librosa calls."""
    signal, fs = librosa.load(str(path))
    if len(signal) < length:
        missing = length - len(signal)
        signal = np.pad(signal, (missing // 2, missing // 2 + missing % 2), "constant", constant_values=0)
    else:
        start = (len(signal) - length) // 2
        signal = signal[start:start + length]
    return librosa.feature.mfcc(y=signal, sr=fs, n_mfcc=39).T


def test_centre_signal_pads_odd_gap_left_floor_half():
    out = centre_signal(np.arange(1, 8, dtype=np.float32), 10)  # 3 missing: 1 left, 2 right
    assert out.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 0, 0]


def test_centre_signal_crops_the_middle():
    out = centre_signal(np.arange(13, dtype=np.float32), 10)  # 3 extra: start at 1
    assert out.tolist() == list(range(1, 11))
    assert centre_signal(np.arange(10.0), 10).tolist() == list(range(10))


@pytest.mark.parametrize("n_samples, length", [(3001, 4097), (3000, 4096), (5001, 4096), (5000, 4097), (4096, 4096)])
def test_get_mfcc_equals_direct_librosa(tmp_path, n_samples, length):
    path = tmp_path / "u.wav"
    write_wav(path, n_samples, seed=n_samples)
    expected = direct_mfcc(path, length)
    got = get_mfcc(path, length)
    assert got.shape == (1 + length // 512, 39) == expected.shape
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    # an array at 22 050 Hz gives the same as the file
    np.testing.assert_array_equal(get_mfcc(librosa.load(str(path))[0], length), expected)
    assert get_mfcc(str(path), length).shape == expected.shape


def test_get_mfcc_resamples_other_rates_like_librosa_load(tmp_path):
    path = tmp_path / "u16k.wav"
    signal = write_wav(path, 3000, sr=16000)
    from_file = get_mfcc(path, 4096)
    np.testing.assert_allclose(get_mfcc(signal, 4096, sr=16000), from_file, rtol=0, atol=1e-3)
    np.testing.assert_array_equal(from_file, direct_mfcc(path, 4096))


@pytest.mark.parametrize("length", [96000, 100000, 310000, 88000])
def test_frame_count(length):
    assert n_frames(length) == 1 + length // 512
    assert get_mfcc(np.ones(1000, dtype=np.float32), length).shape == (n_frames(length), 39)


def test_get_mfcc_rejects_bad_arrays():
    with pytest.raises(ValueError, match="mono"):
        get_mfcc(np.zeros((2, 100), dtype=np.float32), 1024)
    with pytest.raises(ValueError, match="empty"):
        get_mfcc(np.zeros(0, dtype=np.float32), 1024)


def test_extract_many_keeps_order_reports_bad_files_and_matches_any_jobs(tmp_path):
    paths = [tmp_path / f"f{i}.wav" for i in range(7)]
    for i, p in enumerate(paths):
        write_wav(p, 1500 + 97 * i, seed=i)
    paths[3].write_bytes(b"RIFF....not audio at all")
    paths.insert(5, tmp_path / "missing.wav")
    x1, fail1 = extract_many(paths, 2048, jobs=1, progress=False)
    x2, fail2 = extract_many(paths, 2048, jobs=2, progress=False)
    assert [f.index for f in fail1] == [3, 5] == [f.index for f in fail2]
    assert fail1[0].path == str(paths[3]) and fail1[0].reason
    assert fail1[1].path == str(paths[5]) and fail1[1].reason
    assert x1.shape == (6, n_frames(2048), 39) and x1.dtype == np.float32
    np.testing.assert_array_equal(x1, x2)
    good = [p for i, p in enumerate(paths) if i not in (3, 5)]
    for row, p in zip(x1, good):
        np.testing.assert_allclose(row, get_mfcc(p, 2048), rtol=0, atol=1e-3)


def test_parallel_map_keeps_task_order():
    tasks = [-(i % 7) * (-1) ** i for i in range(40)]
    assert list(parallel_map(abs, tasks, jobs=2, progress=False)) == [abs(t) for t in tasks]
    assert list(parallel_map(abs, tasks[:3], jobs=1, progress=False)) == [abs(t) for t in tasks[:3]]


def test_extract_many_empty_and_bad_jobs():
    x, failures = extract_many([], 1024, jobs=2, progress=False)
    assert x.shape == (0, 3, 39) and failures == []
    with pytest.raises(ValueError):
        extract_many([], 1024, jobs=0)


@pytest.mark.slow
def test_spawned_workers_give_the_same_features(tmp_path, monkeypatch):
    """With TensorFlow loaded (predict mode) workers are spawned, not forked."""
    from timnet.features import mfcc

    paths = [tmp_path / f"s{i}.wav" for i in range(3)]
    for i, p in enumerate(paths):
        write_wav(p, 1800 + i, seed=10 + i)
    monkeypatch.setattr(mfcc, "_start_method", lambda: "spawn")
    x2, failures = extract_many(paths, 2048, jobs=2, progress=False)
    x1, _ = extract_many(paths, 2048, jobs=1, progress=False)
    assert failures == []
    np.testing.assert_array_equal(x1, x2)

"""The synthetic demo corpus: ESD layout, determinism, re-run rules, and that its
emotions are learnable but not given away by one global statistic."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from timnet import cli
from timnet.errors import UserError
from timnet.features import demo_corpus as demo

SMALL = {"train": 1, "test": 1, "evaluation": 1}


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.wav"))}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("demo") / "Emotional_Speech_Dataset"
    counts = demo.generate_corpus(root, speakers=2, per_split=SMALL, seed=0, jobs=1)
    return root, counts


def test_layout_names_and_format(corpus: tuple[Path, dict]) -> None:
    root, counts = corpus
    assert counts["files"] == counts["written"] == 2 * 5 * 3
    assert counts["per_split"] == {"train": 10, "test": 10, "evaluation": 10}
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["0001", "0002"]
    for spk in ("0001", "0002"):
        assert sorted(p.name for p in (root / spk).iterdir() if p.is_dir()) == sorted(demo.EMOTIONS)
        lines = (root / spk / f"{spk}.txt").read_text(encoding="utf-8").splitlines()
        assert len(lines) == 15 and all(len(line.split("\t")) == 3 for line in lines)
        for emotion in demo.EMOTIONS:
            assert sorted(p.name for p in (root / spk / emotion).iterdir()) == ["evaluation", "test", "train"]
    # ESD numbering: emotions in the order Neutral, Angry, Happy, Sad, Surprise; evaluation, test, train.
    assert (root / "0001/Neutral/evaluation/0001_000001.wav").is_file()
    assert (root / "0001/Neutral/train/0001_000003.wav").is_file()
    assert (root / "0002/Angry/evaluation/0002_000004.wav").is_file()
    assert (root / "0002/Surprise/train/0002_000015.wav").is_file()
    wavs = sorted(root.rglob("*.wav"))
    assert len(wavs) == 30 and not list(root.rglob("*.part"))
    for p in wavs:
        info = sf.info(p)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert demo.MIN_SECONDS - 0.01 <= info.duration <= demo.MAX_SECONDS + 0.01
        y, _ = sf.read(p, dtype="float32")
        assert np.isfinite(y).all() and 0.02 < np.max(np.abs(y)) <= 0.98


def test_deterministic_for_a_seed(corpus: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = corpus
    first = {k: v for k, v in _digest(root).items() if k.startswith("0001/")}
    # Same seed, worker processes, fewer speakers: speaker 0001's files are byte-identical.
    again = demo.generate_corpus(tmp_path / "same", speakers=1, per_split=SMALL, seed=0, jobs=2)
    assert again["written"] == 15
    assert _digest(tmp_path / "same") == first
    demo.generate_corpus(tmp_path / "other", speakers=1, per_split=SMALL, seed=1, jobs=1)
    other = _digest(tmp_path / "other")
    assert other.keys() == first.keys() and all(other[k] != first[k] for k in other)
    a = demo.synthesize_utterance("sad", demo.make_speaker(1), np.random.default_rng(3), 16000)
    b = demo.synthesize_utterance("Sad", demo.make_speaker(1), np.random.default_rng(3), 16000)
    assert a.dtype == np.float32 and a.ndim == 1 and np.array_equal(a, b)
    with pytest.raises(ValueError, match="unknown emotion"):
        demo.synthesize_utterance("fear", demo.make_speaker(0), np.random.default_rng(0), 16000)


def test_rerun_is_idempotent_and_refuses_foreign_folders(tmp_path: Path) -> None:
    root = tmp_path / "esd"
    tiny = {"train": 1, "test": 0, "evaluation": 0}
    first = demo.generate_corpus(root, speakers=1, per_split=tiny, seed=0)
    before = _digest(root)
    (root / "0001/Sad/train/0001_000004.wav").unlink()
    second = demo.generate_corpus(root, speakers=1, per_split=tiny, seed=0)
    assert (first["written"], second["written"], second["skipped"]) == (5, 1, 4)
    assert _digest(root) == before
    with pytest.raises(UserError, match="--force"):
        demo.generate_corpus(root, speakers=1, per_split=tiny, seed=7)
    demo.generate_corpus(root, speakers=1, per_split={"train": 0, "test": 1, "evaluation": 0}, seed=7, force=True)
    assert sorted(p.parent.name for p in root.rglob("*.wav")) == ["test"] * 5
    foreign = tmp_path / "real"
    (foreign / "0011/Angry/train").mkdir(parents=True)
    (foreign / "0011/Angry/train/0011_000351.wav").write_bytes(b"RIFF")
    with pytest.raises(UserError, match="did not write"):
        demo.generate_corpus(foreign, speakers=1, per_split=tiny, force=True)
    assert cli.main(["demo-corpus", "--output", str(foreign), "--speakers", "1"]) == 2


def _stats(path: Path) -> tuple[float, float, float]:
    """RMS level (dB), mean zero-crossing rate, median f0 of the loud frames (Hz)."""
    import librosa

    y, sr = sf.read(path, dtype="float32")
    frames = librosa.util.frame(y, frame_length=1024, hop_length=256)
    energy = np.sqrt(np.mean(frames**2, axis=0))
    zcr = np.mean(np.abs(np.diff(np.signbit(y).astype(np.int8))))
    f0 = librosa.yin(y, fmin=60, fmax=500, sr=sr, frame_length=1024, hop_length=256, center=False)
    loud = energy[: len(f0)] > 0.3 * energy.max()
    return 20 * np.log10(np.sqrt(np.mean(y**2))), float(zcr), float(np.median(f0[loud]))


def _interval_separable(values: np.ndarray, labels: np.ndarray) -> bool:
    """Whether thresholds on this one statistic could classify every file correctly
    (each class occupies one contiguous run in sorted order)."""
    ordered = labels[np.argsort(values, kind="stable")]
    runs = 1 + int(np.sum(ordered[1:] != ordered[:-1]))
    return runs == len(set(labels))


def test_emotions_differ_but_no_single_statistic_separates_them(corpus: tuple[Path, dict]) -> None:
    root, _ = corpus
    wavs = sorted(root.rglob("*.wav"))
    labels = np.array([p.parent.parent.name for p in wavs])
    speakers = np.array([p.parent.parent.parent.name for p in wavs])
    stats = np.array([_stats(p) for p in wavs])
    for j, name in enumerate(("rms", "zcr", "f0")):
        assert not _interval_separable(stats[:, j], labels), f"{name} alone separates the emotions"
    # Pitch in semitones relative to each speaker's median: acted emotions shift it.
    f0_st = np.empty(len(wavs))
    for s in set(speakers):
        m = speakers == s
        f0_st[m] = 12 * np.log2(stats[m, 2] / np.median(stats[m, 2]))
    mean = {e: f0_st[labels == e].mean() for e in demo.EMOTIONS}
    assert mean["Sad"] < mean["Neutral"] < min(mean["Angry"], mean["Happy"], mean["Surprise"])
    assert max(mean["Happy"], mean["Surprise"]) - mean["Sad"] > 3.0
    level = {e: stats[labels == e, 0].mean() for e in demo.EMOTIONS}
    assert level["Sad"] < level["Neutral"] < level["Angry"]

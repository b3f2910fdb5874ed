"""Corpus parsers read each published layout; the extraction CLIs write the original format."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from timnet import cli
from timnet.cli.features import esd_main
from timnet.features import corpus_prep
from timnet.features.corpora import CLASS_LABELS
from timnet.features.corpus_prep import LayoutError, casia, emodb, emovo, esd, generic, iemocap, ravdess, savee
from timnet.features.files import load_features, read_npy
from timnet.features.mfcc import extract_many

SR = 22050


def wav(path: Path, n_samples: int = 600, seed: int | None = None) -> Path:
    rng = np.random.default_rng(seed if seed is not None else len(str(path)))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.1 * rng.standard_normal(n_samples)).astype(np.float32), SR)
    return path


def triples(utterances, root: Path) -> list[tuple[str, str, str | None]]:
    return [(u.path.relative_to(root).as_posix(), u.label, u.speaker) for u in utterances]


# --- layouts -----------------------------------------------------------------------------


def test_emodb_letters_and_speakers(tmp_path):
    for name in ["03a01Wa.wav", "16b10Tb.wav", "08a02Lc.wav", "10a05Ea.wav", "11b01Ab.wav", "12a01Fa.wav",
                 "13a01Nc.wav"]:
        wav(tmp_path / "wav" / name)
    wav(tmp_path / "wav" / "notes.wav")  # not an EMO-DB name
    (tmp_path / "wav" / "03a01Xa.wav").write_bytes(b"")  # unknown letter
    got = triples(emodb.list_utterances(tmp_path), tmp_path)
    assert got == [
        ("wav/03a01Wa.wav", "angry", "03"), ("wav/08a02Lc.wav", "boredom", "08"),
        ("wav/10a05Ea.wav", "disgust", "10"), ("wav/11b01Ab.wav", "fear", "11"),
        ("wav/12a01Fa.wav", "happy", "12"), ("wav/13a01Nc.wav", "neutral", "13"),
        ("wav/16b10Tb.wav", "sad", "16"),
    ]
    assert sorted({label for _, label, _ in got}) == sorted(CLASS_LABELS["EMODB"])


def test_ravdess_speech_only(tmp_path):
    for actor, emotion in [(1, 1), (1, 2), (2, 3), (2, 4), (12, 5), (12, 6), (24, 7), (24, 8)]:
        wav(tmp_path / f"Actor_{actor:02d}" / f"03-01-{emotion:02d}-01-01-01-{actor:02d}.wav")
    wav(tmp_path / "Actor_01" / "03-02-03-01-01-01-01.wav")  # song: left out
    wav(tmp_path / "Actor_01" / "01-01-03-01-01-01-01.wav")  # audio-video modality: left out
    got = triples(ravdess.list_utterances(tmp_path), tmp_path)
    assert got == [
        ("Actor_01/03-01-01-01-01-01-01.wav", "neutral", "Actor_01"),
        ("Actor_01/03-01-02-01-01-01-01.wav", "calm", "Actor_01"),
        ("Actor_02/03-01-03-01-01-01-02.wav", "happy", "Actor_02"),
        ("Actor_02/03-01-04-01-01-01-02.wav", "sad", "Actor_02"),
        ("Actor_12/03-01-05-01-01-01-12.wav", "angry", "Actor_12"),
        ("Actor_12/03-01-06-01-01-01-12.wav", "fear", "Actor_12"),
        ("Actor_24/03-01-07-01-01-01-24.wav", "disgust", "Actor_24"),
        ("Actor_24/03-01-08-01-01-01-24.wav", "surprise", "Actor_24"),
    ]


def test_savee_prefixes_folders_and_flat_names(tmp_path):
    root = tmp_path / "AudioData"
    for spk, name in [("DC", "a01.wav"), ("DC", "sa02.wav"), ("JE", "su15.wav"), ("JK", "d03.wav"),
                      ("KL", "f01.wav"), ("KL", "h04.wav"), ("KL", "n30.wav")]:
        wav(root / spk / name)
    wav(root / "DC" / "info.wav")
    wav(tmp_path / "ALL" / "JE_sa03.wav")  # the flat variant of some mirrors
    got = triples(savee.list_utterances(tmp_path), tmp_path)
    assert got == [
        ("ALL/JE_sa03.wav", "sad", "JE"),
        ("AudioData/DC/a01.wav", "angry", "DC"), ("AudioData/DC/sa02.wav", "sad", "DC"),
        ("AudioData/JE/su15.wav", "surprise", "JE"), ("AudioData/JK/d03.wav", "disgust", "JK"),
        ("AudioData/KL/f01.wav", "fear", "KL"), ("AudioData/KL/h04.wav", "happy", "KL"),
        ("AudioData/KL/n30.wav", "neutral", "KL"),
    ]


def test_emovo_italian_prefixes(tmp_path):
    for spk, emo in [("f1", "dis"), ("f1", "gio"), ("f2", "neu"), ("m1", "pau"), ("m2", "rab"), ("m3", "sor"),
                     ("m3", "tri")]:
        wav(tmp_path / spk / f"{emo}-{spk}-b1.wav")
    wav(tmp_path / "m3" / "xyz-m3-b1.wav")
    got = triples(emovo.list_utterances(tmp_path), tmp_path)
    assert got == [
        ("f1/dis-f1-b1.wav", "disgust", "f1"), ("f1/gio-f1-b1.wav", "happy", "f1"),
        ("f2/neu-f2-b1.wav", "neutral", "f2"), ("m1/pau-m1-b1.wav", "fear", "m1"),
        ("m2/rab-m2-b1.wav", "angry", "m2"), ("m3/sor-m3-b1.wav", "surprise", "m3"),
        ("m3/tri-m3-b1.wav", "sad", "m3"),
    ]


def test_casia_speaker_and_emotion_folders(tmp_path):
    root = tmp_path / "CASIA"
    for spk, emo in [("liuchanhg", "angry"), ("wangzhe", "fear"), ("wangzhe", "happy"),
                     ("zhaoquanyin", "neutral"), ("ZhaoZuoxiang", "sad"), ("ZhaoZuoxiang", "surprise")]:
        wav(root / spk / emo / "201.wav")
    wav(root / "wangzhe" / "calm" / "201.wav")  # not a CASIA class
    wav(root / "angry" / "x.wav")  # no speaker folder
    got = triples(casia.list_utterances(root), root)
    assert got == [
        ("ZhaoZuoxiang/sad/201.wav", "sad", "ZhaoZuoxiang"),
        ("ZhaoZuoxiang/surprise/201.wav", "surprise", "ZhaoZuoxiang"),
        ("liuchanhg/angry/201.wav", "angry", "liuchanhg"),
        ("wangzhe/fear/201.wav", "fear", "wangzhe"),
        ("wangzhe/happy/201.wav", "happy", "wangzhe"),
        ("zhaoquanyin/neutral/201.wav", "neutral", "zhaoquanyin"),
    ]


def make_iemocap(root: Path) -> None:
    s1 = root / "Session1"
    lines = {
        "Ses01F_impro01": [("Ses01F_impro01_F000", "neu"), ("Ses01F_impro01_M001", "exc"),
                           ("Ses01F_impro01_F002", "fru"), ("Ses01F_impro01_M003", "xxx")],
        "Ses01M_script01_1": [("Ses01M_script01_1_M000", "ang"), ("Ses01M_script01_1_F001", "hap"),
                              ("Ses01M_script01_1_F002", "sad"), ("Ses01M_script01_1_M099", "neu")],
    }
    evaluation = s1 / "dialog" / "EmoEvaluation"
    (evaluation / "Categorical").mkdir(parents=True)
    for dialog, utts in lines.items():
        text = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
        for i, (utt, code) in enumerate(utts):
            text += [f"[{i}.0100 - {i}.9000]\t{utt}\t{code}\t[2.5000, 2.5000, 2.5000]",
                     "C-E2:\tNeutral;\t()", "A-E1:\tval 3; act 2; dom  2;\t()", ""]
            if utt.endswith("M099"):
                continue  # labelled but no audio
            wav(s1 / "sentences" / "wav" / dialog / f"{utt}.wav")
        (evaluation / f"{dialog}.txt").write_text("\n".join(text))
    (evaluation / "Categorical" / "Ses01F_impro01_e1_cat.txt").write_text("Ses01F_impro01_F002 :Anger; ()\n")
    wav(s1 / "dialog" / "wav" / "Ses01F_impro01.wav")  # whole dialogue: no label


def test_iemocap_labels_from_emoevaluation(tmp_path):
    make_iemocap(tmp_path)
    got = triples(iemocap.list_utterances(tmp_path), tmp_path)
    base = "Session1/sentences/wav/"
    assert got == [
        (base + "Ses01F_impro01/Ses01F_impro01_F000.wav", "neutral", "Ses01F"),
        (base + "Ses01F_impro01/Ses01F_impro01_M001.wav", "happy", "Ses01M"),  # exc merged into happy
        (base + "Ses01M_script01_1/Ses01M_script01_1_F001.wav", "happy", "Ses01F"),
        (base + "Ses01M_script01_1/Ses01M_script01_1_F002.wav", "sad", "Ses01F"),
        (base + "Ses01M_script01_1/Ses01M_script01_1_M000.wav", "angry", "Ses01M"),
    ]
    assert iemocap.speaker_of("Ses05M_impro08_F029") == "Ses05F"
    # The session (group-kfold --group session: leave one session out).
    assert {u.session for u in iemocap.list_utterances(tmp_path)} == {"Ses01"}


def test_iemocap_without_labels_is_a_layout_error(tmp_path):
    wav(tmp_path / "Session1" / "sentences" / "wav" / "d" / "Ses01F_impro01_F000.wav")
    with pytest.raises(LayoutError, match="EmoEvaluation"):
        iemocap.list_utterances(tmp_path)


def make_esd(root: Path) -> None:
    for spk in ("0001", "0011"):
        for emo in ("Angry", "Happy", "Neutral", "Sad", "Surprise"):
            for split in ("train", "test", "evaluation"):
                wav(root / spk / emo / split / f"{spk}_{emo}_{split}.wav")
        (root / spk / f"{spk}.txt").write_text("transcripts")


def test_esd_splits(tmp_path):
    make_esd(tmp_path)
    for split in esd.SPLITS:
        got = triples(esd.list_utterances(tmp_path, split), tmp_path)
        assert len(got) == 10
        assert all(f"/{split}/" in p for p, _, _ in got)
        assert Counter(label for _, label, _ in got) == {c: 2 for c in CLASS_LABELS["ESD"]}
        assert {spk for _, _, spk in got} == {"0001", "0011"}
    assert esd.spec("test").name == "ESD_test"
    with pytest.raises(LayoutError):
        esd.list_utterances(tmp_path, "dev")


def test_generic_class_folders(tmp_path):
    for cls in ("sad", "angry", "happy"):
        wav(tmp_path / cls / "a.wav")
        wav(tmp_path / cls / "sub" / "b.wav")
    (tmp_path / "empty").mkdir()
    assert generic.class_folders(tmp_path) == ("angry", "happy", "sad")
    got = triples(generic.list_utterances(tmp_path), tmp_path)
    assert got[:2] == [("angry/a.wav", "angry", None), ("angry/sub/b.wav", "angry", None)]
    assert len(got) == 6
    only = generic.list_utterances(tmp_path, ["sad", "happy"])
    assert {u.label for u in only} == {"sad", "happy"}


def test_registry_and_empty_layouts(tmp_path):
    assert corpus_prep.get_spec("ravde") is corpus_prep.get_spec("RAVDESS")
    assert corpus_prep.get_spec("emodb").mean_signal_length == 96000
    assert {s.name for s in corpus_prep.CORPORA.values()} == {
        "CASIA", "EMODB", "EMOVO", "IEMOCAP", "RAVDE", "SAVEE", "ESD_train"}
    with pytest.raises(LayoutError, match="unknown corpus"):
        corpus_prep.get_spec("TIMIT")
    wav(tmp_path / "unrelated.wav")
    for spec in corpus_prep.CORPORA.values():
        if spec.name != "IEMOCAP":
            with pytest.raises(LayoutError, match="no audio file matches"):
                spec.list_utterances(tmp_path)
    with pytest.raises(LayoutError, match="not found"):
        emodb.list_utterances(tmp_path / "absent")


# --- CLIs ----------------------------------------------------------------------------------


def make_emodb(root: Path) -> list[str]:
    names = ["03a01Wa.wav", "03a02Wb.wav", "08a01Lc.wav", "09b03Ea.wav", "10a01Aa.wav", "11a01Fa.wav",
             "12a01Nc.wav", "16b10Tb.wav"]
    for i, name in enumerate(names):
        wav(root / "wav" / name, 500 + 211 * i)
    return names


def run_cli(main, args, capsys) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_extract_features_writes_original_format(tmp_path, capsys):
    names = make_emodb(tmp_path / "emodb")
    out = tmp_path / "MFCC"
    code, stdout, _ = run_cli(lambda argv: cli.main(["extract", *argv]), [
        "--corpus", "emodb", "--input", str(tmp_path / "emodb"), "--output", str(out),
        "--mean_signal_length", "2048", "--jobs", "2", "--no_progress"], capsys)
    assert code == 0 and "skipped 0 file(s)" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["EMODB.npy"]
    original = np.load(out / "EMODB.npy", allow_pickle=True).item()  # what the original code does
    assert original["x"].shape == (8, 5, 39) and original["y"].shape == (8, 7)
    raw = read_npy(out / "EMODB.npy")
    for key in ("speaker", "path", "class_labels"):
        assert raw[key].dtype.kind == "U"  # plain strings, not object arrays
    fs = load_features(out / "EMODB.npy")
    assert fs.speakers.tolist() == [n[:2] for n in names]
    assert fs.files.tolist() == [f"wav/{n}" for n in names]
    assert [fs.class_labels[i] for i in fs.labels] == [emodb.LETTERS[n[5]] for n in names]
    x, _ = extract_many([tmp_path / "emodb" / "wav" / n for n in names], 2048, jobs=1, progress=False)
    np.testing.assert_array_equal(fs.x, x)


def test_extract_features_skips_corrupt_files(tmp_path, capsys):
    make_emodb(tmp_path / "emodb")
    bad = tmp_path / "emodb" / "wav" / "14a01Wa.wav"
    bad.write_bytes(b"RIFF\x00\x00garbage")
    code, stdout, stderr = run_cli(lambda argv: cli.main(["extract", *argv]), [
        "--corpus", "EMODB", "--input", str(tmp_path / "emodb"), "--output", str(tmp_path / "o"),
        "--mean_signal_length", "1024", "--jobs", "1", "--no_progress", "--name", "MYDB"], capsys)
    assert code == 0
    assert f"skipped {bad}" in stderr and "skipped 1 file(s)" in stdout
    fs = load_features(tmp_path / "o" / "MYDB.npy")
    assert len(fs.x) == 8 and "wav/14a01Wa.wav" not in fs.files.tolist()


def test_extract_features_generic_layout(tmp_path, capsys):
    for cls in ("happy", "angry"):
        for i in range(2):
            wav(tmp_path / "mine" / cls / f"{i}.wav", 700 + i)
    code, stdout, _ = run_cli(lambda argv: cli.main(["extract", *argv]), [
        "--corpus", "generic", "--input", str(tmp_path / "mine"), "--output", str(tmp_path / "o"),
        "--classes", "happy,angry", "--mean_signal_length", "1024", "--jobs", "1", "--no_progress"], capsys)
    assert code == 0, stdout
    raw = read_npy(tmp_path / "o" / "mine.npy")
    assert raw["class_labels"].tolist() == ["happy", "angry"]
    assert "speaker" not in raw
    assert raw["y"].argmax(axis=1).tolist() == [1, 1, 0, 0]  # sorted by path, columns in --classes order
    assert raw["path"].tolist() == ["angry/0.wav", "angry/1.wav", "happy/0.wav", "happy/1.wav"]
    assert load_features(tmp_path / "o" / "mine.npy").class_labels == ("happy", "angry")


@pytest.mark.parametrize("args, message", [
    (["--corpus", "TIMIT"], "unknown corpus"),
    (["--corpus", "EMODB"], "no audio file matches"),
    (["--corpus", "RAVDESS", "--classes", "a,b"], "only for --corpus generic"),
    (["--corpus", "generic", "--classes", "a,a"], "twice"),
    (["--corpus", "EMODB", "--name", "../x"], "plain file name"),
])
def test_extract_features_errors_exit_2_without_output(tmp_path, capsys, args, message):
    wav(tmp_path / "in" / "a" / "x.wav")
    out = tmp_path / "out"
    code, _, stderr = run_cli(
        lambda argv: cli.main(["extract", *argv]), [*args, "--input", str(tmp_path / "in"), "--output", str(out), "--no_progress"], capsys)
    assert code == 2
    assert stderr.startswith("error: ") and message in stderr and stderr.count("\n") == 1
    assert not out.exists() or not any(out.iterdir())


def test_extract_features_all_unreadable_or_missing_input(tmp_path, capsys):
    (tmp_path / "in" / "wav").mkdir(parents=True)
    (tmp_path / "in" / "wav" / "03a01Wa.wav").write_bytes(b"junk")
    out = tmp_path / "out"
    code, _, stderr = run_cli(lambda argv: cli.main(["extract", *argv]), [
        "--corpus", "EMODB", "--input", str(tmp_path / "in"), "--output", str(out), "--jobs", "1",
        "--no_progress"], capsys)
    assert code == 2 and "none of the 1 audio files" in stderr
    assert not out.exists() or not any(out.iterdir())
    code, _, stderr = run_cli(lambda argv: cli.main(["extract", *argv]), [
        "--corpus", "EMODB", "--input", str(tmp_path / "nowhere"), "--output", str(out)], capsys)
    assert code == 2 and "input folder not found" in stderr


def test_esd_2_npy_writes_splits(tmp_path, capsys):
    make_esd(tmp_path / "esd")
    out = tmp_path / "MFCC"
    code, stdout, _ = run_cli(esd_main, [
        "--input", str(tmp_path / "esd"), "--output", str(out), "--mean_signal_length", "1024", "--jobs", "1",
        "--no_progress", "--evaluation"], capsys)
    assert code == 0, stdout
    assert sorted(p.name for p in out.iterdir()) == ["ESD_evaluation.npy", "ESD_test.npy", "ESD_train.npy"]
    fs = load_features(out / "ESD_train.npy")
    assert fs.x.shape == (10, 3, 39) and fs.class_labels == CLASS_LABELS["ESD_train"]
    assert all("/train/" in p for p in fs.files)
    code, _, stderr = run_cli(esd_main, ["--input", str(tmp_path / "none"), "--output", str(out)], capsys)
    assert code == 2 and "ESD folder not found" in stderr


def test_esd_2_npy_runs_as_the_seed_does_from_any_cwd(tmp_path, repo_root):
    make_esd(tmp_path / "esd")
    env = {**os.environ, "PYTHONPATH": ""}
    common = ["--input", str(tmp_path / "esd"), "--mean_signal_length", "1024", "--jobs", "1", "--no_progress"]
    seed_style = subprocess.run(  # cd Code; python esd_2_npy.py
        [sys.executable, "esd_2_npy.py", *common, "--output", str(tmp_path / "a")],
        cwd=repo_root / "Code", env=env, capture_output=True, text=True, timeout=120)
    assert seed_style.returncode == 0, seed_style.stderr
    anywhere = subprocess.run(  # python <repo>/Code/esd_2_npy.py from elsewhere; missing split -> exit 2
        [sys.executable, str(repo_root / "Code" / "esd_2_npy.py"), "--input", str(tmp_path / "a"),
         "--output", str(tmp_path / "b")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert anywhere.returncode == 2 and anywhere.stderr.startswith("error: ")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["ESD_test.npy", "ESD_train.npy"]
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_real_emodb_extraction(emodb_dir):
    utterances = emodb.list_utterances(emodb_dir)
    assert len(utterances) == 535
    x, failures = extract_many([u.path for u in utterances], 96000, progress=False)
    assert failures == []
    assert x.shape == (535, 188, 39)
    counts = Counter(u.label for u in utterances)
    assert [counts[c] for c in CLASS_LABELS["EMODB"]] == [127, 81, 46, 69, 71, 79, 62]
    assert len({u.speaker for u in utterances}) == 10
    assert np.isfinite(x).all()


# --- audio formats -------------------------------------------------------------------------

# (suffix, soundfile format, subtype): lossless FLAC and lossy OGG/Vorbis, as corpora circulate.
FORMATS = [(".flac", "FLAC", "PCM_16"), (".ogg", "OGG", "VORBIS")]


def audio(path: Path, n_samples: int = 600, seed: int | None = None) -> Path:
    """Like :func:`wav`, in the format of the path's suffix."""
    rng = np.random.default_rng(seed if seed is not None else len(path.stem))
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt, subtype = {s: (f, t) for s, f, t in FORMATS}.get(path.suffix, ("WAV", "PCM_16"))
    sf.write(path, (0.1 * rng.standard_normal(n_samples)).astype(np.float32), SR, format=fmt, subtype=subtype)
    return path


@pytest.mark.parametrize("suffix", [s for s, _, _ in FORMATS])
def test_every_parser_reads_every_audio_format(tmp_path, suffix):
    """Each published layout, its files in another format than .wav (one list of suffixes
    for the parsers and the predictor: timnet.features.audio_formats)."""
    from timnet.features.audio_formats import AUDIO_SUFFIXES
    from timnet.inference.featurise import find_audio

    assert suffix in AUDIO_SUFFIXES
    layouts = {
        "EMODB": ["wav/03a01Wa", "wav/16b10Tb"],
        "RAVDESS": ["Actor_01/03-01-05-01-01-01-01", "Actor_02/03-01-08-02-01-01-02"],
        "SAVEE": ["AudioData/DC/a01", "AudioData/KL/su02"],
        "EMOVO": ["f1/dis-f1-b1", "m2/tri-m2-l3"],
        "CASIA": ["wangzhe/angry/201", "liuchanhg/sad/202"],
        "ESD": ["0011/Angry/train/0011_000001", "0012/Sad/train/0012_000002"],
    }
    for corpus, stems in layouts.items():
        root = tmp_path / corpus
        for stem in stems:
            audio(root / f"{stem}{suffix}")
        audio(root / f"._{stems[0].rsplit('/', 1)[-1]}{suffix}")  # a macOS resource fork: not audio
        got = corpus_prep.get_spec(corpus).list_utterances(root)
        assert [u.path.relative_to(root).as_posix() for u in got] == sorted(f"{s}{suffix}" for s in stems), corpus
        assert [u.path for u in got] == find_audio(root)  # what predict would score in that folder
    # IEMOCAP and the generic layout
    make_iemocap(tmp_path / "IEMOCAP")
    for path in list((tmp_path / "IEMOCAP").rglob("*.wav")):
        audio(path.with_suffix(suffix))
        path.unlink()
    assert {u.path.suffix for u in iemocap.list_utterances(tmp_path / "IEMOCAP")} == {suffix}
    audio(tmp_path / "mine" / "happy" / f"0{suffix}")
    assert [u.label for u in generic.list_utterances(tmp_path / "mine")] == ["happy"]


def test_extract_reads_flac_and_ogg(tmp_path, capsys):
    """An EMO-DB folder of FLAC, OGG and WAV files: FLAC (lossless) gives exactly the
    features of the same samples as WAV; OGG is read too."""
    names = make_emodb(tmp_path / "wavs")
    root = tmp_path / "mixed" / "wav"
    root.mkdir(parents=True)
    for i, name in enumerate(names):
        signal, sr = sf.read(tmp_path / "wavs" / "wav" / name, dtype="int16")
        stem = Path(name).stem
        fmt, suffix = [("FLAC", ".flac"), ("OGG", ".ogg"), ("WAV", ".wav")][i % 3]
        sf.write(root / f"{stem}{suffix}", signal, sr, format=fmt, subtype="VORBIS" if fmt == "OGG" else "PCM_16")
    code, stdout, _ = run_cli(lambda argv: cli.main(["extract", *argv]), [
        "--corpus", "EMODB", "--input", str(tmp_path / "mixed"), "--output", str(tmp_path / "o"),
        "--mean_signal_length", "2048", "--jobs", "1", "--no_progress"], capsys)
    assert code == 0 and f"EMODB: {len(names)} files" in stdout and "skipped 0 file(s)" in stdout
    fs = load_features(tmp_path / "o" / "EMODB.npy")
    assert [Path(p).suffix for p in fs.files] == [[".flac", ".ogg", ".wav"][i % 3] for i in range(len(names))]
    assert [fs.class_labels[i] for i in fs.labels] == [emodb.LETTERS[n[5]] for n in names]
    x_wav, _ = extract_many([tmp_path / "wavs" / "wav" / n for n in names], 2048, jobs=1, progress=False)
    lossless = [i for i in range(len(names)) if i % 3 != 1]
    np.testing.assert_array_equal(fs.x[lossless], x_wav[lossless])
    assert np.isfinite(fs.x).all()


def test_real_ravdess_flac_extraction(ravdess_dir, tmp_path, capsys):
    """``timnet extract --corpus RAVDESS`` on the real FLAC copy: a few files of two
    actors (symlinks, to keep it quick), at the corpus's signal length."""
    subset = tmp_path / "ravdess"
    picked = []
    for actor in ("Actor_01", "Actor_24"):
        files = sorted((ravdess_dir / "flac" / actor).glob("*.flac"))
        assert len(files) == 60
        (subset / actor).mkdir(parents=True)
        for src in files[::15]:  # 4 files per actor, several emotions
            (subset / actor / src.name).symlink_to(src)
            picked.append(src)
    code, stdout, _ = run_cli(lambda argv: cli.main(["extract", *argv]), [
        "--corpus", "RAVDESS", "--input", str(subset), "--output", str(tmp_path / "MFCC"), "--jobs", "2",
        "--no_progress"], capsys)
    assert code == 0 and "skipped 0 file(s)" in stdout, stdout
    fs = load_features(tmp_path / "MFCC" / "RAVDE.npy")
    assert fs.x.shape == (len(picked), 1 + 110000 // 512, 39) and np.isfinite(fs.x).all()
    assert fs.class_labels == CLASS_LABELS["RAVDE"]
    expected = [ravdess.parse_name(p.name) for p in picked]
    assert [(fs.class_labels[i], s) for i, s in zip(fs.labels, fs.speakers)] == expected
    assert fs.files.tolist() == [f"{p.parent.name}/{p.name}" for p in picked]

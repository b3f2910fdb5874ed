"""Speaker-independent folds (group-kfold) and published partitions (splits: CSV and
EmoBox's fold lists): splits, errors, and a run that trains, is interrupted, resumes,
tests and exports like the other protocols."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import write_tiny
from timnet import protocols
from timnet.errors import UserError
from timnet.features.files import load_features, read_npy, write_npy_dict
from timnet.protocols import ProtocolSettings

SEED = 46


def _corpus(path: Path, n: int = 40, speakers: int = 4, sessions: bool = False) -> Path:
    """A tiny feature file with speakers and file names (``<class>/u<i>.wav``), as timnet extract writes."""
    write_tiny(path, n=n, frames=12, speakers=speakers)
    data = read_npy(path)
    labels = np.argmax(data["y"], axis=1)
    data["path"] = np.asarray([f"{data['class_labels'][c]}/u{i:03d}.wav" for i, c in enumerate(labels)])
    if sessions:
        data["session"] = np.asarray([f"Ses0{i % 2 + 1}" for i in range(n)])
    return write_npy_dict(path, data)


def _emobox(folder: Path, features_path: Path, test_speakers: list[list[str]]) -> Path:
    """EmoBox's layout and row format (data/<corpus>/fold_<k>/<corpus>_{train,test}_fold_<k>.jsonl),
    with EmoBox's own paths, keys and emotion names (which must not matter)."""
    features = load_features(features_path)
    for k, held in enumerate(test_speakers, start=1):
        fold = folder / f"fold_{k}"
        fold.mkdir(parents=True)
        for part in ("train", "test"):
            rows = []
            for file, speaker in zip(features.files, features.speakers, strict=True):
                if (speaker in held) == (part == "test"):
                    stem = Path(file).stem
                    rows.append({"key": f"tiny-{stem}", "dataset": "tiny", "wav": f"downloads/tiny/wav/{stem}.wav",
                                 "type": "raw", "sample_rate": 16000, "num_frame": 32000.0, "task": "category",
                                 "length": 2.0, "emo": "boredem", "channel": 1})
            (fold / f"tiny_{part}_fold_{k}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_group_kfold_keeps_every_group_in_one_fold_stratified_and_seeded(tmp_path: Path) -> None:
    features = load_features(_corpus(tmp_path / "g.npy", n=60, speakers=6, sessions=True))
    group_kfold = protocols.get("group-kfold")
    splits = group_kfold.splits(features, ProtocolSettings(seed=SEED, folds=3))
    assert len(splits) == 3
    tested = np.concatenate([s.test for s in splits])
    np.testing.assert_array_equal(np.sort(tested), np.arange(60))
    for split in splits:
        train_groups, test_groups = set(features.speakers[split.train]), set(features.speakers[split.test])
        assert not train_groups & test_groups and split.held_out == ",".join(sorted(test_groups))
        assert set(features.labels[split.test]) == set(range(5))  # stratified: every class in every fold
        assert not group_kfold.keeps_best_epoch(split)
    again = group_kfold.splits(features, ProtocolSettings(seed=SEED, folds=3))
    assert [s.held_out for s in again] == [s.held_out for s in splits]
    sessions = group_kfold.splits(features, ProtocolSettings(seed=SEED, folds=2, group="session"))
    assert sorted(s.held_out for s in sessions) == ["Ses01", "Ses02"]
    with pytest.raises(UserError, match="number of speakers"):
        group_kfold.splits(features, ProtocolSettings(seed=SEED, folds=7))
    plain = load_features(_corpus(tmp_path / "p.npy"))
    with pytest.raises(UserError, match="'session' key"):
        group_kfold.splits(plain, ProtocolSettings(folds=2, group="session"))


def test_extraction_stores_the_session_key(tmp_path: Path) -> None:
    from timnet.features.corpus_prep import Utterance
    from timnet.features.extract import feature_dict

    utterances = [Utterance(tmp_path / f"{i}.wav", "angry" if i % 2 else "sad", "Ses01F", "Ses01") for i in range(2)]
    data = feature_dict(utterances, ("angry", "sad"), np.zeros((2, 4, 3), np.float32), [], tmp_path)
    assert data["session"].tolist() == ["Ses01", "Ses01"]


def test_split_files_csv_and_emobox_match_by_stem(tmp_path: Path) -> None:
    path = _corpus(tmp_path / "tiny.npy")
    features = load_features(path)
    stems = [Path(f).stem for f in features.files]
    splits_protocol = protocols.get("splits")
    # CSV of fold numbers, with a header and other folders and extensions.
    csv_file = tmp_path / "folds.csv"
    csv_file.write_text("file,fold\n" + "".join(f"/data/x/{s}.flac,{1 + i % 2}\n" for i, s in enumerate(stems)))
    splits = splits_protocol.splits(features, ProtocolSettings(splits=str(csv_file)))
    assert [s.held_out for s in splits] == ["fold 1", "fold 2"]
    np.testing.assert_array_equal(splits[0].test, np.arange(0, 40, 2))
    assert not splits_protocol.keeps_best_epoch(splits[0])
    # CSV of train/valid/test: one fold whose validation part picks the best epoch.
    parts = tmp_path / "parts.csv"
    parts.write_text("".join(f"{s}.wav,{('train', 'train', 'valid', 'test')[i % 4]}\n" for i, s in enumerate(stems)))
    (split,) = splits_protocol.splits(features, ProtocolSettings(splits=str(parts)))
    assert len(split.train) == 20 and len(split.valid) == len(split.test) == 10
    assert splits_protocol.keeps_best_epoch(split)
    # EmoBox: labels from the feature file, whatever the list says.
    emobox = _emobox(tmp_path / "emobox", path, [["s0", "s1"], ["s2", "s3"]])
    splits = splits_protocol.splits(features, ProtocolSettings(splits=str(emobox)))
    np.testing.assert_array_equal(splits[0].test, np.flatnonzero(np.isin(features.speakers, ["s0", "s1"])))
    # Errors: a row that matches nothing, an utterance in no row, duplicate stems.
    bad = tmp_path / "bad.csv"
    bad.write_text("".join(f"{s}.wav,{1 + i % 2}\n" for i, s in enumerate(stems)) + "nowhere.wav,1\n")
    with pytest.raises(UserError, match=r"1 row\(s\) of fold 1 \(test\) match no utterance.*nowhere"):
        splits_protocol.splits(features, ProtocolSettings(splits=str(bad)))
    short = tmp_path / "short.csv"
    short.write_text("".join(f"{s}.wav,{1 + i % 2}\n" for i, s in enumerate(stems[:-1])))
    with pytest.raises(UserError, match=rf"1 utterance\(s\) are in no row.*{stems[-1]}"):
        splits_protocol.splits(features, ProtocolSettings(splits=str(short)))
    data = read_npy(path)
    data["path"][1] = "other/" + Path(str(data["path"][0])).name
    twice = write_npy_dict(tmp_path / "twice.npy", data)
    with pytest.raises(UserError, match="occur twice"):
        splits_protocol.splits(load_features(twice), ProtocolSettings(splits=str(csv_file)))
    from timnet.config import ConfigError, make_config

    with pytest.raises(ConfigError, match="--splits FILE"):
        make_config({"protocol": "splits"})


def test_emobox_folds_train_resume_test_and_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run on EmoBox-format fold lists stopped after fold 1 resumes to the end; test
    and export rebuild each fold from the model file (no --splits given)."""
    import keras

    import timnet
    from timnet.evaluation.testing import test
    from timnet.modelfiles.export import export_model
    from timnet.modelfiles.loading import load_model
    from timnet.training import loop

    path = _corpus(tmp_path / "tiny.npy")
    emobox = _emobox(tmp_path / "emobox", path, [["s0", "s1"], ["s2", "s3"]])
    settings = {"data": str(path), "loss": "npair", "protocol": "splits", "splits": str(emobox), "epoch": 1,
                "batch_size": 16, "dilation_size": 2, "filter_size": 8, "histogram_freq": 0, "gpu": "-1",
                "model_path": tmp_path / "models", "result_path": tmp_path / "results", "log_dir": tmp_path / "log"}
    original = loop.fold_callbacks

    class StopAfterFold1(keras.callbacks.Callback):
        def __init__(self, stop: object) -> None:
            super().__init__()
            self.stop = stop

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.stop.requested = True

    def stopping(config, features, split, writer, interrupt, *args, **kwargs):  # noqa: ANN001, ANN202
        extra = [StopAfterFold1(interrupt)] if split.fold == 1 else []
        return original(config, features, split, writer, interrupt, *args, **kwargs) + extra

    monkeypatch.setattr(loop, "fold_callbacks", stopping)
    first = timnet.train(timnet.make_config(settings), figures=False)
    assert first.resume_command and [f.fold for f in first.report.folds] == [1]
    monkeypatch.setattr(loop, "fold_callbacks", original)
    done = timnet.train(timnet.make_config({**settings, "resume": str(first.model_dir)}), figures=False)
    assert done.resume_command is None and [f.fold for f in done.report.folds] == [1, 2]
    assert [p.name for p in done.weights] == ["splits_weights_1.hdf5", "splits_weights_2.hdf5"]
    assert done.report.kind == "splits" and (done.result_dir / "metrics.json").is_file()
    features = load_features(path)
    expected = [np.flatnonzero(np.isin(features.speakers, held)) for held in (["s0", "s1"], ["s2", "s3"])]
    identity = load_model(done.weights[1], "tiny").metadata.fold
    assert (identity.protocol, identity.fold, identity.held_out) == ("splits", 2, "fold 2")
    assert identity.options["splits"] == str(emobox.absolute()) and len(identity.options["digest"]) == 16
    # Test: the folds come from the files (the configuration names no split file).
    config = timnet.make_config({"data": str(path)})
    report = test(config, features, done.model_dir, {}, with_fused=False)
    for fold, index, trained in zip(report.folds, expected, done.report.folds, strict=True):
        np.testing.assert_array_equal(fold.index, index)
        np.testing.assert_array_equal(fold.y_pred, trained.y_pred)
    result = export_model(done.weights[0], tmp_path / "fold1.keras", "tiny", features, SEED)
    assert result.metadata.fold == load_model(done.weights[0], "tiny").metadata.fold


def test_group_kfold_trains_and_tests(tmp_path: Path) -> None:
    import timnet
    from timnet.evaluation.testing import test

    path = _corpus(tmp_path / "tiny.npy")
    config = timnet.make_config({
        "data": str(path), "loss": "ce", "protocol": "group-kfold", "split_fold": 2, "group": "speaker", "epoch": 1,
        "batch_size": 16, "dilation_size": 2, "filter_size": 4, "histogram_freq": 0, "gpu": "-1",
        "model_path": tmp_path / "models", "result_path": tmp_path / "results", "log_dir": tmp_path / "log"})
    outcome = timnet.train(config, outputs=False)
    assert [p.name for p in outcome.weights] == ["2-groupfold_weights_1.hdf5", "2-groupfold_weights_2.hdf5"]
    features = load_features(path)
    report = test(config.replace(random_seed=0), features, outcome.model_dir, {}, with_fused=False)
    assert report.kind == "2groupfold"
    for fold, trained in zip(report.folds, outcome.report.folds, strict=True):
        np.testing.assert_array_equal(fold.index, trained.index)
        assert not set(features.speakers[fold.index]) & set(np.delete(features.speakers, fold.index))

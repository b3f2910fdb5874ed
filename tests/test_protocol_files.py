"""Model files record their fold; test and export rebuild the split from the file.

Files written before the record existed (ours without it, and the original's) still
test and export by their names and ``--random_seed``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from helpers import write_tiny

SEED = 46


@pytest.fixture(scope="module")
def kfold_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    import timnet

    tmp = tmp_path_factory.mktemp("protocol_files")
    data = write_tiny(tmp / "tiny.npy", n=40, frames=12)
    config = timnet.make_config({
        "data": str(data), "loss": "npair", "protocol": "kfold", "split_fold": 2, "epoch": 1, "batch_size": 16,
        "dilation_size": 2, "filter_size": 8, "histogram_freq": 0, "gpu": "-1", "random_seed": SEED,
        "model_path": tmp / "models", "result_path": tmp / "results", "log_dir": tmp / "log"})
    outcome = timnet.train(config)
    return {"tmp": tmp, "data": data, "config": config, "outcome": outcome}


def _strip_record(folder: Path, out: Path, centroids: bool = True) -> Path:
    """A copy of a run's weights files as they were written before the fold was recorded
    (``centroids`` False: without class centroids too, as the original's)."""
    out.mkdir()
    for path in sorted(folder.glob("*.hdf5")):
        copy = shutil.copy(path, out / path.name)
        with h5py.File(copy, "r+") as f:
            record = json.loads(f.attrs["timnet_metadata"])
            assert record.pop("protocol")["seed"] == SEED
            f.attrs["timnet_metadata"] = json.dumps(record)
            if not centroids:
                del f["timnet_centroids"]
    return out


def test_model_files_record_protocol_fold_seed_and_held_out_part(kfold_run: dict) -> None:
    from timnet.modelfiles.loading import load_model

    for fold, path in enumerate(kfold_run["outcome"].weights, start=1):
        for file in (path, path.with_suffix(".keras")):
            identity = load_model(file, "toy").metadata.fold
            assert (identity.protocol, identity.fold, identity.folds, identity.seed, identity.held_out) == (
                "kfold", fold, 2, SEED, str(fold)), file


def test_test_takes_the_split_from_the_file_and_old_files_from_name_and_seed(kfold_run: dict) -> None:
    from timnet.evaluation.testing import test
    from timnet.features.files import load_features
    from timnet.protocols import kfold_splits

    features = load_features(kfold_run["data"])
    config = kfold_run["config"]
    run = kfold_run["outcome"].model_dir
    trained = kfold_run["outcome"].report.folds
    expected = kfold_splits(len(features.x), 2, SEED)
    # A re-typed, different --random_seed does not change which utterances a recorded fold is scored on.
    report = test(config.replace(random_seed=SEED + 1), features, run, {}, with_fused=False)
    assert report.kind == "2fold"
    for fold, split, before in zip(report.folds, expected, trained, strict=True):
        np.testing.assert_array_equal(fold.index, split.test)
        np.testing.assert_array_equal(fold.y_pred, before.y_pred)
    # Files without the record: by name and --random_seed, as the original's.
    old = _strip_record(run, kfold_run["tmp"] / "old_run")
    report = test(config, features, old, {}, with_fused=False)
    for fold, before in zip(report.folds, trained, strict=True):
        np.testing.assert_array_equal(fold.index, before.index)
        np.testing.assert_array_equal(fold.y_pred, before.y_pred)
    other = test(config.replace(random_seed=SEED + 1), features, old, {}, with_fused=False)
    moved = kfold_splits(len(features.x), 2, SEED + 1)
    for fold, split in zip(other.folds, moved, strict=True):
        np.testing.assert_array_equal(fold.index, split.test)


def test_export_finds_the_training_part_from_the_record_or_the_name(kfold_run: dict) -> None:
    from timnet.features.files import load_features
    from timnet.modelfiles.export import export_model, training_index
    from timnet.modelfiles.loading import load_model
    from timnet.protocols import kfold_splits

    features = load_features(kfold_run["data"])
    path = kfold_run["outcome"].weights[1]
    recorded = load_model(path, "toy").metadata.fold
    train = kfold_splits(len(features.x), 2, SEED)[1].train
    index, which = training_index(path, features, SEED + 5, recorded)
    np.testing.assert_array_equal(index, train)
    assert f"seed {SEED}" in which
    index, _ = training_index(path, features, SEED, None)  # an old file: its name and --random_seed
    np.testing.assert_array_equal(index, train)
    # An old embedding file without centroids exports with its fold's training centroids.
    old = _strip_record(kfold_run["outcome"].model_dir, kfold_run["tmp"] / "old_export", centroids=False)
    result = export_model(old / path.name, kfold_run["tmp"] / "old.keras", "toy", features, SEED)
    assert result.metadata.centroids is not None and result.metadata.fold is None
    assert "fold 2" in result.centroids_note and "20 utterances" in result.centroids_note


def test_a_resume_state_written_before_the_new_settings_still_resumes(kfold_run: dict, tmp_path: Path) -> None:
    """States recorded before group-kfold and split files existed have no ``group``/``splits``."""
    from timnet.training import resume
    from timnet.training.run import Run

    config = kfold_run["config"].replace(model_path=tmp_path / "models", max_folds=1)
    old_settings = {k: v for k, v in config.as_dict().items() if k not in ("group", "splits")}
    run_dir = tmp_path / "models" / "tiny_46_20250101-000000"
    run_dir.mkdir(parents=True)
    from timnet.features.files import load_features

    features = load_features(kfold_run["data"])
    resume.RunState(run_dir, old_settings, resume.data_fingerprint(features)).save()
    plan = Run(config.replace(resume=str(run_dir)), given={}).setup()
    assert plan.state is not None and plan.state.completed == []
    assert (plan.config.protocol, plan.config.group, plan.config.splits) == ("kfold", "speaker", None)
    assert [s.fold for s in plan.splits] == [1] and plan.n_folds == 2

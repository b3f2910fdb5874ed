"""``train`` and ``test``: parse into the configuration, run, print and write the reports."""

from __future__ import annotations

import argparse
import datetime as dt
import re
import time
from pathlib import Path

from timnet import paths
from timnet.cli.common import user_path
from timnet.cli.options import architecture_overrides, config_from_args, given_settings
from timnet.config import TrainingConfig
from timnet.errors import UserError
from timnet.evaluation import provenance
from timnet.features.files import load_data
from timnet.training.protocols import training_splits

SEED_TEST_PATH = "Test_Models/INTERSECT_46_dilation_8_dropout_05_add_esd_npairLoss"


def seed_everything(seed: int) -> None:
    """Python, NumPy and TensorFlow seeds, and deterministic kernels on the CPU."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if not tf.config.list_logical_devices("GPU"):
        tf.config.experimental.enable_op_determinism()


def enable_mixed_precision() -> None:
    import keras
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):
        keras.mixed_precision.set_global_policy("mixed_float16")
    else:
        print("--mixed_precision ignored: no GPU in use (float16 is slower on the CPU).")


def elapsed(start: float) -> str:
    return str(dt.timedelta(seconds=round(time.time() - start)))


def print_written(folder: Path, written: dict[str, Path]) -> None:
    """Where the reports and figures of a run are."""
    print(f"Reports in {folder}:")
    for path in sorted(set(written.values())):
        print(f"  {path}")


def excel_name(config: TrainingConfig, kind: str, war: float, folder: Path) -> str:
    """The original's workbook name: ``<data>_<kind>_<WAR>_<seed>_<time>.xlsx``."""
    stamp = re.search(r"\d{8}-\d{6}(_\d+)?$", folder.name)
    return f"{config.data_name}_{kind}_{war:.4f}_{config.random_seed}_{stamp[0] if stamp else folder.name}.xlsx"


def run_train(args: argparse.Namespace) -> int:
    start, started = time.time(), dt.datetime.now(dt.UTC)
    config = config_from_args(args)  # impossible settings fail before anything loads
    data = config.data
    if config.resume:  # the run's own settings; a flag that contradicts them fails here
        from timnet.training import resume

        config = resume.resume_config(config.resume, paths.resolve(config.model_path), given_settings(args))
        data = resume.recorded_data_file(config)
    config = config.replace(model_path=paths.resolve(config.model_path), result_path=paths.resolve(config.result_path),
                            log_dir=paths.resolve(config.log_dir))
    for name in ("model_path", "result_path", "log_dir"):
        paths.check_writable(getattr(config, name), f"--{name}")
    features = load_data(data)  # bad data fails at once, before TensorFlow loads
    training_splits(config, features)  # so do classes a protocol cannot train on
    feature_record = provenance.feature_file_record(features.path)  # the file as read, before training

    from timnet.evaluation.run_outputs import write_test_outputs, write_train_outputs
    from timnet.training.devices import configure_devices, is_chief
    from timnet.training.loop import train

    strategy = configure_devices(config.gpu)
    if config.mixed_precision:
        enable_mixed_precision()
    seed_everything(config.random_seed)
    arch = config.architecture
    print(f"Data {features.path}: {features.x.shape[0]} utterances x {features.x.shape[1]} frames x "
          f"{features.x.shape[2]} MFCCs, classes {', '.join(features.class_labels)}")
    print(f"Recipe: {config.loss} loss, {config.protocol} protocol, dropout {arch.dropout}, "
          f"{config.epoch} epochs, batch {config.batch_size}, seed {config.random_seed}")
    outcome = train(config, features, strategy, keep_state=True)
    if not is_chief(strategy):
        return 0
    print(f"\nTraining finished in {elapsed(start)}; weights in {outcome.model_dir}")
    outcome.report.print()
    outcome.report.provenance = provenance.collect(outcome.report, feature_record, strategy=strategy, started=started)
    figures = not getattr(args, "no_figures", False)
    written = write_train_outputs(outcome, figures=figures)
    kind = {"kfold": f"{config.split_fold}fold", "holdout": "holdout", "loso": "loso"}[config.protocol]
    name = excel_name(config, kind, outcome.report.summary()["WAR"], outcome.result_dir)
    written = write_test_outputs(outcome.report, outcome.result_dir, excel_name=name, figures=figures,
                                 already=written)
    print_written(outcome.result_dir, written)
    if outcome.finish is not None:  # the reports are written: the run is complete
        outcome.finish()
    if outcome.resume_command:
        print(f"\nThe run is incomplete; continue it with:\n  {outcome.resume_command}")
    return 0


def default_test_path(model_path: Path) -> Path:
    """The seed's published weights when downloaded, else the newest run under ``model_path``."""
    seed = paths.resolve(SEED_TEST_PATH)
    if seed.exists():
        return seed
    from timnet.training.resume import is_incomplete, resume_command

    runs = [p for p in model_path.iterdir() if p.is_dir() and any(p.glob("[!.]*.hdf5"))] if model_path.is_dir() else []
    complete = [p for p in runs if not is_incomplete(p)]
    newest = max(complete, key=lambda p: p.stat().st_mtime) if complete else None
    for run in sorted(p for p in runs if is_incomplete(p) and (newest is None or
                                                                 p.stat().st_mtime > newest.stat().st_mtime)):
        print(f"Skipping the incomplete run {run}; continue it with: {resume_command(run)}")
    if newest is None:
        raise UserError(f"no --test_path given and no complete trained run under {model_path}: train first (or "
                        f"resume an incomplete run), or download the published weights to {SEED_TEST_PATH}")
    print(f"Testing the newest complete run: {newest}")
    return newest


def run_test(args: argparse.Namespace) -> int:
    started = dt.datetime.now(dt.UTC)
    config = config_from_args(args)
    overrides = architecture_overrides(args)
    config = config.replace(model_path=paths.resolve(config.model_path), result_path=paths.resolve(config.result_path))
    paths.check_writable(config.result_path, "--result_path")
    features = load_data(config.data)  # bad data fails at once, before TensorFlow loads
    feature_record = provenance.feature_file_record(features.path)

    from timnet.evaluation.run_outputs import write_test_outputs
    from timnet.evaluation.testing import test
    from timnet.training.devices import configure_devices
    from timnet.training.loop import timestamp

    strategy = configure_devices(config.gpu)
    seed_everything(config.random_seed)
    test_path = user_path(args.test_path) if getattr(args, "test_path", None) else default_test_path(config.model_path)
    figures = not getattr(args, "no_figures", False)
    report = test(config, features, test_path, overrides, with_fused=figures)
    (result_dir,) = paths.create_exclusive([config.result_path / f"{config.data_name}_test_{timestamp()}"])
    print(f"Test of {test_path} on {features.path} ({len(features.x)} utterances)")
    report.print()
    report.provenance = provenance.collect(report, feature_record, strategy=strategy, started=started)
    kind = f"{len(report.folds)}fold" if len(report.folds) > 1 else "test"
    if report.folds and report.folds[0].name.startswith("speaker "):
        kind = "loso"
    name = excel_name(config, kind, report.summary()["WAR"], result_dir)
    written = write_test_outputs(report, result_dir, excel_name=name, figures=figures)
    print_written(result_dir, written)
    return 0

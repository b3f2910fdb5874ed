"""``train`` and ``test``: parse into the configuration, run, print and write the reports."""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

from timnet import paths
from timnet.cli.common import user_path
from timnet.cli.options import architecture_overrides, config_from_args, given_settings
from timnet.config import TrainingConfig
from timnet.errors import UserError

SEED_TEST_PATH = "Test_Models/INTERSECT_46_dilation_8_dropout_05_add_esd_npairLoss"


def elapsed(start: float) -> str:
    return str(dt.timedelta(seconds=round(time.time() - start)))


def print_written(folder: Path, written: dict[str, Path]) -> None:
    """Where the reports and figures of a run are."""
    print(f"Reports in {folder}:")
    for path in sorted(set(written.values())):
        print(f"  {path}")


def run_train(args: argparse.Namespace) -> int:
    """Parse into a configuration; :class:`timnet.training.run.Run` does the rest (as ``timnet.train``)."""
    from timnet.training.run import Run

    start = time.time()
    config = config_from_args(args)  # impossible settings fail before anything loads
    if config.seeds or series_folder(config) is not None:
        return run_series(args, config)
    run = Run(config, given=given_settings(args))
    plan = run.setup()  # so do the folders, the data and classes a protocol cannot train on
    strategy = run.prepare_devices()
    config, features = plan.config, plan.features
    for note in plan.notes:
        print(note)
    arch = config.architecture
    print(f"Data {features.path}: {features.x.shape[0]} utterances x {features.x.shape[1]} frames x "
          f"{features.x.shape[2]} MFCCs, classes {', '.join(features.class_labels)}")
    print(f"Recipe: {config.loss} loss, {config.protocol} protocol, dropout {arch.dropout}, "
          f"{config.epoch} epochs, batch {config.batch_size}, seed {config.random_seed}")
    outcome = run.execute(keep_state=True)
    from timnet.training.devices import is_chief

    if not is_chief(strategy):
        return 0
    print(f"\nTraining finished in {elapsed(start)}; weights in {outcome.model_dir}")
    outcome.report.print()
    written = run.finish(outcome, figures=not getattr(args, "no_figures", False))
    print_written(outcome.result_dir, written)
    if outcome.finish is not None:  # the reports are written: the run is complete
        outcome.finish()
    if outcome.resume_command:
        print(f"\nThe run is incomplete; continue it with:\n  {outcome.resume_command}")
    return 0


def series_folder(config: TrainingConfig) -> Path | None:
    """``--resume``'s folder when it is a series (``series.json``), else None."""
    if not config.resume or config.resume == "last":
        return None
    from timnet.training.series import is_series

    return is_series(config.resume, paths.resolve(config.model_path))


def run_series(args: argparse.Namespace, config: TrainingConfig, corpora: list[str] | None = None) -> int:
    """A series: ``--seeds`` (each seed's run), ``timnet cross-corpus`` (every ordered pair for
    each seed), or ``--resume <series folder>`` (its recorded plan; only --gpu may be given)."""
    from timnet.training.series import SERIES_FILE, Series, plan_cross_corpus, plan_seeds
    from timnet.training.series import run_series as run

    given = given_settings(args)
    folder = series_folder(config)
    gpu = None
    if folder is not None:
        extra = sorted(set(given) - {"resume", "gpu", "model_path"})
        if corpora or extra:
            flag = "--corpora" if corpora else f"--{extra[0]}"
            raise UserError(f"{flag}: a series resumes with the settings it recorded ({folder / SERIES_FILE}); "
                            f"drop {flag} (only --gpu may change)")
        series = Series.load(folder)
        gpu = given.get("gpu")
    elif config.resume:
        raise UserError(f"--resume {config.resume}: a single run resumes without --seeds; drop --seeds")
    elif corpora is not None:
        series = plan_cross_corpus(corpora, given)
    else:
        series = plan_seeds(config)
    figures = not getattr(args, "no_figures", False)
    outcome = run(series, gpu=gpu, figures=figures)
    print()
    outcome.print()
    if outcome.written:
        print_written(series.result_dir, outcome.written)
    if outcome.resume_command:
        print(f"The series is incomplete; continue it with:\n  {outcome.resume_command}")
    return 0


def run_cross_corpus(args: argparse.Namespace) -> int:
    """``timnet cross-corpus --corpora A,B[,...]``: every ordered pair, for each seed."""
    config = config_from_args(args)  # flags checked first
    text = getattr(args, "corpora", None)
    corpora = [c.strip() for c in text.split(",") if c.strip()] if text else None
    if series_folder(config) is None and corpora is None:
        raise UserError("--corpora: give two or more corpora, comma-separated (e.g. --corpora EMODB,RAVDE), or "
                        "--resume <series folder>")
    return run_series(args, config, corpora)


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
    from timnet.evaluation import provenance  # imported here, as NumPy and the rest: a flag error needs none
    from timnet.features.files import load_data

    overrides = architecture_overrides(args)
    config = config.replace(model_path=paths.resolve(config.model_path), result_path=paths.resolve(config.result_path))
    paths.check_writable(config.result_path, "--result_path")
    features = load_data(config.data)  # bad data fails at once, before TensorFlow loads
    feature_record = provenance.feature_file_record(features.path)

    from timnet.evaluation.run_outputs import write_test_outputs
    from timnet.evaluation.testing import test
    from timnet.training.devices import configure_devices
    from timnet.training.run import excel_name, seed_everything

    strategy = configure_devices(config.gpu)
    seed_everything(config.random_seed)
    test_path = user_path(args.test_path) if getattr(args, "test_path", None) else default_test_path(config.model_path)
    figures = not getattr(args, "no_figures", False)
    report = test(config, features, test_path, overrides, with_fused=figures)
    (result_dir,) = paths.create_exclusive([config.result_path / f"{config.data_name}_test_{paths.timestamp()}"])
    print(f"Test of {test_path} on {features.path} ({len(features.x)} utterances)")
    report.print()
    report.provenance = provenance.collect(report, feature_record, strategy=strategy, started=started)
    name = excel_name(config, report.kind, report.summary()["WAR"], result_dir)
    written = write_test_outputs(report, result_dir, excel_name=name, figures=figures)
    print_written(result_dir, written)
    return 0

"""One training run as an object: :meth:`Run.setup` prepares it once, :meth:`Run.execute`
trains every fold, :meth:`Run.finish` writes its outputs.

``timnet train`` (the command line) and ``timnet.train`` (the Python API) both call
:func:`run_training`, so they train, seed and write alike. Each step reads what it
needs once: the settings (resume included), the data, the splits and the resume state
are computed in ``setup`` and passed down, never re-derived.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from timnet import paths, protocols, timings
from timnet.config import TrainingConfig
from timnet.protocols import Split

if TYPE_CHECKING:
    import tensorflow as tf

    from timnet.features.files import FeatureSet
    from timnet.training.loop import TrainOutcome
    from timnet.training.resume import RunState


@dataclass
class RunPlan:
    """What :meth:`Run.setup` settled: the configuration, the data, the folds to train
    (and the protocol's total), the resume state of a resumed run."""

    config: TrainingConfig
    features: FeatureSet
    splits: list[Split]
    n_folds: int
    state: RunState | None = None
    feature_record: dict[str, Any] | None = None
    started: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    notes: list[str] = field(default_factory=list)  # for the report (say, the utterances --classes left out)


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


class Run:
    """A training run: ``Run(config).setup()`` checks everything that can fail before
    TensorFlow loads; ``execute`` trains; ``finish`` writes metrics.json (with
    provenance), the workbook, history, summary and figures.

    ``given``: the settings a user typed (a resumed run takes its own settings and
    refuses a given one that contradicts them); ``None`` takes ``config`` as given
    except for a resume, whose recorded settings win (only ``gpu`` comes from ``config``).
    ``features``: the data already loaded (else ``config.data`` is read)."""

    def __init__(self, config: TrainingConfig, features: FeatureSet | None = None,
                 given: dict[str, Any] | None = None, verbose: int | str = "auto", quiet_devices: bool = False,
                 reuse_model: bool = True) -> None:
        self.config = config
        self.features = features
        self.given = given
        self.verbose = verbose
        self.quiet_devices = quiet_devices
        self.reuse_model = reuse_model
        self.plan: RunPlan | None = None
        self.strategy: tf.distribute.Strategy | None = None

    def setup(self) -> RunPlan:
        """Settings (resume), folders, data and splits: every user error, before TensorFlow."""
        from timnet.features.classes import select_classes
        from timnet.features.files import FeatureSet, load_data

        started = dt.datetime.now(dt.UTC)
        config = self.config
        data: str | FeatureSet = self.features if self.features is not None else config.data
        state = None
        if config.resume:  # the run's own settings; a given setting that contradicts them fails here
            from timnet.training import resume

            given = self.given if self.given is not None else {"gpu": config.gpu}
            config = resume.resume_config(config.resume, paths.resolve(config.model_path), given)
            state = resume.RunState.load(Path(str(config.resume)))
            if self.features is None:
                data = resume.recorded_data_file(config, state)
        config = config.replace(model_path=paths.resolve(config.model_path),
                                result_path=paths.resolve(config.result_path), log_dir=paths.resolve(config.log_dir))
        for name in ("model_path", "result_path", "log_dir"):
            paths.check_writable(getattr(config, name), f"--{name}")
        features = data if isinstance(data, FeatureSet) else load_data(str(data))
        if config.test_data:  # cross-corpus: the training corpus and the test corpora as one set
            from timnet.features.cross_corpus import join_corpora

            config = config.replace(test_data=absolute_data_list(config.test_data))
            joined = join_corpora(features, [load_data(t) for t in config.test_corpora], config.classes)
            features, notes = joined.features, joined.notes()
        else:
            selection = select_classes(features, config.classes)  # --classes: a subset, by name
            features, notes = selection.features, [selection.note()] if selection.note() else []
        if state is not None:  # the run recorded the data it trained on: the subset
            from timnet.training import resume

            resume.check_same_data(features, state)
        splits, n_folds = protocols.planned_splits(config.protocol, features, config.protocol_settings,
                                                   config.first_fold, config.max_folds)
        record = None
        if features.path is not None:
            from timnet.evaluation import provenance

            record = provenance.feature_file_record(features.path)  # the file as read, before training
        self.plan = RunPlan(config, features, splits, n_folds, state, record, started, notes)
        return self.plan

    def prepare_devices(self) -> tf.distribute.Strategy:
        """Devices, mixed precision and seeds (op determinism on the CPU): TensorFlow loads here."""
        from timnet.training.devices import configure_devices

        plan = self.plan or self.setup()
        self.strategy = configure_devices(plan.config.gpu, quiet=self.quiet_devices)
        if plan.config.mixed_precision:
            enable_mixed_precision()
        seed_everything(plan.config.random_seed)
        return self.strategy

    def execute(self, keep_state: bool = False) -> TrainOutcome:
        """Train every planned fold and evaluate its test part. ``keep_state``: a complete
        run keeps its resume state until ``outcome.finish()`` (call it once the reports are
        written: a run killed while writing them can still be resumed)."""
        from timnet.training.loop import train

        plan = self.plan or self.setup()
        strategy = self.strategy or self.prepare_devices()
        outcome = train(plan.config, plan.features, strategy, verbose=self.verbose, reuse_model=self.reuse_model,
                        plan=(plan.splits, plan.n_folds), state=plan.state, keep_state=keep_state)
        outcome.report.notes[:0] = plan.notes
        return outcome

    def finish(self, outcome: TrainOutcome, figures: bool = True) -> dict[str, Path]:
        """metrics.json (with provenance), the workbook, history, summary and figures."""
        from timnet.evaluation import provenance
        from timnet.evaluation.run_outputs import write_test_outputs, write_train_outputs

        plan = self.plan or self.setup()
        with timings.phase("provenance"):
            outcome.report.provenance = provenance.collect(outcome.report, plan.feature_record,
                                                           strategy=self.strategy, started=plan.started)
        written = write_train_outputs(outcome, figures=figures)
        name = excel_name(plan.config, outcome.report.kind, outcome.report.summary()["WAR"], outcome.result_dir)
        written = write_test_outputs(outcome.report, outcome.result_dir, excel_name=name, figures=figures,
                                     already=written)
        outcome.written = written
        return written


def absolute_data_list(data: str) -> str:
    """Comma-separated ``--data``-like values with ``.npy`` paths made absolute (names in
    MFCC/ stay names), so a run resumed from another folder finds them."""
    return ",".join(str(Path(d).expanduser().absolute()) if d.endswith(".npy") else d for d in data.split(","))


def excel_name(config: TrainingConfig, kind: str, war: float, folder: Path) -> str:
    """The original's workbook name: ``<data>_<kind>_<WAR>_<seed>_<time>.xlsx``."""
    import re

    stamp = re.search(r"\d{8}-\d{6}(_\d+)?$", folder.name)
    return f"{config.data_name}_{kind}_{war:.4f}_{config.random_seed}_{stamp[0] if stamp else folder.name}.xlsx"


def run_training(config: TrainingConfig, features: FeatureSet | None = None, given: dict[str, Any] | None = None,
                 outputs: bool = True, figures: bool = True, verbose: int | str = "auto",
                 quiet_devices: bool = False) -> TrainOutcome:
    """Set up, train and (``outputs``) write the reports of one run; the outcome's
    ``written`` lists the files. Non-chief workers of a multi-worker run write nothing."""
    from timnet.training.devices import is_chief

    run = Run(config, features, given, verbose=verbose, quiet_devices=quiet_devices)
    run.setup()
    strategy = run.prepare_devices()
    outcome = run.execute(keep_state=True)
    if outputs and is_chief(strategy):
        run.finish(outcome, figures=figures)
    if outcome.finish is not None:  # the reports are written: the run is complete
        outcome.finish()
    return outcome


__all__ = ["Run", "RunPlan", "excel_name", "run_training", "seed_everything"]

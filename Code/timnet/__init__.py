"""TIM-Net for speech emotion recognition on TensorFlow/Keras 3.

The Python API::

    import timnet
    model = timnet.load("Test_Models/<run>/weights_best.keras")  # .keras, .hdf5 or a run folder
    result = model.classify_file("my_recording.wav")
    result.label, result.scores
    outcome = timnet.train(timnet.make_config({"data": "EMODB", "recipe": "paper"}))

``import timnet`` is cheap: TensorFlow loads with the first model.

Layout (one sub-package per concern): ``network`` (layers, losses), ``features`` (MFCCs,
feature files, corpus parsers, mixing, demo corpus), ``protocols`` (splits, fold
identities, weights-file names), ``training`` (the Run, loop, callbacks, resume, devices),
``modelfiles`` (Keras 2 weights, portable ``.keras``, naming, metadata, loading, export to
ONNX/LiteRT/SavedModel), ``evaluation`` (scoring, testing, reports, figures), ``inference``
(featurising and scoring audio; exported files without TensorFlow), ``serving`` (``timnet
serve``), ``cli`` (the ``timnet`` command).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from timnet.config import DEFAULT_DATA, ArchitectureConfig, TrainingConfig, make_config
from timnet.errors import UserError
from timnet.version import __version__

if TYPE_CHECKING:
    from pathlib import Path

    from timnet.features.files import FeatureSet
    from timnet.model import TimNetModel
    from timnet.training.loop import TrainOutcome
    from timnet.training.series import SeriesOutcome

__all__ = ["__version__", "ArchitectureConfig", "TimNetModel", "TrainingConfig", "UserError", "load", "make_config", "train"]


def load(path: str | Path, data: str = DEFAULT_DATA, fold: int | None = None) -> TimNetModel:
    """A trained model from a ``.keras`` file, a weights ``.hdf5`` (ours or the original's)
    or a run folder (``fold`` picks a fold of a k-fold or LOSO run; ``data`` names the
    corpus whose class labels a file without them uses)."""
    from timnet.model import TimNetModel

    return TimNetModel.load(path, data=data, fold=fold)


def train(config: TrainingConfig, features: FeatureSet | str | Path | None = None, verbose: int | str = 0,
          outputs: bool = True, figures: bool = True) -> TrainOutcome | SeriesOutcome:
    """Train under ``config`` exactly as ``timnet train`` does (the same
    :class:`timnet.training.run.Run`: devices, seeding with op determinism, mixed
    precision, run folders, resume): the same model files, and, unless ``outputs`` is
    False, the same reports (``metrics.json`` with provenance, the workbook, history,
    summary; figures unless ``figures`` is False).

    ``config`` comes from :func:`make_config` (the recipe applied); with ``config.resume``
    the run's recorded settings are used. ``features``: a FeatureSet, a corpus name in
    ``MFCC/`` or a ``.npy`` path (default: ``config.data``). Returns the outcome: its
    ``report`` (what the command line prints), ``weights`` (the model files, which
    ``timnet.load`` reads), ``model_dir``/``result_dir`` and ``written`` (the report files).

    With ``config.seeds`` (``make_config({..., "seeds": "46,47,48"})``) the run is repeated
    for each seed, as ``timnet train --seeds`` does (a series, always with its outputs, from
    ``config.data``): the result is a :class:`timnet.training.series.SeriesOutcome` whose
    ``metrics`` hold every seed's WAR, UAR and macro-F1 and their mean ± std."""
    from timnet.features.files import FeatureSet, load_data

    if config.seeds:
        if features is not None or not outputs:
            raise UserError("timnet.train: a series (seeds) reads config.data and writes its outputs; drop "
                            "features= and outputs=False, or train one seed at a time")
        from timnet.training.series import plan_seeds, run_series

        return run_series(plan_seeds(config), figures=figures, verbose=verbose, quiet_devices=True)
    from timnet.training.run import run_training

    if features is not None and not isinstance(features, FeatureSet):
        features = load_data(str(features))
    return run_training(config, features, outputs=outputs, figures=figures, verbose=verbose, quiet_devices=True)


def __getattr__(name: str) -> Any:
    if name == "TimNetModel":
        from timnet.model import TimNetModel

        return TimNetModel
    raise AttributeError(f"module 'timnet' has no attribute {name!r}")

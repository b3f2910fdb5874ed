"""TIM-Net for speech emotion recognition on TensorFlow/Keras 3.

The Python API::

    import timnet
    model = timnet.load("Test_Models/<run>/weights_best.keras")  # .keras, .hdf5 or a run folder
    result = model.classify_file("my_recording.wav")
    result.label, result.scores
    outcome = timnet.train(timnet.TrainingConfig(data="EMODB", recipe="paper"), "EMODB")

``import timnet`` is cheap: TensorFlow loads with the first model.

Layout (one sub-package per concern): ``network`` (layers, losses), ``features`` (MFCCs,
feature files, corpus parsers, mixing, demo corpus), ``training`` (protocols, loop,
callbacks, devices), ``modelfiles`` (Keras 2 weights, portable ``.keras``, naming,
metadata, loading, export), ``evaluation`` (scoring, testing, reports, figures),
``inference`` (featurising and scoring audio), ``cli`` (the ``timnet`` command).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from timnet.config import DEFAULT_DATA, ArchitectureConfig, TrainingConfig, make_config
from timnet.errors import UserError

if TYPE_CHECKING:
    from pathlib import Path

    from timnet.features.files import FeatureSet
    from timnet.model import TimNetModel
    from timnet.training.loop import TrainOutcome

__version__ = "1.0.0"
__all__ = ["ArchitectureConfig", "TimNetModel", "TrainingConfig", "UserError", "load", "make_config", "train"]


def load(path: str | Path, data: str = DEFAULT_DATA, fold: int | None = None) -> TimNetModel:
    """A trained model from a ``.keras`` file, a weights ``.hdf5`` (ours or the original's)
    or a run folder (``fold`` picks a fold of a k-fold or LOSO run; ``data`` names the
    corpus whose class labels a file without them uses)."""
    from timnet.model import TimNetModel

    return TimNetModel.load(path, data=data, fold=fold)


def train(config: TrainingConfig, features: FeatureSet | str | Path | None = None,
          verbose: int | str = 0) -> TrainOutcome:
    """Train under ``config`` as ``timnet train`` does (model files, no reports or figures):
    ``features`` is a FeatureSet, a corpus name in ``MFCC/`` or a ``.npy`` path (default:
    ``config.data``), restricted to ``config.classes`` when given. Returns the outcome whose
    ``report`` the command line prints; ``outcome.weights`` are the model files (``timnet.load`` reads them)."""
    from timnet import paths
    from timnet.features.classes import select_classes
    from timnet.features.files import FeatureSet, load_data
    from timnet.training.devices import configure_devices
    from timnet.training.loop import train as run

    if not isinstance(features, FeatureSet):
        features = load_data(str(features if features is not None else config.data))
    selection = select_classes(features, config.classes)
    features = selection.features
    config = config.replace(model_path=paths.resolve(config.model_path), result_path=paths.resolve(config.result_path),
                            log_dir=paths.resolve(config.log_dir))
    import keras

    keras.utils.set_random_seed(config.random_seed)
    outcome = run(config, features, configure_devices(config.gpu, quiet=True), verbose=verbose)
    if selection.note():
        outcome.report.notes.insert(0, selection.note())
    return outcome


def __getattr__(name: str) -> Any:
    if name == "TimNetModel":
        from timnet.model import TimNetModel

        return TimNetModel
    raise AttributeError(f"module 'timnet' has no attribute {name!r}")

"""One typed configuration: the single source of every setting and default of a run.

:class:`ArchitectureConfig` is the network (what a weights file fixes);
:class:`TrainingConfig` is a whole training run. A *recipe* is data: the values the
seed (fork) and the paper chose for a few training knobs. :func:`make_config` builds a
configuration from a recipe and the values a user gave (flags or keyword arguments);
a given value always wins. :data:`FLAGS` maps each command-line flag to its field, so
the command line, the recipes, the network's ``get_config`` and the model files all
read their defaults from here. Every value is validated when a configuration is made.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from timnet import protocols
from timnet.errors import UserError
from timnet.features import corpora

LOSSES = ("npair", "ce")
PROTOCOLS = protocols.NAMES  # one registry: timnet.protocols.REGISTRY
GROUPS = protocols.GROUP_KEYS
HEADS = ("softmax", "embedding")
# timnet export: formats (keras keeps the network's own output; the others return class scores),
# what an exported model takes, and the file each format writes (saved_model: a folder).
EXPORT_FORMATS = ("keras", "onnx", "litert", "saved_model")
EXPORT_INPUTS = ("mfcc", "waveform")
EXPORT_SUFFIXES = {"keras": ".keras", "onnx": ".onnx", "litert": ".tflite", "saved_model": ""}
# Model files that run without TensorFlow (inference/exported.py), and what each runtime needs.
RUNTIME_SUFFIXES = {".onnx": "onnxruntime", ".tflite": "ai-edge-litert"}
# Activations the temporal-aware blocks accept (Keras names).
ACTIVATIONS = ("relu", "elu", "gelu", "selu", "silu", "swish", "tanh", "sigmoid", "softplus", "leaky_relu",
               "relu6", "mish", "linear")
MAX_DILATIONS = 16  # dilation 2**15 = 32768 frames: far beyond any utterance
MAX_SEED = 2**32 - 1
# Inference (predict, test, evaluate) batch sizes, measured by
# benchmarks/bench_inference_batch.py: on the CPU a batch whose activations stay in the
# caches wins (64 beat 1024 by 1.6-3.3x on 2 cores; README, "Performance"); a GPU
# needs large batches to fill it. timnet.evaluation.scoring.inference_batch_size picks.
CPU_INFERENCE_BATCH = 64
GPU_INFERENCE_BATCH = 1024


def head_for_loss(loss: str) -> str:
    """The seed's N-pair loss trains an L2-normalised embedding; cross-entropy a softmax."""
    return "softmax" if loss == "ce" else "embedding"


def loss_for_head(head: str) -> str:
    return "ce" if head == "softmax" else "npair"


@dataclass(frozen=True)
class Recipe:
    """The training knobs a recipe fixes (everything else has one default for all)."""

    loss: str
    protocol: str
    dropout: float
    epoch: int
    batch_size: int
    label_smoothing: float


RECIPES: dict[str, Recipe] = {
    # The fork this project was created from: N-pair loss, 90/10 hold-out, the
    # checkpoint with the best validation loss.
    "seed": Recipe(loss="npair", protocol="holdout", dropout=0.5, epoch=60, batch_size=64, label_smoothing=0.0),
    # The ICASSP 2023 paper: softmax head, label smoothing 0.1, 10-fold CV, the last
    # epoch's weights of every fold.
    "paper": Recipe(loss="ce", protocol="kfold", dropout=0.1, epoch=500, batch_size=64, label_smoothing=0.1),
}
DEFAULT_RECIPE = "seed"
# The seed trains on INTERSECT; also the corpus whose class names a model file without labels takes.
DEFAULT_DATA = "INTERSECT"
# Label smoothing that goes with a loss chosen against the recipe's (cross-entropy is
# smoothed by 0.1 as in the paper; the N-pair loss takes no smoothing).
LOSS_LABEL_SMOOTHING: dict[str, float] = {"ce": 0.1, "npair": 0.0}
_SEED = RECIPES[DEFAULT_RECIPE]


@dataclass(frozen=True)
class ArchitectureConfig:
    """The TIM-Net network: the same fields as the ``TIMNet`` layer's ``get_config``."""

    filters: int = 39
    kernel_size: int = 2
    stack_size: int = 1
    dilation_size: int = corpora.DEFAULT_DILATIONS
    dropout: float = _SEED.dropout
    activation: str = "relu"
    bidirection: bool = False

    def __post_init__(self) -> None:
        _check_int(self, "filters", 1, 4096)
        _check_int(self, "kernel_size", 1, 64)
        _check_int(self, "stack_size", 1, 8)
        _check_int(self, "dilation_size", 1, MAX_DILATIONS)
        _check_fraction(self, "dropout", "the fraction of channels dropped")
        if self.activation not in ACTIVATIONS:
            raise ConfigError("activation", self.activation, f"choose from {', '.join(ACTIVATIONS)}")
        if not isinstance(self.bidirection, bool):
            raise ConfigError("bidirection", self.bidirection, "must be True or False")

    @property
    def scales(self) -> int:
        return self.stack_size * self.dilation_size

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ArchitectureConfig:
        """From a model file's ``architecture`` entry; unknown keys are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


@dataclass(frozen=True)
class TrainingConfig:
    """Every setting of a training run (the command line's flags, typed)."""

    data: str = DEFAULT_DATA
    classes: str | None = None  # train on these classes only: "angry,happy,neutral,sad" (names or synonyms)
    test_data: str | None = None  # cross-corpus: the corpora tested on, "B,C" (names in MFCC/ or .npy paths)
    seeds: str | None = None  # a series: the run repeated for each seed, "46,47,48"
    recipe: str = DEFAULT_RECIPE
    loss: str = _SEED.loss
    protocol: str = _SEED.protocol
    epoch: int = _SEED.epoch
    batch_size: int = _SEED.batch_size
    label_smoothing: float = _SEED.label_smoothing
    lr: float = 0.001
    beta1: float = 0.93
    beta2: float = 0.98
    random_seed: int = 46
    split_fold: int = 10
    group: str = "speaker"  # group-kfold: the feature file's key whose values stay in one fold
    splits: str | None = None  # the splits protocol's file (CSV) or EmoBox folder
    max_folds: int | None = None
    first_fold: int = 1
    gpu: str = "0"
    histogram_freq: int = 1
    mixed_precision: bool = False
    model_path: Path = Path("Test_Models")
    result_path: Path = Path("Results")
    log_dir: Path = Path("log")
    resume: str | None = None  # a run folder (or "last") whose interrupted training continues
    from_completed_folds: bool = False  # with resume: rebuild a damaged resume state from the completed folds
    architecture: ArchitectureConfig = field(default_factory=ArchitectureConfig)

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise ConfigError("recipe", self.recipe, f"choose from {', '.join(RECIPES)}")
        if self.loss not in LOSSES:
            raise ConfigError("loss", self.loss, f"choose from {', '.join(LOSSES)}")
        if self.protocol not in PROTOCOLS:
            raise ConfigError("protocol", self.protocol, f"choose from {', '.join(PROTOCOLS)}")
        _check_int(self, "epoch", 1, 10**9)
        _check_int(self, "batch_size", 1, 10**6)
        _check_fraction(self, "label_smoothing", "the probability moved off the true class")
        _check_positive(self, "lr")
        _check_fraction(self, "beta1", "Adam's first-moment decay")
        _check_fraction(self, "beta2", "Adam's second-moment decay")
        _check_int(self, "random_seed", 0, MAX_SEED)
        _check_int(self, "split_fold", 2, 10**6)
        if self.group not in protocols.GROUP_KEYS:
            raise ConfigError("group", self.group, f"choose from {', '.join(protocols.GROUP_KEYS)}")
        if self.splits is not None:
            object.__setattr__(self, "splits", str(self.splits))
        if self.protocol == "splits" and not self.splits:
            raise ConfigError("protocol", self.protocol, "give the split file with --splits FILE (a CSV of file,fold "
                              "or file,train|valid|test, or EmoBox's data/<corpus> folder)")
        if self.max_folds is not None:
            _check_int(self, "max_folds", 1, 10**6)
        _check_int(self, "first_fold", 1, 10**6)
        _check_int(self, "histogram_freq", 0, 10**9)
        object.__setattr__(self, "gpu", str(self.gpu))
        parse_gpu_list(self.gpu)
        if not self.data or not str(self.data).strip():
            raise ConfigError("data", self.data, "give a feature file name in MFCC/ or a path to a .npy file")
        if self.classes is not None:
            object.__setattr__(self, "classes", _class_list(self.classes))
        self._check_cross_corpus()
        if self.seeds is not None:
            object.__setattr__(self, "seeds", _seed_list(self.seeds))
        if self.resume is not None and (not isinstance(self.resume, str) or not self.resume.strip()):
            raise ConfigError("resume", self.resume, "give a run folder under --model_path, or last")
        if self.from_completed_folds and self.resume is None:
            raise ConfigError("from_completed_folds", True, "it continues a run whose resume state is damaged: "
                              "give --resume RUN too")
        for name in ("model_path", "result_path", "log_dir"):
            object.__setattr__(self, name, Path(getattr(self, name)))
        if not isinstance(self.architecture, ArchitectureConfig):
            raise ConfigError("architecture", self.architecture, "must be an ArchitectureConfig")
        self._check_recipe_applied()

    def _check_recipe_applied(self) -> None:
        """``TrainingConfig(recipe="paper")`` alone would keep the seed's loss, protocol, ...
        under the paper's name: refused (:func:`make_config` applies a recipe)."""
        if self.recipe == DEFAULT_RECIPE:
            return
        values = {k: (self.architecture.dropout if k == "dropout" else getattr(self, k)) for k in RECIPE_FIELDS}
        seed = dataclasses.asdict(_SEED)
        if values == seed and dataclasses.asdict(RECIPES[self.recipe]) != seed:
            raise ConfigError("recipe", self.recipe, "every setting a recipe fixes (loss, protocol, dropout, epoch, "
                              "batch size, label smoothing) still has the seed recipe's value; make the configuration "
                              f"with timnet.make_config({{'recipe': '{self.recipe}', ...}}), which applies the recipe")

    def _check_cross_corpus(self) -> None:
        """--test_data goes with --protocol cross-corpus, both ways; test corpora differ from --data."""
        if self.test_data is not None:
            parts = self.test_data.split(",") if isinstance(self.test_data, str) else self.test_data
            if not isinstance(parts, (list, tuple)) or not all(isinstance(p, str) for p in parts):
                raise ConfigError("test_data", self.test_data, "give corpus names in MFCC/ or .npy paths, "
                                  "comma-separated")
            names = [p.strip() for p in parts if p.strip()]
            if not names:
                raise ConfigError("test_data", self.test_data, "give the corpora to test on, comma-separated "
                                  "(e.g. RAVDE or RAVDE,SAVEE)")
            corpora_given = [corpus_name(n) for n in names]
            if self.data_name in corpora_given:
                raise ConfigError("test_data", ",".join(names), f"must differ from --data {self.data} (the "
                                  "cross-corpus protocol tests on other corpora; for one corpus use kfold, "
                                  "group-kfold or loso)")
            if len(set(corpora_given)) != len(corpora_given):
                raise ConfigError("test_data", ",".join(names), "names one corpus twice")
            object.__setattr__(self, "test_data", ",".join(names))
            if self.protocol != "cross-corpus":
                raise ConfigError("test_data", self.test_data, f"goes with --protocol cross-corpus (not "
                                  f"{self.protocol}): add --protocol cross-corpus to train on --data and test on it")
        elif self.protocol == "cross-corpus":
            raise ConfigError("protocol", self.protocol, "give the corpora to test on with --test_data B[,C...]")

    @property
    def test_corpora(self) -> tuple[str, ...]:
        """``--test_data`` as a list (empty without it)."""
        return tuple(self.test_data.split(",")) if self.test_data else ()

    @property
    def seed_list(self) -> tuple[int, ...]:
        """``--seeds`` as numbers (empty without it)."""
        return tuple(int(s) for s in self.seeds.split(",")) if self.seeds else ()

    @property
    def head(self) -> str:
        return head_for_loss(self.loss)

    @property
    def protocol_settings(self) -> protocols.ProtocolSettings:
        """What the protocol's splits depend on."""
        return protocols.ProtocolSettings(seed=self.random_seed, folds=self.split_fold, group=self.group,
                                          splits=self.splits)

    @property
    def data_name(self) -> str:
        """``--data``'s corpus name: a file's stem for a path to a ``.npy``."""
        return corpus_name(self.data)

    def replace(self, **changes: Any) -> TrainingConfig:
        """A copy with ``changes``; architecture fields may be given by name too."""
        arch_names = {f.name for f in dataclasses.fields(ArchitectureConfig)}
        arch = {k: changes.pop(k) for k in list(changes) if k in arch_names}
        if arch:
            changes["architecture"] = dataclasses.replace(changes.get("architecture", self.architecture), **arch)
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON values: what reports and ``metadata.json`` record."""
        out = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self).items()}
        out["head"] = self.head
        return out


class ConfigError(UserError):
    """An impossible setting: names the flag, the value and what is accepted."""

    def __init__(self, name: str, value: Any, accepted: str) -> None:
        self.field = name
        super().__init__(f"{flag_of(name)} {_show(value)}: {accepted}")


def _class_list(value: Any) -> str:
    """``--classes``: a comma-separated string or a sequence of names -> ``"a,b,c"``
    (names are matched to the feature file's, synonyms included, when the data loads)."""
    parts = value.split(",") if isinstance(value, str) else value
    if not isinstance(parts, (list, tuple)) or not all(isinstance(p, str) for p in parts):
        raise ConfigError("classes", value, "give class names, comma-separated (e.g. angry,happy,neutral,sad)")
    names = [p.strip() for p in parts if p.strip()]
    if len(names) < 2:
        raise ConfigError("classes", value, "give at least two class names, comma-separated "
                          "(e.g. angry,happy,neutral,sad)")
    return ",".join(names)


def corpus_name(data: str) -> str:
    """A corpus's name: ``EMODB`` as it is, a ``.npy`` path's stem."""
    return Path(data).stem if str(data).endswith(".npy") else str(data)


def _seed_list(value: Any) -> str:
    """``--seeds``: "46,47,48" or a sequence of whole numbers -> "46,47,48" (distinct, each a valid seed)."""
    parts = value.split(",") if isinstance(value, str) else value
    accepted = f"give distinct whole numbers between 0 and {MAX_SEED}, comma-separated (e.g. 46,47,48)"
    if not isinstance(parts, (list, tuple)):
        raise ConfigError("seeds", value, accepted)
    seeds = []
    for part in parts:
        if isinstance(part, bool):
            raise ConfigError("seeds", value, accepted)
        try:
            seed = int(part.strip()) if isinstance(part, str) else part
        except ValueError:
            raise ConfigError("seeds", value, accepted) from None
        if not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise ConfigError("seeds", value, accepted)
        seeds.append(seed)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError("seeds", value, accepted)
    return ",".join(map(str, seeds))


def _show(value: Any) -> str:
    return str(value) if isinstance(value, (int, float, str, Path)) else repr(value)


def _check_int(obj: Any, name: str, low: int, high: int) -> None:
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(name, value, "must be a whole number")
    if not low <= value <= high:
        raise ConfigError(name, value, f"must be between {low} and {high}")


def _number(obj: Any, name: str) -> float:
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(name, value, "must be a number")
    if not math.isfinite(value):
        raise ConfigError(name, value, "must be a finite number")
    return float(value)


def _check_fraction(obj: Any, name: str, meaning: str) -> None:
    value = _number(obj, name)
    if not 0.0 <= value < 1.0:
        raise ConfigError(name, getattr(obj, name), f"must be in [0, 1) ({meaning})")


def _check_positive(obj: Any, name: str) -> None:
    if not _number(obj, name) > 0:
        raise ConfigError(name, getattr(obj, name), "must be a positive number")


def parse_gpu_list(gpu: str | None) -> list[int] | None:
    """``"0"`` -> [0]; ``"0,1"`` -> [0, 1]; ``"-1"``/``"cpu"``/``""`` -> [] (CPU only)."""
    if gpu is None:
        return None
    text = str(gpu).strip().lower()
    if text in ("", "-1", "cpu", "none"):
        return []
    try:
        indices = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        indices = [-1]
    if any(i < 0 for i in indices) or len(set(indices)) != len(indices):
        raise ConfigError("gpu", gpu, "expected a GPU index or a comma-separated list such as 0,1 (-1: CPU)")
    return indices


# --- the command line's flags -------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    """One command-line flag of a configuration field."""

    name: str  # the flag without "--" (the original's names)
    field: str  # TrainingConfig field, or "architecture.<field>"
    group: str
    help: str


FLAGS: tuple[Flag, ...] = (
    Flag("data", "data", "data", "feature file: a name in MFCC/ (e.g. EMODB) or a path to a .npy"),
    Flag("classes", "classes", "data", "train on these classes of the file only, comma-separated, e.g. "
         "angry,happy,neutral,sad (synonyms match: fearful = fear); the report counts the utterances left out"),
    Flag("test_data", "test_data", "data", "--protocol cross-corpus: the corpora to test on, comma-separated (names "
         "in MFCC/ or .npy paths); the model trains on all of --data over the classes they share"),
    Flag("recipe", "recipe", "optimisation", "defaults of loss, protocol, dropout, epoch, batch size, smoothing"),
    Flag("loss", "loss", "optimisation",
         "npair: L2-normalised embedding + N-pair loss (seed); ce: softmax + cross-entropy (paper)"),
    Flag("epoch", "epoch", "optimisation", "epochs per fold (Ctrl-C stops cleanly)"),
    Flag("batch_size", "batch_size", "optimisation", "global batch size"),
    Flag("lr", "lr", "optimisation", "Adam learning rate"),
    Flag("beta1", "beta1", "optimisation", "Adam beta_1"),
    Flag("beta2", "beta2", "optimisation", "Adam beta_2"),
    Flag("label_smoothing", "label_smoothing", "optimisation", "smoothing of the training labels"),
    Flag("random_seed", "random_seed", "optimisation", "seeds Python, NumPy, TensorFlow and the splits"),
    Flag("seeds", "seeds", "optimisation", "repeat the run for each of these seeds, comma-separated (e.g. "
         "46,47,48): each seed's metrics and their mean ± std (a series, resumed with --resume <series folder>)"),
    Flag("filter_size", "architecture.filters", "architecture", "channels of every convolution"),
    Flag("kernel_size", "architecture.kernel_size", "architecture", "kernel size of the dilated convolutions"),
    Flag("stack_size", "architecture.stack_size", "architecture", "repetitions of the dilation stack"),
    Flag("dilation_size", "architecture.dilation_size", "architecture",
         "temporal-aware blocks per branch, dilations 1..2^(n-1) (IEMOCAP: 10)"),
    Flag("dropout", "architecture.dropout", "architecture", "spatial dropout inside the blocks"),
    Flag("activation", "architecture.activation", "architecture", "activation inside the temporal-aware blocks"),
    Flag("bidirection", "architecture.bidirection", "architecture",
         "use the backward (time-reversed) branch too, as the paper does"),
    Flag("protocol", "protocol", "protocol", "; ".join(f"{p.name}: {p.help}" for p in protocols.REGISTRY.values())),
    Flag("split_fold", "split_fold", "protocol", "folds of the kfold and group-kfold protocols"),
    Flag("group", "group", "protocol", "group-kfold: the feature file's key kept within one fold (session: "
         "IEMOCAP's leave-one-session-out with --split_fold 5)"),
    Flag("splits", "splits", "protocol", "the splits protocol's partition: a CSV (file name or path, then a fold "
         "number or train/valid/test) or EmoBox's data/<corpus> folder of fold lists"),
    Flag("max_folds", "max_folds", "protocol", "train only N folds (the splits stay the same)"),
    Flag("first_fold", "first_fold", "protocol", "start at this fold (1-based): run a long protocol in parts"),
    Flag("resume", "resume", "protocol",
         "continue an interrupted or killed run: its folder under --model_path, or last (settings are the run's)"),
    Flag("from_completed_folds", "from_completed_folds", "protocol",
         "with --resume: a run whose resume state is damaged continues from its intact completed folds"),
    Flag("gpu", "gpu", "devices", "GPU index or comma-separated list (several: mirrored); -1: CPU. On a machine "
         "without a GPU a warning names this flag and the CPU is used; an index the machine lacks is an error"),
    Flag("mixed_precision", "mixed_precision", "devices", "float16 compute (GPUs only)"),
    Flag("model_path", "model_path", "outputs", "where training writes its run folder"),
    Flag("result_path", "result_path", "outputs", "where reports and figures go"),
    Flag("log_dir", "log_dir", "outputs", "TensorBoard logs go to <log_dir>/<DATA>_<seed>_<time>/"),
    Flag("histogram_freq", "histogram_freq", "outputs", "TensorBoard weight histograms every N epochs (0: none)"),
)
FLAG_BY_NAME: dict[str, Flag] = {f.name: f for f in FLAGS}
_FLAG_BY_FIELD: dict[str, str] = {f.field.removeprefix("architecture."): f.name for f in FLAGS}


def flag_of(field_name: str) -> str:
    """``filters`` -> ``--filter_size``: how users name a field."""
    return f"--{_FLAG_BY_FIELD.get(field_name, field_name)}"


def default_of(flag: Flag) -> Any:
    """A flag's default, read from the dataclasses (for ``--help``)."""
    if flag.field.startswith("architecture."):
        return _field_default(ArchitectureConfig, flag.field.split(".", 1)[1])
    return _field_default(TrainingConfig, flag.field)


def _field_default(cls: type, name: str) -> Any:
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]


RECIPE_FIELDS = tuple(f.name for f in dataclasses.fields(Recipe))


def make_config(given: Mapping[str, Any] | None = None) -> TrainingConfig:
    """A validated configuration: the defaults, then the recipe, then what was given.

    ``given`` maps flag names (``filter_size``, ``dropout``, ...) or field names to
    values; only what the user set explicitly belongs there. The number of dilations
    defaults per corpus (``corpora.default_dilations``) unless given.
    """
    given = dict(given or {})
    unknown = [k for k in given if k not in FLAG_BY_NAME and k not in _FLAG_BY_FIELD]
    if unknown:
        raise UserError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    values = {FLAG_BY_NAME[k].field.removeprefix("architecture.") if k in FLAG_BY_NAME else k: v
              for k, v in given.items()}
    recipe_name = values.get("recipe", DEFAULT_RECIPE)
    if recipe_name not in RECIPES:
        raise ConfigError("recipe", recipe_name, f"choose from {', '.join(RECIPES)}")
    recipe = dataclasses.asdict(RECIPES[recipe_name])
    if "loss" in values and values["loss"] != recipe["loss"] and values["loss"] in LOSS_LABEL_SMOOTHING:
        recipe["label_smoothing"] = LOSS_LABEL_SMOOTHING[values["loss"]]
    merged = {**recipe, **values}
    data = merged.get("data", _field_default(TrainingConfig, "data"))
    if "dilation_size" not in merged:
        name = Path(str(data)).stem if str(data).endswith(".npy") else str(data)
        merged["dilation_size"] = corpora.default_dilations(name)
    return TrainingConfig().replace(**merged)


@dataclass(frozen=True)
class ServeConfig:
    """``timnet serve``: where it listens and how much work it accepts at once.

    ``workers`` threads decode and score; at most ``queue`` more requests wait for
    one, and any request beyond ``workers + queue`` is answered 503 at once (with
    Retry-After ``retry_after`` seconds) instead of queueing without bound. Uploads
    over ``max_upload_mb`` are refused while they arrive, recordings over
    ``max_duration`` seconds before they are decoded."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 2
    queue: int = 16
    max_upload_mb: float = 50.0
    max_duration: float = 600.0
    retry_after: int = 1
    upload_timeout: float = 120.0

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host.strip():
            raise ConfigError("host", self.host, "give an address to listen on, such as 127.0.0.1")
        _check_int(self, "port", 0, 65535)
        _check_int(self, "workers", 1, 256)
        _check_int(self, "queue", 0, 10**5)
        _check_int(self, "retry_after", 1, 3600)
        for name in ("max_upload_mb", "max_duration", "upload_timeout"):
            _check_positive(self, name)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def capacity(self) -> int:
        """Requests admitted at once: those being served plus those waiting."""
        return self.workers + self.queue

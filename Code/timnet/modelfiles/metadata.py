"""What a model file says about its model, typed: the network, the classes, the
preprocessing and (embedding models) the class centroids.

The same record is stored in our Keras 2 weights files (an HDF5 attribute, centroids
as a dataset) and in the portable ``.keras`` file (``timnet.json``), so that test and
predict need no flags. :meth:`ModelMetadata.from_dict` is the one reader: malformed
metadata is a :class:`ModelFileError` naming the file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from timnet.config import HEADS, ArchitectureConfig, flag_of, loss_for_head
from timnet.errors import UserError
from timnet.features import corpora
from timnet.protocols import FoldIdentity

FORMAT_NAME = "timnet-keras2-weights"
FORMAT_VERSION = 1


class ModelFileError(UserError):
    """A model file that cannot be read, is not TIM-Net's, or does not fit the model or data."""


@dataclass
class ModelMetadata:
    """Everything a TIM-Net model file records besides the weights."""

    architecture: ArchitectureConfig
    head: str
    class_labels: tuple[str, ...] = ()
    n_mfcc: int = corpora.N_MFCC
    frames: int | None = None
    mean_signal_length: int | None = None
    sample_rate: int = corpora.SAMPLE_RATE
    data: str = ""
    centroids: np.ndarray | None = None
    epoch: int | None = None
    # Where an exported file came from and where its centroids were computed.
    exported_from: str | None = None
    centroids_source: str | None = None
    # FeatureSet.fingerprint() of the data the model was trained on (None: not recorded,
    # e.g. the original's files): testing tells its training data from other data by it.
    training_data: dict[str, Any] | None = None
    # Which fold of which protocol the model is (protocol, fold, seed, held-out part):
    # test and export rebuild its split from this. None: an older or the original's file.
    fold: FoldIdentity | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r}")
        self.class_labels = tuple(str(c) for c in self.class_labels)
        if self.centroids is not None:
            self.centroids = np.asarray(self.centroids, dtype=np.float32)

    @property
    def loss(self) -> str:
        return loss_for_head(self.head)

    @property
    def num_classes(self) -> int:
        return len(self.class_labels)

    def with_centroids(self, centroids: np.ndarray | None, source: str | None = None) -> ModelMetadata:
        return dataclasses.replace(self, centroids=None if centroids is None else np.asarray(centroids, np.float32),
                                   centroids_source=source or self.centroids_source)

    def to_dict(self, with_centroids: bool = True) -> dict[str, Any]:
        """JSON values (centroids as nested lists unless ``with_centroids`` is False)."""
        out: dict[str, Any] = {
            "architecture": self.architecture.as_dict(),
            "head": self.head,
            "loss": self.loss,
            "num_classes": self.num_classes,
            "class_labels": list(self.class_labels),
            "data": self.data,
            "frames": self.frames,
            "n_mfcc": self.n_mfcc,
            "sample_rate": self.sample_rate,
            "mean_signal_length": self.mean_signal_length,
            "epoch": self.epoch,
        }
        if with_centroids:
            out["centroids"] = None if self.centroids is None else self.centroids.tolist()
        for key in ("exported_from", "centroids_source", "training_data"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.fold is not None:
            out["protocol"] = self.fold.to_dict()
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, values: Any, source: str | Path, architecture: ArchitectureConfig | None = None,
                  head: str | None = None) -> ModelMetadata:
        """Read a stored record; ``architecture``/``head`` (what the weights themselves
        say) win over the record's. Anything malformed raises :class:`ModelFileError`."""
        if not isinstance(values, Mapping):
            raise ModelFileError(f"{source}: the TIM-Net metadata is not a JSON object; export the model again")
        try:
            if architecture is None:
                recorded = values.get("architecture")
                if not isinstance(recorded, Mapping):
                    raise ValueError("no architecture entry")
                architecture = ArchitectureConfig.from_dict(recorded)
            head = head or values.get("head") or ("softmax" if values.get("loss") == "ce" else "embedding")
            labels = values.get("class_labels") or ()
            if isinstance(labels, (str, bytes)) or not all(isinstance(c, str) for c in labels):
                raise ValueError("class_labels must be a list of names")
            known = {f.name for f in dataclasses.fields(cls)} | {"loss", "num_classes", "format", "format_version",
                                                         "protocol"}
            centroids = values.get("centroids")
            training_data = values.get("training_data")
            if training_data is not None and not (isinstance(training_data, Mapping)
                                                  and isinstance(training_data.get("sha256"), str)):
                raise ValueError("training_data must be an object with a sha256")
            return cls(
                architecture=architecture,
                head=str(head),
                class_labels=tuple(labels),
                n_mfcc=_opt_int(values.get("n_mfcc")) or corpora.N_MFCC,
                frames=_opt_int(values.get("frames")),
                mean_signal_length=_opt_int(values.get("mean_signal_length")),
                sample_rate=_opt_int(values.get("sample_rate")) or corpora.SAMPLE_RATE,
                data=str(values.get("data") or ""),
                centroids=None if centroids is None else np.asarray(centroids, dtype=np.float32),
                epoch=_opt_int(values.get("epoch")),
                exported_from=values.get("exported_from"),
                centroids_source=values.get("centroids_source"),
                training_data=None if training_data is None else dict(training_data),
                fold=None if values.get("protocol") is None else FoldIdentity.from_dict(values["protocol"]),
                extra={k: v for k, v in values.items() if k not in known},
            )
        except ModelFileError:
            raise
        except (TypeError, ValueError, UserError) as exc:
            raise ModelFileError(f"{source}: unreadable TIM-Net metadata ({exc}); export the model again") from None


def _opt_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise ValueError(f"expected a whole number, got {value!r}")
    return int(value)


# How a model file's value is described in an error that names the contradicting flag.
DESCRIBE: dict[str, Callable[[Any], str]] = {
    "bidirection": lambda v: "a bi-directional network" if v else "a forward-only network",
    "dilation_size": lambda v: f"{v} dilations",
    "stack_size": lambda v: f"{v} stacks",
    "filters": lambda v: f"{v} filters",
    "kernel_size": lambda v: f"kernel size {v}",
    "n_mfcc": lambda v: f"{v} input MFCCs",
    "head": lambda v: "the embedding (N-pair) head" if v == "embedding" else "the softmax (cross-entropy) head",
    "num_classes": lambda v: f"{v} classes",
    "activation": lambda v: f"activation {v}",
}


def flag_text(key: str, value: Any) -> str:
    """An override as the user typed it: ``filters=64`` -> ``--filter_size 64``, ``head`` -> ``--loss``."""
    if key == "head":
        return f"--loss {loss_for_head(value)}"
    return f"{flag_of(key)} {value}"


def override_conflict(path: str | Path, key: str, value: Any, actual: Any, holder: str = "the model") -> str:
    """The one-line message for a flag that contradicts a model file."""
    described = DESCRIBE[key](actual) if key in DESCRIBE else str(actual)
    return f"{path}: {flag_text(key, value)} but {holder} has {described}"

"""A weights file (the original's or ours) or a ``.keras`` file -> one self-contained ``.keras`` file.

An embedding (N-pair) model classifies by cosine similarity to class centroids; a file
without them gets the centroids of its *training* utterances: its fold's protocol rebuilds
the training part from what the file records (or, for the original's files, from its name
and the seed), so that exporting adds no information from the test data.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from timnet import protocols
from timnet.errors import UserError
from timnet.features.classes import map_classes
from timnet.features.files import FeatureSet
from timnet.modelfiles.loading import LoadedModel, data_name, load_model
from timnet.modelfiles.metadata import ModelMetadata
from timnet.modelfiles.naming import model_identity
from timnet.protocols import FoldIdentity


@dataclass
class ExportResult:
    """What was written, from what; ``centroids_note`` says where computed centroids came from."""

    output: Path
    source: Path
    metadata: ModelMetadata
    notes: list[str] = field(default_factory=list)
    centroids_note: str | None = None


def training_index(source: Path, features: FeatureSet, seed: int,
                   recorded: FoldIdentity | None = None) -> tuple[np.ndarray, str]:
    """The utterances a model was trained on: its fold's training part when the file
    records its fold (or its name tells the protocol; ``seed`` for the original's files)."""
    identity = model_identity(source, recorded)
    if identity is None:
        return np.arange(len(features.x)), "every utterance"
    split = protocols.get(identity.protocol).rebuild(identity, features, seed, str(features.path or features.name))
    used = identity.seed if identity.seed is not None else seed
    if identity.protocol == "holdout":
        return split.train, f"the hold-out training split (seed {used})"
    return split.train, f"the training part of {split.name} ({identity.protocol}, seed {used})"


def load_with_centroids(source: Path, data: str, features: FeatureSet | None, seed: int,
                        overrides: dict | None = None) -> tuple[LoadedModel, ModelMetadata, str | None]:
    """Load ``source``; an N-pair model without class centroids gets those of its training
    utterances in ``features`` (classes matched by name), when given. Returns the loaded
    model, its metadata (with the centroids) and where they came from (None: unchanged)."""
    from timnet.network.outputs import class_centroids, predict_array

    length = features.mean_signal_length if features is not None else None
    loaded = load_model(source, data, overrides, length)
    meta = loaded.metadata
    centroids_note = None
    if features is not None and meta.head == "embedding" and meta.centroids is None:
        if features.x.shape[1:] != (meta.frames, meta.n_mfcc):
            raise UserError(f"{features.path}: features of shape {features.x.shape[1:]} but the model takes "
                            f"({meta.frames}, {meta.n_mfcc}): extract them with the model's --mean_signal_length "
                            f"{meta.mean_signal_length}")
        # Classes by name (synonyms included); utterances of classes the model lacks are left out.
        mapping = map_classes(meta.class_labels, features.class_labels, model=f"{source}", data=str(features.path))
        labels = mapping.model_labels_of(features.labels)
        index, which = training_index(source, features, seed, meta.fold)
        index = index[labels[index] >= 0]
        missing = [c for i, c in enumerate(meta.class_labels) if not np.any(labels[index] == i)]
        if missing:
            raise UserError(f"{features.path}: no utterance of the model's class(es) {', '.join(missing)} in "
                            f"{which}, so no centroid for them; give --data the model's training feature file")
        embeddings = predict_array(loaded.model, features.x, index)
        centroids = class_centroids(embeddings, labels[index], len(meta.class_labels))
        centroids_note = f"{features.path}: {which}, {len(index)} utterances"
        meta = meta.with_centroids(centroids, centroids_note)
    return loaded, meta, centroids_note


def export_model(source: Path, output: Path, data: str, features: FeatureSet | None, seed: int,
                 overwrite: bool = False, overrides: dict | None = None) -> ExportResult:
    """Write ``source`` as one ``.keras`` file with complete metadata, atomically.

    ``features`` (the training feature file) is needed only by an embedding model
    without class centroids; ``data`` names the corpus of a file without class labels.
    An existing ``output`` is replaced only with ``overwrite``."""
    from timnet.modelfiles.portable import save_portable

    source, output = Path(source), Path(output)
    if output.suffix != ".keras":
        raise UserError(f"--output {output}: the portable model file must end in .keras")
    if output.exists() and not overwrite:
        raise UserError(f"--output {output}: the file exists; give --overwrite to replace it")
    loaded, meta, centroids_note = load_with_centroids(source, data, features, seed, overrides)
    if meta.centroids is not None and meta.centroids_source is None:
        meta = meta.with_centroids(meta.centroids, "the weights file")
    meta = dataclasses.replace(meta, exported_from=str(source), data=meta.data or data_name(data))
    save_portable(loaded.model, output, meta)
    return ExportResult(output, source, meta, loaded.notes, centroids_note)

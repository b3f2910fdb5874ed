"""One portable model file: the ``.keras`` archive plus TIM-Net's own metadata.

A ``.keras`` file is a zip archive; Keras reads only the members it wrote, so the
class labels, preprocessing settings and (embedding models) class centroids are
stored beside them as ``timnet.json`` (a :class:`ModelMetadata`). Loading needs
nothing but this file. Keras' safe mode stays on: a model file runs no code.

Reading the metadata needs no TensorFlow; Keras is imported to save or load a network.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from timnet.config import ArchitectureConfig
from timnet.features.files import atomic_path
from timnet.jsonable import json_default
from timnet.modelfiles.metadata import ModelFileError, ModelMetadata

METADATA_MEMBER = "timnet.json"
FIX = "use a .keras file written by timnet train or timnet export (python Code/main.py --mode export)"


def _network_metadata(model: Any, metadata: ModelMetadata | Mapping[str, Any], source: str | Path) -> ModelMetadata:
    """``metadata`` with the architecture and head of the network itself (which decide)."""
    from timnet.modelfiles.keras2 import model_architecture
    from timnet.network.layers import model_head

    network = ArchitectureConfig.from_dict(model_architecture(model))
    if isinstance(metadata, ModelMetadata):
        return dataclasses.replace(metadata, architecture=network, head=model_head(model))
    return ModelMetadata.from_dict(dict(metadata), source, architecture=network, head=model_head(model))


def save_portable(model: Any, path: str | Path, metadata: ModelMetadata | Mapping[str, Any]) -> Path:
    """Write ``model`` and its metadata atomically (a reader never sees half a file).

    ``metadata`` may be a plain dict of the same fields (scripts, old callers); the
    network's own architecture and head are recorded either way."""
    import keras

    from timnet.network import layers  # noqa: F401  (registers the custom objects)

    path = Path(path)
    meta = _network_metadata(model, metadata, path)
    # An uncompiled clone: the file carries the network, not the optimizer's state.
    bare = keras.models.clone_model(model)
    bare.set_weights(model.get_weights())
    with atomic_path(path, suffix=".keras") as tmp:
        bare.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(METADATA_MEMBER, json.dumps(meta.to_dict(), default=json_default))
    return path


def read_portable_metadata(path: str | Path) -> dict[str, Any]:
    """The raw ``timnet.json`` record of a ``.keras`` file (no TensorFlow needed)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        with zipfile.ZipFile(path) as archive:
            if METADATA_MEMBER not in archive.namelist():
                raise ModelFileError(f"{path}: not a TIM-Net model file (a .keras file without {METADATA_MEMBER}); "
                                     f"{FIX}")
            raw = archive.read(METADATA_MEMBER)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFileError(f"{path}: not a readable .keras model file ({exc}); {FIX}") from None
    try:
        record = json.loads(raw)
    except ValueError as exc:
        raise ModelFileError(f"{path}: malformed {METADATA_MEMBER} ({exc}); export the model again") from None
    if not isinstance(record, dict):
        raise ModelFileError(f"{path}: malformed {METADATA_MEMBER} (not a JSON object); export the model again")
    return record


def read_portable(path: str | Path) -> tuple[dict[str, Any], ModelMetadata]:
    """The raw record and the typed metadata as recorded (the network not built)."""
    record = read_portable_metadata(path)
    return record, ModelMetadata.from_dict(record, path)


def load_portable(path: str | Path) -> tuple[Any, ModelMetadata]:
    """The network and its metadata; the network's architecture and head win over the record's."""
    import keras

    from timnet.network import layers, losses  # noqa: F401  (register the custom objects)

    path = Path(path)
    record = read_portable_metadata(path)
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - any failure here means the file is unusable
        text = " ".join(str(exc).split())[:300]
        raise ModelFileError(f"{path}: cannot load the model ({type(exc).__name__}: {text}); {FIX}") from None
    names = {layer.name for layer in getattr(model, "layers", [])}
    if not isinstance(model, keras.Model) or not {"timnet", "fusion"} <= names:
        raise ModelFileError(f"{path}: a Keras model without the TIM-Net layers (timnet, fusion); {FIX}")
    return model, _network_metadata(model, record, path)

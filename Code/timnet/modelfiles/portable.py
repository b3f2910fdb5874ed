"""One portable model file: the ``.keras`` archive plus TIM-Net's own metadata.

A ``.keras`` file is a zip archive; Keras reads only the members it wrote, so the
class labels, preprocessing settings and (embedding models) class centroids are
stored beside them as ``timnet.json``. Loading needs nothing but this file.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import keras
import numpy as np

from timnet.network import losses  # noqa: F401  (registers the custom objects for deserialisation)
from timnet.network import layers as TIMNET  # noqa: F401
from timnet.errors import UserError
from timnet.features.files import atomic_path
from timnet.jsonable import json_default

METADATA_MEMBER = "timnet.json"


def save_portable(model: keras.Model, path: str | Path, metadata: dict[str, Any]) -> Path:
    """Write ``model`` and ``metadata`` (JSON-serialisable; arrays become lists) atomically."""
    path = Path(path)
    # An uncompiled clone: the file carries the network, not the optimizer's state.
    bare = keras.models.clone_model(model)
    bare.set_weights(model.get_weights())
    with atomic_path(path, suffix=".keras") as tmp:
        bare.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(METADATA_MEMBER, json.dumps(metadata, default=json_default))
    return path


def read_portable_metadata(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            if METADATA_MEMBER not in archive.namelist():
                raise UserError(f"{path}: a .keras file without TIM-Net metadata; export it with --mode export")
            return json.loads(archive.read(METADATA_MEMBER))
    except (zipfile.BadZipFile, OSError) as exc:
        raise UserError(f"{path}: not a readable .keras model file ({exc})") from None


def load_portable(path: str | Path) -> tuple[keras.Model, dict[str, Any]]:
    """The model and its metadata; ``metadata["centroids"]`` is an array when present."""
    path = Path(path)
    metadata = read_portable_metadata(path)
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - any failure here means the file is unusable
        raise UserError(f"{path}: cannot load the model ({type(exc).__name__}: {exc})") from None
    if metadata.get("centroids") is not None:
        metadata["centroids"] = np.asarray(metadata["centroids"], dtype=np.float32)
    return model, metadata


"""Safe reading and atomic writing of feature files (``MFCC/<NAME>.npy``).

The original code stores ``{"x": X, "y": Y}`` with ``np.save`` and reads it back with
``allow_pickle=True``, which lets a downloaded file run arbitrary code. Here the
pickle inside such a file is read by an unpickler that only knows how to rebuild
numpy arrays, dtypes and numpy scalars: any other object is refused.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from timnet.errors import WRITE_ERRNOS, UserError, WriteError
from timnet.faults import fault_point
from timnet.features import corpora

# (module, name) pairs a numpy object-array pickle legitimately refers to.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("collections", "OrderedDict"),
}
_NUMPY_DTYPE_CLASS_MODULES = ("numpy.dtypes",)
# Fewer frames leave the temporal-aware blocks nothing to relate (T = 1 + samples // 512).
MIN_FRAMES = 2


class FeatureFileError(UserError):
    """A feature file that cannot be used; the message names the file and the fix."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS or (
            module in _NUMPY_DTYPE_CLASS_MODULES and name.endswith("DType")
        ):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load '{module}.{name}'")


def _check_plain(value: Any, where: str) -> None:
    """Accept only arrays of plain dtypes, dicts, lists and plain scalars/strings."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise pickle.UnpicklingError(f"non-string key {k!r} in {where}")
            _check_plain(v, f"{where}[{k!r}]")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
    elif isinstance(value, np.ndarray):
        if value.dtype == object:
            for i, v in enumerate(value.ravel()):
                _check_plain(v, f"{where}[{i}]")
    elif not isinstance(value, (str, bytes, int, float, bool, np.generic, type(None))):
        raise pickle.UnpicklingError(f"unexpected {type(value).__name__} in {where}")


def _read_npy_header(f: io.BufferedReader) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(f)
    return np.lib.format._read_array_header(f, version)  # version 3.0 (utf8 names)


def read_npy(path: str | Path) -> Any:
    """Read a ``.npy`` file. Object arrays (the original's dict files) are unpickled
    safely; the result is the dict for a 0-d object array, else the array."""
    path = Path(path)
    if not path.is_file():
        raise FeatureFileError(f"{path}: feature file not found (extract it first, see README)")
    try:
        with open(path, "rb") as f:
            shape, fortran, dtype = _read_npy_header(f)
            if dtype.hasobject:
                obj = _NumpyOnlyUnpickler(f).load()
                _check_plain(obj, path.name)
            else:
                f.seek(0)
                obj = np.load(f, allow_pickle=False)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        raise FeatureFileError(
            f"{path}: refused, not a plain numpy feature file ({exc}); "
            "re-create it with the project's extraction scripts"
        ) from None
    except ValueError as exc:
        raise FeatureFileError(f"{path}: not a valid .npy file ({exc})") from None
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ():
        obj = obj.item()
    return obj


@contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` on success,
    delete it on failure, so a reader never sees a half-written file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=suffix if suffix is not None else path.suffix,
            dir=path.parent,
        )
    except OSError as exc:
        if exc.errno in WRITE_ERRNOS:
            raise WriteError(path, exc) from None
        raise
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        fault_point("before_rename", file=path.name, path=path)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp creates 0600; give the usual mode
        os.replace(tmp_path, path)
    except OSError as exc:
        if exc.errno in WRITE_ERRNOS:
            raise WriteError(path, exc) from None
        raise
    finally:
        try:
            tmp_path.unlink(missing_ok=True)
        except OSError:  # a folder turned read-only: the hidden temporary stays (a resume removes it)
            pass
    fault_point("after_rename", file=path.name, path=path)


# What atomic_path's temporaries look like: ".<name>." + mkstemp's 8 random characters + suffix.
_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}(\.[A-Za-z0-9]+)?$")


def remove_temporaries(folder: str | Path) -> list[Path]:
    """Delete the hidden temporaries a killed writer left in ``folder`` (SIGKILL skips
    :func:`atomic_path`'s clean-up); call it only where no other writer is at work, i.e.
    from the run that owns the folder. Returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in folder.iterdir():
        if path.is_file() and _TEMPORARY.match(path.name):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def write_npy_dict(path: str | Path, data: dict[str, Any]) -> Path:
    """Write ``data`` the original's way (a dict in a ``.npy``), atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, np.array(data, dtype=object), allow_pickle=True)
    return path


@dataclass
class FeatureSet:
    """Features of one corpus as the model consumes them."""

    x: np.ndarray  # (N, T, n_mfcc) float32
    y: np.ndarray  # (N, C) one-hot float32
    class_labels: tuple[str, ...]
    name: str
    path: Path | None = None
    speakers: np.ndarray | None = None
    files: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> dict[str, Any]:
        """What a model file records about the data it was trained on: a SHA-256 of the
        features, labels and class names (not of the file's bytes, so a copy elsewhere is
        the same data), and their shape. Testing compares it with the tested file's to
        tell the training data (rebuild its folds) from other data (score it whole).
        Computed once (about a second per GB); a class subset keeps its file's."""
        cached = getattr(self, "_fingerprint", None)
        if cached is None:
            digest = hashlib.sha256()
            for array in (np.ascontiguousarray(self.x, dtype=np.float32), self.labels.astype(np.int64)):
                digest.update(array.view(np.uint8).ravel())
            digest.update("\0".join(self.class_labels).encode("utf8"))
            cached = {"sha256": digest.hexdigest(), "name": self.name, "utterances": int(self.x.shape[0]),
                      "frames": int(self.x.shape[1]), "n_mfcc": int(self.x.shape[2]),
                      "class_labels": list(self.class_labels)}
            self._fingerprint = cached
        return dict(cached)

    def inherit_fingerprint(self, source: FeatureSet) -> None:
        """A part of ``source`` (a class subset) is recorded as trained on ``source``."""
        self._fingerprint = source.fingerprint()

    @property
    def labels(self) -> np.ndarray:
        """Integer class of every utterance."""
        return np.argmax(self.y, axis=1)

    @property
    def mean_signal_length(self) -> int:
        """Samples per utterance the features were made from: the file's record, else the
        known corpus length that gives its frame count (T = 1 + L // 512)."""
        stored = self.extra.get("mean_signal_length")
        if stored is not None:
            return int(stored)
        frames = self.x.shape[1]
        for length in (corpora.SEED_SIGNAL_LENGTH, *corpora.MEAN_SIGNAL_LENGTH.values()):
            if 1 + length // corpora.HOP_LENGTH == frames:
                return length
        return (frames - 1) * corpora.HOP_LENGTH


def load_features(path: str | Path, class_labels: tuple[str, ...] | None = None) -> FeatureSet:
    """Load and validate a feature file. ``class_labels`` comes from the file's
    ``class_labels`` key when present, else from the argument."""
    path = Path(path)
    obj = read_npy(path)
    if not isinstance(obj, dict) or "x" not in obj or "y" not in obj:
        raise FeatureFileError(
            f"{path}: expected a dict with keys 'x' and 'y' (np.save(path, {{'x': X, 'y': Y}}))"
        )
    x, y = np.asarray(obj["x"]), np.asarray(obj["y"])
    if x.ndim != 3 or x.shape[2] == 0:
        raise FeatureFileError(f"{path}: 'x' must have shape (N, T, n_mfcc) with n_mfcc >= 1, got {x.shape}")
    if y.ndim != 2:
        raise FeatureFileError(f"{path}: 'y' must be one-hot of shape (N, C), got {y.shape}")
    if len(x) != len(y):
        raise FeatureFileError(f"{path}: 'x' has {len(x)} utterances but 'y' has {len(y)}")
    if len(x) == 0:
        raise FeatureFileError(f"{path}: the file holds no utterance")
    if not np.all((y == 0) | (y == 1)) or not np.all(y.sum(axis=1) == 1):
        raise FeatureFileError(f"{path}: 'y' is not one-hot (each row needs a single 1)")
    if not np.issubdtype(x.dtype, np.floating):
        raise FeatureFileError(f"{path}: 'x' must be floating point, got {x.dtype}")
    if "class_labels" in obj:
        class_labels = tuple(str(c) for c in np.asarray(obj["class_labels"]).tolist())
    if class_labels is None:
        raise FeatureFileError(
            f"{path}: unknown class names; name the file after a known corpus "
            "or store a 'class_labels' key in it"
        )
    if len(class_labels) != y.shape[1]:
        raise FeatureFileError(
            f"{path}: 'y' has {y.shape[1]} classes but the class tuple has "
            f"{len(class_labels)} ({', '.join(class_labels)})"
        )
    if x.shape[1] < MIN_FRAMES:
        raise FeatureFileError(
            f"{path}: {x.shape[1]} frame(s) per utterance; TIM-Net needs at least {MIN_FRAMES} "
            "(re-extract with a longer --mean_signal_length)"
        )
    x = x.astype(np.float32, copy=False)
    del obj["x"]
    n = len(x)

    def optional(key: str) -> np.ndarray | None:
        value = obj.get(key)
        if value is None:
            return None
        value = np.asarray(value)
        if len(value) != n:
            raise FeatureFileError(f"{path}: '{key}' has {len(value)} entries for {n} utterances")
        return value.astype(str)

    known = {"x", "y", "speaker", "path", "class_labels"}
    extra = {k: v for k, v in obj.items() if k not in known}
    files = optional("path")
    check_finite(x, path, files)
    return FeatureSet(
        x=x, y=y.astype(np.float32, copy=False), class_labels=tuple(class_labels),
        name=path.stem, path=path, speakers=optional("speaker"), files=files, extra=extra,
    )


def check_finite(x: np.ndarray, path: Path, files: np.ndarray | None = None) -> None:
    """NaN or infinite features would poison a training or be scored as some class:
    refuse the file, naming the first bad utterance (and its audio file when recorded)."""
    bad = ~np.isfinite(x).all(axis=(1, 2))
    if not bad.any():
        return
    first = int(np.argmax(bad))
    value = x[first][~np.isfinite(x[first])][0]
    source = f" ({files[first]})" if files is not None else ""
    raise FeatureFileError(
        f"{path}: utterance {first}{source} has {value} features ({int(bad.sum())} utterance(s) affected); "
        "re-extract the file or remove those utterances"
    )


def describe_existing(path: Path) -> str | None:
    """``"ESD_train.npy (500 utterances)"`` for a feature file about to be replaced, else None."""
    if not path.is_file():
        return None
    try:
        obj = read_npy(path)
        count = f"{len(obj['x'])} utterances"
    except (UserError, KeyError, TypeError):
        count = "unreadable"
    return f"{path.name} ({count})"


def data_file(data: str) -> Path:
    """``--data``: ``EMODB`` -> ``<root>/MFCC/EMODB.npy``; a path ending in ``.npy`` is
    taken from the current folder."""
    if data.endswith(".npy"):
        return Path(data).expanduser().absolute()
    if "/" in data or "\\" in data or "." in Path(data).name:
        raise UserError(f"--data {data}: expected a corpus name in MFCC/ (such as EMODB) or a path to a .npy "
                        "feature file (made by timnet extract)")
    from timnet import paths

    return paths.MFCC_DIR / f"{data}.npy"


def load_data(data: str) -> FeatureSet:
    """The feature file ``--data`` names, validated (fails before TensorFlow loads)."""
    path = data_file(data)
    try:
        labels = corpora.class_labels_for(path.stem)
    except KeyError:
        labels = None
    if not path.is_file():
        hint = ("run the feature extraction first (timnet extract, see README)" if labels
                else "expected a .npy feature file made by timnet extract: check the name or give its path")
        raise UserError(f"{path}: feature file not found for --data {data}; {hint}")
    return load_features(path, labels)

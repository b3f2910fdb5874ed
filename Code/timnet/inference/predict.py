"""Emotion of real recordings with a trained TIM-Net, and one portable model file.

``--mode predict`` scores audio files with the preprocessing the model was trained
with (read from its metadata); ``--mode export`` turns a weights file (the
original's or ours) into a self-contained ``.keras`` file. :class:`Predictor` loads
a model once and scores any number of files, for scripts and services.

TensorFlow is imported lazily: spawned feature workers import this module for
:func:`_featurise` and must not pay for it.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import json
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from timnet.features import corpora
from timnet.features import mfcc
from timnet import paths
from timnet.errors import UserError
from timnet.features.files import atomic_path

# Suffixes searched for in a --wav folder (formats libsndfile or audioread read).
AUDIO_SUFFIXES = frozenset({
    ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".wma", ".aif", ".aiff",
    ".aifc", ".au", ".snd", ".caf", ".w64", ".webm", ".mp4",
})
# Fewer files than this are featurised in this process. Forked workers start in
# milliseconds; spawned ones (forking is unsafe once TensorFlow is loaded) each
# import librosa afresh: seconds (over 10 s on a busy 2-core machine) that only
# a thousand files or so win back.
PARALLEL_MIN_FILES = 16
PARALLEL_MIN_FILES_SPAWN = 1000
PROGRESS_MIN_FILES = 5
TABLE_ROWS = 50
# Run-folder weight files, ours or the original's, .hdf5/.h5 or .keras.
_KFOLD = re.compile(r"^(\d+)-fold_weights_best_(\d+)\.(?:hdf5|h5|keras)$")
_LOSO = re.compile(r"^loso_weights_(\d+)_(.+)\.(?:hdf5|h5|keras)$")
_SUFFIX_ORDER = {".keras": 0, ".hdf5": 1, ".h5": 2}


# --- which model file --------------------------------------------------------------


def resolve_model_file(test_path: Path, fold: int | None = None) -> Path:
    """``--test_path``: a model file itself, or the one file of a run folder to use.

    In a folder, ``weights_best.keras`` is preferred over ``weights_best.hdf5``; a
    k-fold or LOSO folder gives fold ``fold`` (1-based, default 1).
    """
    if test_path.is_file():
        if fold not in (None, 1):
            raise UserError(f"--fold {fold}: --test_path {test_path} is a single model file, not a run folder")
        return test_path
    if not test_path.is_dir():
        raise UserError(f"--test_path {test_path}: no such model file or run folder")
    for name in ("weights_best.keras", "weights_best.hdf5", "weights_best.h5"):
        if (test_path / name).is_file():
            if fold not in (None, 1):
                raise UserError(f"--fold {fold}: {test_path} is a hold-out run with one model")
            return test_path / name
    folds: dict[int, list[Path]] = {}
    for p in test_path.iterdir():
        m = _KFOLD.match(p.name)
        index = int(m.group(2)) if m else (int(m2.group(1)) if (m2 := _LOSO.match(p.name)) else None)
        if index is not None:
            folds.setdefault(index, []).append(p)
    if folds:
        want = 1 if fold is None else fold
        if want not in folds:
            raise UserError(f"--fold {want}: {test_path} has folds {', '.join(map(str, sorted(folds)))}")
        return min(folds[want], key=lambda p: _SUFFIX_ORDER.get(p.suffix, 9))
    keras_files = sorted(test_path.glob("*.keras"))
    if len(keras_files) == 1:
        return keras_files[0]
    raise UserError(f"--test_path {test_path}: no model found (expected weights_best.keras/.hdf5, "
                    "<k>-fold_weights_best_<i> files or one .keras file)")


def _file_metadata(path: Path) -> tuple[dict[str, Any], str, bool]:
    """(metadata, head, has centroids) without building the network."""
    if path.suffix == ".keras":
        from timnet.modelfiles import portable as portable_model

        meta = portable_model.read_portable_metadata(path)
        return meta, str(meta.get("head", "softmax")), meta.get("centroids") is not None
    from timnet.modelfiles import keras2 as legacy_weights

    wf = legacy_weights.read_weight_file(path)
    arch = legacy_weights.infer_architecture(wf)
    meta = dict(wf.metadata or {})
    meta.setdefault("n_mfcc", arch["n_mfcc"])
    return meta, arch["head"], wf.centroids is not None


def peek_preprocessing(path: Path, data: str = "INTERSECT") -> tuple[int, int] | None:
    """(mean_signal_length, n_mfcc) of a model file without importing TensorFlow, or
    None when unsure (:func:`load_model` then has the final word)."""
    import zipfile

    try:
        if path.suffix == ".keras":
            with zipfile.ZipFile(path) as archive:
                meta = json.loads(archive.read("timnet.json"))  # portable_model.METADATA_MEMBER
        else:
            import h5py

            with h5py.File(path, "r") as f:
                raw = f.attrs.get("timnet_metadata")  # legacy_weights.METADATA_ATTR
            meta = json.loads(raw) if raw is not None else {}
        length = meta.get("mean_signal_length") or legacy_defaults(data)[1]
        return int(length), int(meta.get("n_mfcc") or corpora.N_MFCC)
    except Exception:  # noqa: BLE001 - only a shortcut; loading the model reports real problems
        return None


def _data_name(data: str) -> str:
    return Path(data).stem if data.endswith(".npy") else data


def legacy_defaults(data: str) -> tuple[tuple[str, ...], int]:
    """Class labels and signal length of a file without metadata, from ``--data``'s name."""
    name = _data_name(data)
    try:
        key = corpora.corpus_key(name)
    except KeyError:
        known = ", ".join(sorted(corpora.CLASS_LABELS))
        raise UserError(f"the model file carries no class labels: give --data a known corpus name ({known}) "
                        "or export the model with its labels first") from None
    return corpora.CLASS_LABELS[key], corpora.MEAN_SIGNAL_LENGTH.get(key, corpora.SEED_SIGNAL_LENGTH)


def load_model(path: Path, data: str = "INTERSECT", overrides: dict[str, Any] | None = None,
               signal_length: int | None = None) -> tuple[Any, dict[str, Any], list[str]]:
    """The network, complete metadata (class_labels, head, mean_signal_length, frames,
    n_mfcc, sample_rate, centroids) and notes on anything taken from ``data``.

    ``signal_length`` overrides the length of a file that records none."""
    from timnet.training import engine as Model

    notes: list[str] = []
    file_meta, _, _ = _file_metadata(path)
    labels = file_meta.get("class_labels")
    length = file_meta.get("mean_signal_length")
    if not labels or not length:
        default_labels, default_length = legacy_defaults(data)
        if not labels:
            labels = list(default_labels)
            notes.append(f"{path.name} carries no class labels: using --data {_data_name(data)}'s "
                         f"({', '.join(labels)})")
        if not length:
            length = signal_length or default_length
            notes.append(f"{path.name} carries no signal length: using {length} samples "
                         f"({'from the feature file' if signal_length else 'for --data ' + _data_name(data)})")
    length = int(length)
    n_mfcc = int(file_meta.get("n_mfcc") or corpora.N_MFCC)
    model, meta = Model.load_trained(path, (mfcc.n_frames(length), n_mfcc), overrides or {})
    meta = dict(meta)
    head = Model.model_head(model)
    frames = model.input_shape[1]
    meta.update(class_labels=list(labels), mean_signal_length=length, head=head,
                n_mfcc=int(model.input_shape[-1]), num_classes=len(labels),
                sample_rate=int(meta.get("sample_rate") or corpora.SAMPLE_RATE))
    meta["frames"] = int(frames) if frames is not None else mfcc.n_frames(length)
    if meta["frames"] != mfcc.n_frames(length):
        raise UserError(f"{path}: the model takes {meta['frames']} frames but its signal length {length} "
                        f"gives {mfcc.n_frames(length)}")
    if meta["sample_rate"] != corpora.SAMPLE_RATE:
        raise UserError(f"{path}: the model was trained at {meta['sample_rate']} Hz; this project's MFCC "
                        f"extraction works at {corpora.SAMPLE_RATE} Hz only")
    if head == "softmax" and int(model.output_shape[-1]) != len(labels):
        raise UserError(f"{path}: the model predicts {model.output_shape[-1]} classes but has "
                        f"{len(labels)} class labels ({', '.join(labels)}); check --data")
    if meta.get("centroids") is not None:
        meta["centroids"] = np.asarray(meta["centroids"], dtype=np.float32)
        if meta["centroids"].shape[0] != len(labels):
            raise UserError(f"{path}: {meta['centroids'].shape[0]} class centroids but {len(labels)} class "
                            f"labels ({', '.join(labels)}); check --data")
    return model, meta, notes


# --- scoring files -----------------------------------------------------------------


@dataclass
class WindowScore:
    """Scores of one analysis window of a file (``--window_hop``)."""

    start_s: float
    end_s: float
    status: str
    predicted: str = ""
    scores: np.ndarray | None = None


@dataclass
class PredictionRow:
    """One file's result. ``status``: ok, silent, missing, empty or unreadable
    (``detail`` says why); ``scores`` are the (window-mean) class scores."""

    file: str
    status: str
    detail: str = ""
    predicted: str = ""
    scores: np.ndarray | None = None
    windows: list[WindowScore] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def window_starts(n_samples: int, length: int, hop: int) -> list[int]:
    """Window starts every ``hop`` samples, plus one ending at the signal's end so the
    tail is scored too; a signal no longer than a window gives one (centred) window."""
    if n_samples <= length:
        return [0]
    starts = list(range(0, n_samples - length + 1, hop))
    if starts[-1] + length < n_samples:
        starts.append(n_samples - length)
    return starts


def _featurise(task: tuple[int, str, int, int, int | None]) -> tuple[int, str, np.ndarray | None, list[int], int, str]:
    """MFCCs of one file (a worker's job): the centred window (``hop`` None, as in
    training) or every window ``hop`` samples apart; or why the file failed."""
    index, path, length, n_mfcc, hop = task
    try:
        with warnings.catch_warnings():  # librosa warns before trying audioread; the failure says it all
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", FutureWarning)
            signal = mfcc.load_signal(path)
        if hop is None:
            return index, path, mfcc.get_mfcc(signal, length, n_mfcc)[None], [0], len(signal), ""
        if signal.size == 0:
            raise ValueError("empty audio (no samples)")
        starts = window_starts(len(signal), length, hop)
        feats = np.stack([mfcc.get_mfcc(signal[s:s + length], length, n_mfcc) for s in starts])
        return index, path, feats.astype(np.float32), starts, len(signal), ""
    except Exception as exc:  # noqa: BLE001 - one bad file is reported in its row
        return index, path, None, [], 0, mfcc.failure_reason(exc, path)


def _status_of(reason: str) -> str:
    if reason == "file not found":
        return "missing"
    if "empty audio" in reason:
        return "empty"
    return "unreadable"


@dataclass
class Featurised:
    """MFCC windows of a list of files, made before (or without) loading a model:
    ``rows`` holds the files that failed early (missing, 0 bytes), None elsewhere;
    ``results`` what :func:`_featurise` returned for the others."""

    rows: list[PredictionRow | None]
    results: list[tuple]
    mean_signal_length: int
    n_mfcc: int
    window_hop: float | None


@functools.cache
def _blas_controller() -> Any:
    """Made once: finding the BLAS libraries costs milliseconds a call."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def _in_process(tasks: list[tuple], progress: bool) -> Iterator[tuple]:
    """Features in this process with one BLAS thread, as the workers have (same values)."""
    controller = _blas_controller()
    limit = controller.limit(limits=1) if controller is not None else contextlib.nullcontext()
    with limit, tqdm(total=len(tasks), desc="MFCC", unit="file", disable=not progress) as bar:
        for task in tasks:
            yield _featurise(task)
            bar.update()


def featurise_files(files: Sequence[str | Path], mean_signal_length: int, n_mfcc: int = corpora.N_MFCC,
                    window_hop: float | None = None, jobs: int | None = None,
                    progress: bool | None = None) -> Featurised:
    """MFCCs of ``files`` as a model with these settings takes them.

    ``jobs`` worker processes (default all cores, via ``mfcc.parallel_map``) from
    :data:`PARALLEL_MIN_FILES` files on (:data:`PARALLEL_MIN_FILES_SPAWN` once
    TensorFlow is loaded); fewer files, or one, run in this process."""
    if window_hop is not None and not window_hop > 0:
        raise UserError(f"--window_hop {window_hop}: give a positive number of seconds")
    if jobs is not None and jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    names = [str(f) for f in files]
    rows: list[PredictionRow | None] = [None] * len(names)
    hop = None if window_hop is None else max(1, round(window_hop * corpora.SAMPLE_RATE))
    tasks = []
    for i, name in enumerate(names):
        p = Path(name)
        if not p.exists():
            rows[i] = PredictionRow(name, "missing", "no such file")
        elif p.is_file() and p.stat().st_size == 0:
            rows[i] = PredictionRow(name, "empty", "the file is empty (0 bytes)")
        else:
            tasks.append((i, name, mean_signal_length, n_mfcc, hop))
    spawn = "tensorflow" in sys.modules  # what mfcc.parallel_map will have to do
    enough = len(tasks) >= (PARALLEL_MIN_FILES_SPAWN if spawn else PARALLEL_MIN_FILES)
    workers = (jobs or mfcc.default_jobs()) if enough else 1
    show = len(tasks) >= PROGRESS_MIN_FILES if progress is None else progress
    if workers == 1:
        results = list(_in_process(tasks, show))
    else:
        results = list(mfcc.parallel_map(_featurise, tasks, workers, show, desc="MFCC"))
    return Featurised(rows, results, mean_signal_length, n_mfcc, window_hop)


class Predictor:
    """A trained model loaded once, scoring audio files with its own preprocessing.

    Scores are softmax probabilities (softmax head) or cosine similarities to the
    class centroids (embedding head). The forward pass is ``Model.predict_array``'s
    compiled function, traced once at construction.
    """

    def __init__(self, model: Any, metadata: dict[str, Any], source: str | Path = "", batch_size: int = 64,
                 notes: Sequence[str] = ()) -> None:
        from timnet.training.engine import predict_array  # TensorFlow loads here, after any worker forked

        self.model = model
        self.metadata = metadata
        self.source = str(source)
        self.batch_size = batch_size
        self.notes = list(notes)
        self.class_labels: tuple[str, ...] = tuple(metadata["class_labels"])
        self.head: str = metadata["head"]
        self.mean_signal_length = int(metadata["mean_signal_length"])
        self.n_mfcc = int(metadata["n_mfcc"])
        self.frames = int(metadata["frames"])
        self.sample_rate = int(metadata["sample_rate"])
        centroids = metadata.get("centroids")
        self.centroids = None if centroids is None else np.asarray(centroids, dtype=np.float32)
        if self.head == "embedding" and self.centroids is None:
            raise UserError(
                f"{source or 'the model'}: an embedding (N-pair) model without class centroids cannot classify; "
                "export it with centroids (python Code/main.py --mode export --test_path <weights> --data "
                "<training feature file> --output model.keras) or use a softmax (--loss ce) model"
            )
        predict_array(model, np.zeros((1, self.frames, self.n_mfcc), np.float32))  # trace now, not on the first file
        self._silence = mfcc.get_mfcc(np.zeros(2048, np.float32), 2048, self.n_mfcc)[0]

    @classmethod
    def load(cls, test_path: str | Path, data: str = "INTERSECT", fold: int | None = None,
             overrides: dict[str, Any] | None = None, batch_size: int = 64) -> Predictor:
        """Load a .keras file, a weights file or a run folder (see :func:`resolve_model_file`)."""
        path = resolve_model_file(Path(test_path), fold)
        model, meta, notes = load_model(path, data, overrides)
        return cls(model, meta, path, batch_size, notes)

    @property
    def score_kind(self) -> str:
        return "probability" if self.head == "softmax" else "cosine similarity to class centroids"

    def score_features(self, x: np.ndarray) -> np.ndarray:
        """(N, classes) scores of MFCC matrices (N, frames, n_mfcc), in batches."""
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != (self.frames, self.n_mfcc):
            raise ValueError(f"expected features of shape (N, {self.frames}, {self.n_mfcc}), got {x.shape}")
        if not len(x):
            return np.zeros((0, len(self.class_labels)), np.float32)
        from timnet.training.engine import cosine_scores, predict_array

        out = predict_array(self.model, x, batch_size=self.batch_size)
        if self.head == "embedding":
            out = cosine_scores(out, self.centroids)
        return out.astype(np.float32)

    def is_silent(self, x: np.ndarray) -> np.ndarray:
        """Per MFCC matrix: True when every frame is that of digital silence."""
        return np.all(np.abs(x - self._silence) <= 1e-3, axis=(-2, -1))

    def predict_files(self, files: Sequence[str | Path], window_hop: float | None = None, jobs: int | None = None,
                      progress: bool | None = None) -> list[PredictionRow]:
        """One row per file, in order. ``window_hop`` (seconds): score windows of the
        model's length every that many seconds and average them; else the centred
        window, as in training. ``jobs``: see :func:`featurise_files`."""
        return self.score(featurise_files(files, self.mean_signal_length, self.n_mfcc, window_hop, jobs, progress))

    def _label(self, scores: np.ndarray) -> str:
        return self.class_labels[int(np.argmax(scores))]

    def score(self, featurised: Featurised) -> list[PredictionRow]:
        """Rows of files featurised by :func:`featurise_files` with this model's settings."""
        if (featurised.mean_signal_length, featurised.n_mfcc) != (self.mean_signal_length, self.n_mfcc):
            raise ValueError("features made with another signal length or MFCC count than the model's")
        rows = list(featurised.rows)
        self._score(featurised.results, rows, featurised.window_hop is not None)
        return rows

    def _score(self, results: list[tuple], rows: list, with_windows: bool) -> None:
        """Score every window of every featurised file in batches; fill the rows."""
        feats = [r[2] for r in results if r[2] is not None]
        x = np.concatenate(feats) if feats else np.zeros((0, self.frames, self.n_mfcc), np.float32)
        silent = self.is_silent(x)
        scores = np.zeros((len(x), len(self.class_labels)), np.float32)
        scores[~silent] = self.score_features(x[~silent])
        sr, offset = corpora.SAMPLE_RATE, 0
        for i, name, feat, starts, n_samples, reason in results:
            if feat is None:
                rows[i] = PredictionRow(name, _status_of(reason), reason)
                continue
            windows = []
            for j, start in enumerate(starts):
                end = min(n_samples, start + self.mean_signal_length)
                if silent[offset + j]:
                    windows.append(WindowScore(start / sr, end / sr, "silent"))
                else:
                    sc = scores[offset + j]
                    windows.append(WindowScore(start / sr, end / sr, "ok", self._label(sc), sc))
            offset += len(starts)
            scored = [w.scores for w in windows if w.scores is not None]
            kept = windows if with_windows else []
            if not scored:
                why = "every window holds only zeros" if with_windows else "the scored window holds only zeros"
                rows[i] = PredictionRow(name, "silent", why, windows=kept)
                continue
            mean = np.mean(scored, axis=0) if len(scored) > 1 else scored[0]
            left_out = len(windows) - len(scored)
            detail = f"{left_out} silent window(s) left out of the mean" if left_out else ""
            rows[i] = PredictionRow(name, "ok", detail, self._label(mean), mean, kept)


# --- inputs and outputs ------------------------------------------------------------


def find_audio(wav: Path) -> list[Path]:
    """``--wav``: the file itself (even a missing one: its row says so), or every audio
    file under a folder, sorted."""
    if wav.is_dir():
        return sorted(p for p in wav.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and not p.is_dir())
    return [wav]


def _scores_dict(labels: Sequence[str], scores: np.ndarray | None) -> dict[str, float] | None:
    return None if scores is None else {c: float(v) for c, v in zip(labels, scores)}


def rows_to_json(rows: Sequence[PredictionRow], predictor: Predictor, window_hop: float | None) -> dict[str, Any]:
    files = []
    for r in rows:
        item: dict[str, Any] = {"file": r.file, "status": r.status, "detail": r.detail,
                                "predicted": r.predicted or None,
                                "scores": _scores_dict(predictor.class_labels, r.scores)}
        if window_hop is not None:
            item["windows"] = [{"start_s": round(w.start_s, 4), "end_s": round(w.end_s, 4), "status": w.status,
                                "predicted": w.predicted or None,
                                "scores": _scores_dict(predictor.class_labels, w.scores)} for w in r.windows]
        files.append(item)
    return {
        "model": predictor.source,
        "head": predictor.head,
        "score": predictor.score_kind,
        "class_labels": list(predictor.class_labels),
        "preprocessing": {"sample_rate": predictor.sample_rate, "mean_signal_length": predictor.mean_signal_length,
                          "n_mfcc": predictor.n_mfcc, "frames": predictor.frames,
                          "window": "centred" if window_hop is None else f"every {window_hop} s, mean of windows"},
        "window_hop_s": window_hop,
        "scored": sum(r.ok for r in rows),
        "files": files,
    }


def _fmt(v: float) -> str:
    return f"{float(v):.6f}"


def write_outputs(rows: Sequence[PredictionRow], folder: Path, predictor: Predictor,
                  window_hop: float | None) -> dict[str, Path]:
    """predictions.csv (one row per file), predictions.json and, with windows, windows.csv."""
    labels = list(predictor.class_labels)
    written = {"csv": folder / "predictions.csv", "json": folder / "predictions.json"}
    with atomic_path(written["csv"]) as tmp, open(tmp, "w", newline="", encoding="utf8") as f:
        w = csv.writer(f)
        w.writerow(["file", "status", "predicted", *labels, "windows", "detail"])
        for r in rows:
            scores = [_fmt(v) for v in r.scores] if r.scores is not None else [""] * len(labels)
            w.writerow([r.file, r.status, r.predicted, *scores, len(r.windows) or (1 if r.ok else 0), r.detail])
    with atomic_path(written["json"]) as tmp:
        tmp.write_text(json.dumps(rows_to_json(rows, predictor, window_hop), indent=1), encoding="utf8")
    if window_hop is not None:
        written["windows"] = folder / "windows.csv"
        with atomic_path(written["windows"]) as tmp, open(tmp, "w", newline="", encoding="utf8") as f:
            w = csv.writer(f)
            w.writerow(["file", "window", "start_s", "end_s", "status", "predicted", *labels])
            for r in rows:
                for j, win in enumerate(r.windows, start=1):
                    scores = [_fmt(v) for v in win.scores] if win.scores is not None else [""] * len(labels)
                    w.writerow([r.file, j, f"{win.start_s:.4f}", f"{win.end_s:.4f}", win.status, win.predicted,
                                *scores])
    return written


def print_table(rows: Sequence[PredictionRow], labels: Sequence[str], base: Path | None = None,
                limit: int = TABLE_ROWS) -> None:
    def short(name: str) -> str:
        if base is not None:
            try:
                return str(Path(name).relative_to(base))
            except ValueError:
                pass
        return name

    shown = rows[:limit]
    width = max([len("file"), *(len(short(r.file)) for r in shown)])
    status_w = max([len("status"), *(len(r.status) for r in shown)])
    pred_w = max([len("predicted"), *(len(r.predicted) for r in shown)])
    col_w = [max(6, len(c)) for c in labels]
    print(f"{'file':<{width}}  {'status':<{status_w}}  {'predicted':<{pred_w}}  "
          + "  ".join(f"{c:>{cw}}" for c, cw in zip(labels, col_w)))
    for r in shown:
        line = f"{short(r.file):<{width}}  {r.status:<{status_w}}  {r.predicted:<{pred_w}}  "
        if r.scores is not None:
            line += "  ".join(f"{v:>{cw}.3f}" for v, cw in zip(r.scores, col_w))
        else:
            line += r.detail
        print(line.rstrip())
    if len(rows) > limit:
        print(f"... {len(rows) - limit} more rows in the CSV")


def _result_folder(result_path: Path) -> Path:
    from timnet.training.engine import timestamp

    base = result_path / f"predict_{timestamp()}"
    folder, n = base, 1
    while folder.exists():
        n += 1
        folder = base.with_name(f"{base.name}_{n}")
    return folder


def _overrides(args: argparse.Namespace, given: set[str]) -> dict[str, Any]:
    from timnet.cli import legacy as cli

    return cli.architecture_overrides(args, given)


def run_predict(args: argparse.Namespace, given: set[str]) -> int:
    """``--mode predict``: score --wav with --test_path; 2 when no file could be scored."""
    if not args.wav:
        raise UserError("--mode predict needs --wav <audio file or folder>")
    if not args.test_path:
        raise UserError("--mode predict needs --test_path <.keras file, weights .hdf5 or run folder>")
    if args.window_hop is not None and not args.window_hop > 0:
        raise UserError(f"--window_hop {args.window_hop}: give a positive number of seconds")
    if args.jobs is not None and args.jobs < 1:
        raise UserError(f"--jobs {args.jobs}: give at least 1")
    wav = paths.resolve(args.wav)
    files = find_audio(wav)
    if not files:
        raise UserError(f"--wav {wav}: no audio files in this folder ({', '.join(sorted(AUDIO_SUFFIXES))})")
    source = resolve_model_file(paths.resolve(args.test_path), getattr(args, "fold", None))
    # Features first, while TensorFlow is not loaded: workers can then be forked (fast).
    peek = peek_preprocessing(source, args.data)
    featurised = featurise_files(files, *peek, args.window_hop, args.jobs) if peek else None
    model, meta, notes = load_model(source, args.data, _overrides(args, given))
    predictor = Predictor(model, meta, source, notes=notes)
    if featurised is None or (featurised.mean_signal_length, featurised.n_mfcc) != (
            predictor.mean_signal_length, predictor.n_mfcc):
        featurised = featurise_files(files, predictor.mean_signal_length, predictor.n_mfcc, args.window_hop, args.jobs)
    for note in predictor.notes:
        print(f"note: {note}")
    print(f"Model {predictor.source}: {predictor.head} head, classes {', '.join(predictor.class_labels)}; "
          f"{predictor.mean_signal_length} samples at {predictor.sample_rate} Hz, {predictor.n_mfcc} MFCCs")
    rows = predictor.score(featurised)
    folder = _result_folder(paths.resolve(args.result_path))
    written = write_outputs(rows, folder, predictor, args.window_hop)
    print_table(rows, predictor.class_labels, wav if wav.is_dir() else None)
    scored = sum(r.ok for r in rows)
    print(f"{scored} of {len(rows)} files scored ({predictor.score_kind}); results in {written['csv']} and "
          f"{written['json'].name}" + (f" and {written['windows'].name}" if "windows" in written else ""))
    if not scored:
        print(f"error: no file could be scored (see the status column of {written['csv']})", file=sys.stderr)
        return 2
    return 0


# --- export ------------------------------------------------------------------------------


def _centroid_index(source: Path, features: Any, seed: int) -> tuple[np.ndarray, str]:
    """The utterances a model was trained on, when its file name tells the protocol."""
    from timnet.training.protocols import holdout_split, kfold_splits

    n = len(features.x)
    if source.stem == "weights_best":
        return holdout_split(features.labels, seed)[0].train, f"the hold-out training split (seed {seed})"
    if m := _KFOLD.match(source.name):
        k, i = int(m.group(1)), int(m.group(2))
        return kfold_splits(n, k, seed)[i - 1].train, f"the training part of fold {i} of {k} (seed {seed})"
    if (m := _LOSO.match(source.name)) and features.speakers is not None:
        keep = np.flatnonzero(features.speakers.astype(str) != m.group(2))
        return keep, f"every speaker but {m.group(2)}"
    return np.arange(n), "every utterance"


def run_export(args: argparse.Namespace, given: set[str]) -> int:
    """``--mode export``: a weights file (or .keras) -> one self-contained .keras file."""
    from timnet.training import engine as Model
    from timnet.modelfiles import portable as portable_model
    from timnet.modelfiles.keras2 import model_architecture

    if not args.test_path:
        raise UserError("--mode export needs --test_path <weights .hdf5, .keras file or run folder>")
    if not args.output:
        raise UserError("--mode export needs --output <path.keras>")
    output = paths.resolve(args.output)
    if output.suffix != ".keras":
        raise UserError(f"--output {output}: the portable model file must end in .keras")
    source = resolve_model_file(paths.resolve(args.test_path), getattr(args, "fold", None))
    file_meta, head, has_centroids = _file_metadata(source)
    features = None
    if head == "embedding" and not has_centroids:
        from timnet.cli import legacy as cli

        try:
            features = cli.load_data(args.data)
        except UserError as exc:
            raise UserError(f"{source}: an embedding model without class centroids; computing them needs the "
                            f"training feature file ({exc})") from None
    length = Model.signal_length_for(Model.Settings(), features) if features is not None else None
    model, meta, notes = load_model(source, args.data, _overrides(args, given), length)
    for note in notes:
        print(f"note: {note}")
    centroids_source = "the weights file" if meta.get("centroids") is not None else None
    if features is not None:
        if list(features.class_labels) != list(meta["class_labels"]):
            raise UserError(f"{features.path}: classes ({', '.join(features.class_labels)}) differ from the "
                            f"model's ({', '.join(meta['class_labels'])})")
        if features.x.shape[1:] != (meta["frames"], meta["n_mfcc"]):
            raise UserError(f"{features.path}: features of shape {features.x.shape[1:]} but the model takes "
                            f"({meta['frames']}, {meta['n_mfcc']})")
        index, which = _centroid_index(source, features, args.random_seed)
        emb = Model.predict_array(model, features.x, index)
        meta["centroids"] = Model.class_centroids(emb, features.labels[index], len(features.class_labels))
        centroids_source = f"{features.path}: {which}, {len(index)} utterances"
        print(f"Class centroids computed from {centroids_source} (training-set centroids)")
    arch = model_architecture(model)
    out_meta = {
        "architecture": {k: arch[k] for k in Model.ARCHITECTURE_KEYS},
        "head": meta["head"],
        "loss": meta.get("loss") or ("ce" if meta["head"] == "softmax" else "npair"),
        "num_classes": meta["num_classes"],
        "class_labels": meta["class_labels"],
        "data": meta.get("data") or _data_name(args.data),
        "frames": meta["frames"],
        "n_mfcc": meta["n_mfcc"],
        "sample_rate": meta["sample_rate"],
        "mean_signal_length": meta["mean_signal_length"],
        "centroids": meta.get("centroids"),
        "exported_from": str(source),
        "centroids_source": centroids_source,
    }
    if "epoch" in meta:
        out_meta["epoch"] = meta["epoch"]
    portable_model.save_portable(model, output, out_meta)
    print(f"Exported {source} -> {output}: {meta['head']} head, classes {', '.join(meta['class_labels'])}, "
          f"{meta['mean_signal_length']} samples at {meta['sample_rate']} Hz"
          + (", with class centroids" if out_meta["centroids"] is not None else ""))
    return 0

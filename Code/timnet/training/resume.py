"""The resume state of a run (``<run>/.resume/``): what ``--resume`` needs to continue it exactly.

``state.npz`` is rewritten atomically (a temporary name, then a rename) at the end of
every completed epoch, so a SIGKILL at any moment leaves either the previous or the new
state, never a broken one. It holds the run's settings, which folds are complete, and
the fold in progress: its last completed epoch, the model weights, the optimizer
variables, the best-so-far loss, epoch and weights, and the curves so far. The shuffle
order and the dropout masks of an epoch depend only on (seed, fold, epoch)
(:class:`timnet.training.callbacks.EpochSeeding`), so nothing else is needed to
repeat the numbers of an uninterrupted run. A completed fold's evaluation is kept in
``fold_<i>.npz`` beside it. A run whose folder has no ``.resume`` is complete.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from timnet.config import FLAG_BY_NAME, ArchitectureConfig, TrainingConfig, flag_of
from timnet.errors import UserError
from timnet.evaluation.reports import FoldResult
from timnet.features.files import FeatureSet, atomic_path, remove_temporaries

STATE_DIR = ".resume"
STATE_FILE = "state.npz"
SETTINGS_FILE = "settings.json"  # the settings alone, written once: a damaged state.npz can be rebuilt
FORMAT_VERSION = 1
# Settings a resumed run may change: where it runs and where the run folder is, not what it computes.
FREE_SETTINGS = ("gpu", "model_path", "resume", "from_completed_folds")


@dataclass
class FoldProgress:
    """The fold in progress after its last completed epoch (``epoch`` 0: nothing trained yet)."""

    fold: int
    epoch: int = 0
    best_loss: float = math.inf
    best_epoch: int | None = None
    history: dict[str, list[float]] = field(default_factory=dict)
    weights: list[np.ndarray] | None = None
    optimizer: list[np.ndarray] | None = None
    best_weights: list[np.ndarray] | None = None


@dataclass
class CompletedFold:
    """A fold trained to its last epoch and evaluated: kept, not retrained, on resume."""

    result: FoldResult
    weights: Path
    history: dict[str, list[float]]
    best_epoch: int


def data_fingerprint(features: FeatureSet) -> dict[str, Any]:
    """Which feature file a run trains on (a resume must read the same numbers)."""
    crc = zlib.crc32(np.ascontiguousarray(features.x).view(np.uint8).ravel())
    crc = zlib.crc32(np.ascontiguousarray(features.y).view(np.uint8).ravel(), crc)
    return {"file": str(features.path) if features.path else None, "shape": list(features.x.shape), "crc32": crc}


class RunState:
    """The resume state of one run folder."""

    def __init__(self, model_dir: Path, settings: dict[str, Any], data: dict[str, Any],
                 completed: list[int] | None = None, progress: FoldProgress | None = None) -> None:
        self.model_dir = Path(model_dir)
        self.settings = settings
        self.data = data
        self.completed = list(completed or [])
        self.progress = progress

    @property
    def folder(self) -> Path:
        return self.model_dir / STATE_DIR

    @property
    def run(self) -> str:
        return self.model_dir.name

    def save(self) -> None:
        """Write ``state.npz`` atomically (a few weight-sized arrays: milliseconds)."""
        p = self.progress
        meta: dict[str, Any] = {"format_version": FORMAT_VERSION, "settings": self.settings, "data": self.data,
                                "completed": self.completed, "progress": None}
        arrays: dict[str, np.ndarray] = {}
        if p is not None:
            meta["progress"] = {"fold": p.fold, "epoch": p.epoch, "best_epoch": p.best_epoch,
                                "best_loss": None if math.isinf(p.best_loss) else p.best_loss, "history": p.history}
            for kind in ("weights", "optimizer", "best_weights"):
                values = getattr(p, kind)
                meta["progress"][f"n_{kind}"] = None if values is None else len(values)
                for i, value in enumerate(values or []):
                    arrays[f"{kind}_{i}"] = np.asarray(value)
        arrays["meta"] = np.asarray(json.dumps(meta))
        if not (self.folder / SETTINGS_FILE).is_file():  # once: what a damaged state.npz is rebuilt from
            with atomic_path(self.folder / SETTINGS_FILE) as tmp:
                tmp.write_text(json.dumps({"format_version": FORMAT_VERSION, "settings": self.settings,
                                           "data": self.data}, indent=1))
        with atomic_path(self.folder / STATE_FILE) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

    @classmethod
    def load(cls, model_dir: Path) -> RunState:
        path = Path(model_dir) / STATE_DIR / STATE_FILE
        try:
            with np.load(path, allow_pickle=False) as npz:
                meta = json.loads(str(npz["meta"]))
                arrays = {k: npz[k] for k in npz.files if k != "meta"}
            version = meta.get("format_version")
        except Exception as exc:  # noqa: BLE001 - whatever a damaged file raises (zip, json, numpy, OS errors)
            raise damaged_state(Path(model_dir), path, exc) from None
        if version != FORMAT_VERSION:
            raise UserError(f"{path}: resume state format {meta.get('format_version')} is not {FORMAT_VERSION}; "
                            "this version of timnet cannot continue that run")
        try:
            progress = None
            if meta["progress"] is not None:
                m = meta["progress"]
                lists = {kind: None if m[f"n_{kind}"] is None else [arrays[f"{kind}_{i}"]
                                                                   for i in range(m[f"n_{kind}"])]
                         for kind in ("weights", "optimizer", "best_weights")}
                progress = FoldProgress(m["fold"], m["epoch"], math.inf if m["best_loss"] is None else m["best_loss"],
                                        m["best_epoch"], m["history"], **lists)
            return cls(Path(model_dir), meta["settings"], meta["data"], list(meta["completed"]), progress)
        except Exception as exc:  # noqa: BLE001 - readable but not what save() wrote
            raise damaged_state(Path(model_dir), path, exc) from None

    @classmethod
    def rebuild(cls, model_dir: Path) -> RunState:
        """The state of a run whose ``state.npz`` is damaged, from its ``settings.json`` and
        its intact completed folds (their record and weights file readable); the fold in
        progress starts again. Written at once, so the run resumes normally."""
        model_dir = Path(model_dir)
        recorded = read_settings(model_dir)
        if recorded is None:
            raise UserError(f"--from_completed_folds: {model_dir / STATE_DIR / SETTINGS_FILE} is missing or damaged "
                            "too, so the run's settings are lost; start a new run with the flags it was started with")
        state = cls(model_dir, recorded["settings"], recorded["data"], intact_folds(model_dir))
        state.save()
        print(f"Rebuilt the resume state of {model_dir} from its settings and its intact completed folds "
              f"({', '.join(map(str, state.completed)) or 'none'}); the fold in progress starts again")
        return state

    def drop_damaged_folds(self) -> None:
        """Forget the completed folds whose record or weights file is damaged (they are
        trained again); the fold in progress is kept."""
        intact = set(intact_folds(self.model_dir))
        dropped = [f for f in self.completed if f not in intact]
        if dropped:
            self.completed = [f for f in self.completed if f in intact]
            self.save()
            print(f"Completed fold(s) {', '.join(map(str, dropped))} of {self.model_dir} are damaged: trained again")

    def save_fold(self, done: CompletedFold) -> None:
        """Keep a completed fold's evaluation, then record it as complete (in that order:
        a kill in between leaves the fold at its last epoch, which resumes to the same)."""
        arrays: dict[str, np.ndarray] = {}
        scalars: dict[str, Any] = {}
        for f in dataclasses.fields(FoldResult):
            value = getattr(done.result, f.name)
            if isinstance(value, np.ndarray):
                arrays[f"result_{f.name}"] = value
            else:
                scalars[f.name] = value
        info = {"result": scalars, "weights": str(done.weights), "history": done.history,
                "best_epoch": done.best_epoch}
        arrays["meta"] = np.asarray(json.dumps(info, default=_json_default))
        with atomic_path(self.folder / f"fold_{done.result.fold}.npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
        self.completed.append(done.result.fold)
        self.progress = None
        self.save()

    def load_fold(self, fold: int) -> CompletedFold:
        path = self.folder / f"fold_{fold}.npz"
        try:
            done = read_fold(path)
        except Exception as exc:  # noqa: BLE001 - whatever a damaged or missing file raises
            raise damaged_state(self.model_dir, path, exc) from None
        if not weights_intact(done.weights):
            raise damaged_state(self.model_dir, done.weights, "the completed fold's weights file is unreadable")
        return done

    def finish(self) -> None:
        """The run is complete: no resume state any more (the folder then counts as complete)."""
        shutil.rmtree(self.folder, ignore_errors=True)


def read_fold(path: Path) -> CompletedFold:
    """A completed fold's record (``fold_<i>.npz``)."""
    with np.load(path, allow_pickle=False) as npz:
        info = json.loads(str(npz["meta"]))
        values = {**info["result"], **{k.removeprefix("result_"): npz[k] for k in npz.files if k != "meta"}}
    return CompletedFold(FoldResult(**values), Path(info["weights"]), info["history"], info["best_epoch"])


def weights_intact(path: Path) -> bool:
    """Whether a weights file reads to its last byte (h5py, without loading TensorFlow)."""
    import h5py

    def read(name: str, item: Any) -> None:
        if isinstance(item, h5py.Dataset):
            item[()]

    try:
        with h5py.File(path, "r") as f:
            f.visititems(read)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not intact"
        return False


def intact_folds(model_dir: Path) -> list[int]:
    """The completed folds of a run whose record and weights file are both readable."""
    folds = []
    for path in sorted((Path(model_dir) / STATE_DIR).glob("fold_*.npz")):
        try:
            done = read_fold(path)
        except Exception:  # noqa: BLE001 - a damaged record: that fold is trained again
            continue
        if weights_intact(done.weights):
            folds.append(done.result.fold)
    return sorted(folds)


def read_settings(model_dir: Path) -> dict[str, Any] | None:
    """``settings.json``: the run's settings and data fingerprint (None: missing or damaged)."""
    try:
        recorded = json.loads((Path(model_dir) / STATE_DIR / SETTINGS_FILE).read_text())
        config_from_settings(recorded["settings"])
        recorded["data"]["shape"]
        return recorded
    except Exception:  # noqa: BLE001 - damaged in any way: unusable
        return None


def restart_command(settings: dict[str, Any], data: dict[str, Any]) -> str:
    """``timnet train ...`` that starts a run again with ``settings``: the flags that differ
    from what the recipe and data give anyway (all of them, if that would not reproduce it)."""
    from timnet.config import FLAGS, make_config

    stored = config_from_settings(settings)
    data_arg = data.get("file") or stored.data
    base = {"recipe": stored.recipe, "data": data_arg}

    def flags(only_different: bool) -> dict[str, Any]:
        default = make_config(base)
        given = dict(base)
        for flag in FLAGS:
            if flag.name in ("resume", "from_completed_folds") or flag.name in given:
                continue
            value = _field_value(stored, flag.field)
            if value is None or (only_different and _same(value, _field_value(default, flag.field))):
                continue
            given[flag.name] = value
        return given

    given = flags(True)
    try:
        same = make_config(given).replace(data=stored.data) == stored.replace(resume=None, from_completed_folds=False)
    except UserError:
        same = False
    if not same:
        given = flags(False)
    parts = ["timnet train"]
    for name, value in given.items():
        if isinstance(value, bool):
            if value:
                parts.append(f"--{name}")
        else:
            parts.append(f"--{name} {value}")
    return " ".join(parts)


class DamagedStateError(UserError):
    """The resume state of a run cannot be read (the message gives the choices)."""


def damaged_state(run: Path, path: Path, why: Any) -> UserError:
    """One error for a damaged resume state: the run, the file, and the choices."""
    reason = str(why).splitlines()[0] if str(why) else type(why).__name__
    head = f"run {run.name}: {path} is damaged ({reason}); "
    recorded = read_settings(run)
    if recorded is None:
        return DamagedStateError(head + f"its settings ({run / STATE_DIR / SETTINGS_FILE}) are lost too, so it cannot be "
                         "continued: start a new run with the flags it was started with")
    intact = intact_folds(run)
    restart = f"start it again with the same settings: {restart_command(recorded['settings'], recorded['data'])}"
    if not intact:
        return DamagedStateError(head + "no completed fold is intact; " + restart)
    return DamagedStateError(head + f"either continue from its intact completed folds ({', '.join(map(str, intact))}; the "
                     f"others are trained again): {resume_command(run)} --from_completed_folds, or " + restart)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def is_incomplete(run: Path) -> bool:
    return (run / STATE_DIR / STATE_FILE).is_file()


def saved_summary(run: Path) -> str:
    """What an interrupted run kept, and how to continue it (for the one line of a second Ctrl-C)."""
    try:
        state = RunState.load(run)
        parts = [f"fold(s) {', '.join(map(str, state.completed))} complete"] if state.completed else []
        if state.progress is not None and state.progress.epoch:
            parts.append(f"fold {state.progress.fold} saved after epoch {state.progress.epoch}")
        kept = "; ".join(parts) or "no epoch complete"
    except UserError:
        kept = "the resume state is unreadable"
    return f"the run {run} was saved ({kept}); continue it with: {resume_command(run)}"


def resume_command(run: Path) -> str:
    return f"timnet train --resume {run}"


def recorded_data_file(config: TrainingConfig, state: RunState | None = None) -> str:
    """The feature file a resumed run reads: the one it started with (an absolute path,
    so a resume from another folder finds it), else ``--data`` as recorded."""
    state = state or RunState.load(Path(str(config.resume)))
    recorded = state.data.get("file")
    return recorded if recorded and Path(recorded).is_file() else config.data


def config_from_settings(settings: dict[str, Any]) -> TrainingConfig:
    """The configuration a run recorded (``TrainingConfig.as_dict``) back as a configuration."""
    names = {f.name for f in dataclasses.fields(TrainingConfig)}
    values = {k: v for k, v in settings.items() if k in names}
    values["architecture"] = ArchitectureConfig.from_dict(values.get("architecture") or {})
    return TrainingConfig(**values)


def find_run(spec: str, model_path: Path) -> Path:
    """``--resume``'s run folder: a path, a folder name under ``model_path``, or ``last``
    (the newest incomplete run there)."""
    if spec == "last":
        runs = [p for p in model_path.iterdir() if p.is_dir() and is_incomplete(p)] if model_path.is_dir() else []
        if not runs:
            raise UserError(f"--resume last: no interrupted run under {model_path} (give --model_path, or a run "
                            "folder)")
        return max(runs, key=lambda p: (p / STATE_DIR / STATE_FILE).stat().st_mtime)
    given = Path(spec).expanduser()
    candidates = [given.absolute()] if given.is_absolute() else [given.absolute(), model_path / given]
    run = next((p for p in candidates if p.is_dir()), None)
    if run is None:
        raise UserError(f"--resume {spec}: no such run folder (looked in {' and '.join(map(str, candidates))})")
    if not is_incomplete(run):
        what = "a complete run: nothing to resume" if any(run.glob("[!.]*.hdf5")) else "not a run folder"
        raise UserError(f"--resume {spec}: {run} is {what} (no {STATE_DIR}/{STATE_FILE})")
    return run


def _field_value(config: TrainingConfig, field_name: str) -> Any:
    if field_name.startswith("architecture."):
        return getattr(config.architecture, field_name.split(".", 1)[1])
    return getattr(config, field_name)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, Path) or isinstance(b, Path):
        return Path(a) == Path(b)
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and float(a) == float(b)
    return a == b


def resume_config(spec: str, model_path: Path, given: dict[str, Any]) -> TrainingConfig:
    """The configuration that continues the run ``spec``: the run's own settings, with
    only where it runs (``--gpu``) taken from ``given``; a flag in ``given`` that
    contradicts the run's setting is an error naming both values."""
    run = find_run(spec, model_path)
    try:
        state = RunState.load(run)
    except DamagedStateError:
        if not given.get("from_completed_folds"):
            raise
        state = RunState.rebuild(run)
    else:
        if given.get("from_completed_folds"):
            state.drop_damaged_folds()
    stored = config_from_settings(state.settings)
    for name, value in given.items():
        if name in FREE_SETTINGS or name not in FLAG_BY_NAME:
            continue
        recorded = _field_value(stored, FLAG_BY_NAME[name].field)
        if not _same(value, recorded):
            shown = "given" if isinstance(value, bool) else value
            was = "not given" if recorded is False else recorded
            raise UserError(f"--{name} {shown} contradicts the run's --{name} {was} (recorded in {run / STATE_DIR}): "
                            f"drop --{name} to continue the run as it started, or start a new run")
    return stored.replace(resume=str(run), model_path=run.parent, gpu=given.get("gpu", stored.gpu))


def check_same_settings(config: TrainingConfig, state: RunState) -> None:
    """A configuration that continues ``state``'s run must compute what the run computed."""
    stored = config_from_settings(state.settings)
    for f in dataclasses.fields(TrainingConfig):
        if f.name in FREE_SETTINGS:
            continue
        mine, recorded = getattr(config, f.name), getattr(stored, f.name)
        if f.name == "architecture":
            for a in dataclasses.fields(ArchitectureConfig):
                if getattr(mine, a.name) != getattr(recorded, a.name):
                    raise UserError(f"{flag_of(a.name)} {getattr(mine, a.name)} contradicts the run's "
                                    f"{flag_of(a.name)} {getattr(recorded, a.name)} (recorded in {state.folder})")
        elif not _same(mine, recorded):
            raise UserError(f"{flag_of(f.name)} {mine} contradicts the run's {flag_of(f.name)} {recorded} "
                            f"(recorded in {state.folder})")


def check_same_data(features: FeatureSet, state: RunState) -> None:
    now = data_fingerprint(features)
    if now["shape"] != state.data["shape"] or now["crc32"] != state.data["crc32"]:
        raise UserError(f"{features.path}: not the feature file this run trained on ({state.data['file']}, "
                        f"{'x'.join(map(str, state.data['shape']))}); resume with the same --data file")


def clean_leftovers(*folders: Path) -> None:
    """Remove what killed writers left in a run's folders (hidden temporaries)."""
    for folder in folders:
        for path in remove_temporaries(folder):
            print(f"Removed a temporary file left by an interrupted write: {path}")

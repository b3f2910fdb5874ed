"""What produced a run's numbers, recorded in ``metrics.json`` under ``provenance``:
the command line, the library versions, the project's version and git commit, the
devices, the feature file (path, size and a content hash) and the wall time per fold.

Everything here is best effort and cheap: a missing piece (no git, not a checkout, a
library that is not installed) is left out, never an error that would lose a finished run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

if TYPE_CHECKING:
    from timnet.evaluation.reports import EvaluationReport

HASH_CHUNK = 8 << 20  # 8 MiB reads: a 1 GB feature file hashes in about a second, in constant memory
_PROGRESS_BYTES = 512 << 20  # a progress bar only for files that take more than a moment
# module name -> distribution names to ask when the module is not imported yet
_LIBRARIES: dict[str, tuple[str, ...]] = {
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tf-nightly"),
    "keras": ("keras",),
    "numpy": ("numpy",),
    "librosa": ("librosa",),
}


def file_sha256(path: str | Path, progress: bool | None = None) -> str:
    """The SHA-256 of a file's content, read in chunks (feature files may be gigabytes);
    ``progress`` (default: for files over 512 MiB) shows a bar on stderr."""
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256()
    show = size > _PROGRESS_BYTES if progress is None else progress
    with open(path, "rb") as f, tqdm(total=size, unit="B", unit_scale=True, desc=f"hashing {path.name}",
                                     disable=not show) as bar:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def feature_file_record(path: str | Path) -> dict[str, Any]:
    """Path, size, modification time and SHA-256 of the feature file a run read."""
    path = Path(path).resolve()
    stat = path.stat()
    return {
        "path": str(path),
        "bytes": stat.st_size,
        "modified": dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC).isoformat(timespec="seconds"),
        "sha256": file_sha256(path),
    }


def library_versions() -> dict[str, str]:
    """Python's and the main libraries' versions (those installed)."""
    out = {"python": platform.python_version()}
    for module, dists in _LIBRARIES.items():
        version = getattr(sys.modules.get(module), "__version__", None)
        for dist in dists if version is None else ():
            try:
                version = importlib.metadata.version(dist)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
        if version is not None:
            out[module] = str(version)
    return out


def _checkout_root(start: Path) -> Path | None:
    """The folder holding ``.git`` (a folder, or a file in a worktree) above ``start``."""
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return None


def git_state(start: str | Path | None = None) -> dict[str, Any]:
    """``{"commit": ..., "dirty": ...}`` of the checkout the code runs from; empty when
    the package is installed outside a checkout, git is missing or fails."""
    if start is None:
        start = Path(__file__).resolve().parent.parent  # the package's folder
    root = _checkout_root(Path(start))
    git = shutil.which("git")
    if root is None or git is None:
        return {}
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # read only: never take the index lock

    def ask(*args: str) -> str | None:
        try:
            done = subprocess.run([git, "-C", str(root), *args], capture_output=True, text=True, timeout=10,
                                  env=env, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = ask("rev-parse", "HEAD")
    if not commit:
        return {}
    out: dict[str, Any] = {"commit": commit}
    status = ask("status", "--porcelain", "--untracked-files=no")
    if status is not None:
        out["dirty"] = bool(status)  # uncommitted changes to tracked files
    return out


def devices(strategy: Any = None) -> dict[str, Any]:
    """The machine and the TensorFlow devices the run used (when TensorFlow is loaded)."""
    out: dict[str, Any] = {"host": platform.node(), "platform": platform.platform(),
                           "cpu": _cpu_name(), "cpu_count": os.cpu_count()}
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return out
    out["tensorflow_devices"] = [d.name for d in tf.config.list_logical_devices()]
    gpus = []
    for gpu in tf.config.get_visible_devices("GPU"):
        try:
            details = tf.config.experimental.get_device_details(gpu)
        except (ValueError, RuntimeError):
            details = {}
        gpus.append({"name": gpu.name, **{k: (v if isinstance(v, (int, str)) else str(v))
                                          for k, v in details.items()}})
    out["gpus"] = gpus
    if strategy is not None:
        out["strategy"] = type(strategy).__name__
        out["replicas"] = int(getattr(strategy, "num_replicas_in_sync", 1))
    return out


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fold_times(report: EvaluationReport) -> list[dict[str, Any]]:
    """Wall seconds of every evaluated fold (training + evaluation in a training run)."""
    return [{"fold": f.fold, "name": f.name, "seconds": None if f.seconds is None else round(f.seconds, 3)}
            for f in report.folds]


def collect(report: EvaluationReport, feature_file: dict[str, Any] | None, argv: Sequence[str] | None = None,
            strategy: Any = None, started: dt.datetime | None = None) -> dict[str, Any]:
    """The ``provenance`` entry of ``metrics.json`` (the resolved configuration itself
    is the report's ``settings``). ``feature_file``: its :func:`feature_file_record`,
    taken when the run read the file (a file replaced during the run is not mistaken
    for the one it read); ``argv``: default ``sys.argv``."""
    from timnet.version import __version__

    out: dict[str, Any] = {
        "command_line": [sys.executable, *(sys.argv if argv is None else argv)],
        "working_directory": os.getcwd(),
        "versions": library_versions(),
        "timnet_version": __version__,
    }
    git = git_state()
    if git:
        out["git"] = git
    out["devices"] = devices(strategy)
    if feature_file is not None:
        out["feature_file"] = feature_file
    out["fold_seconds"] = fold_times(report)
    finished = dt.datetime.now(dt.UTC)
    if started is not None:
        out["started"] = started.isoformat(timespec="seconds")
        out["wall_seconds"] = round((finished - started).total_seconds(), 3)
    out["finished"] = finished.isoformat(timespec="seconds")
    return out

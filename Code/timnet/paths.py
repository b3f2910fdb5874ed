"""The project root and its folders, so every command works from any working directory."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path


def _project_root() -> Path:
    """The repository when the package runs from its checkout (``Code/timnet``), else
    ``$TIMNET_HOME`` or the current folder (an installed package)."""
    env = os.environ.get("TIMNET_HOME")
    if env:
        return Path(env).expanduser().resolve()
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "Code" / "timnet").is_dir() and (checkout / "MFCC").is_dir():
        return checkout
    return Path.cwd().resolve()


REPO_ROOT: Path = _project_root()
CODE_DIR: Path = REPO_ROOT / "Code"
MFCC_DIR: Path = REPO_ROOT / "MFCC"
DATA_DIR: Path = REPO_ROOT / "data"
FIG_DIR: Path = REPO_ROOT / "Fig"
TEST_MODELS_DIR: Path = REPO_ROOT / "Test_Models"
RESULTS_DIR: Path = REPO_ROOT / "Results"
LOG_DIR: Path = REPO_ROOT / "log"
ESD_DIR: Path = DATA_DIR / "Emotional_Speech_Dataset"


def resolve(path: str | Path, base: Path | None = None) -> Path:
    """A project path: absolute paths are kept; relative ones are taken from ``base``
    (default: the project root). Paths a user types are made absolute from the
    current folder first (``timnet.cli.common.user_path``)."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    return ((base or REPO_ROOT) / p).absolute()


def check_writable(folder: str | Path, flag: str, given: str | Path | None = None) -> Path:
    """Fail before any work when ``folder`` cannot be created or written: a probe file is
    created and removed in it (or in its nearest existing parent; nothing is left behind).
    ``given``: what the user typed when it is a file in ``folder`` (named in the message)."""
    from timnet.errors import UserError

    folder = Path(folder)
    shown = given if given is not None else folder
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{flag} {shown}: {existing} is a file, not a folder; choose another folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".timnet_write_probe_", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"{flag} {shown}: cannot write in {existing} ({exc.strerror}); choose a folder you can "
                        "write to") from None
    return folder


def create_exclusive(folders: Sequence[Path]) -> list[Path]:
    """Create ``folders`` (a run's weights, results and logs) exclusively: when any of them
    exists, all get the next suffix ``_2``, ``_3``, ... so a run never writes into a folder
    another run created (mkdir without exist_ok is atomic, even for runs in the same second)."""
    unique = list(dict.fromkeys(Path(f).absolute() for f in folders))  # --model_path = --result_path: one folder
    for n in itertools.count(1):
        suffix = "" if n == 1 else f"_{n}"
        made: list[Path] = []
        try:
            for folder in unique:
                target = folder.with_name(folder.name + suffix)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.mkdir()
                made.append(target)
        except FileExistsError:
            remove_empty(made)
            continue
        created = dict(zip(unique, made))
        return [created[Path(f).absolute()] for f in folders]
    raise AssertionError("unreachable")


def remove_empty(folders: Sequence[Path]) -> None:
    """Remove the folders of ``folders`` that are still empty (a run that saved nothing)."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            pass


@contextlib.contextmanager
def removed_if_empty(folders: Sequence[Path]) -> Iterator[None]:
    """Remove ``folders`` that are still empty when the block fails (Ctrl-C too)."""
    try:
        yield
    except BaseException:
        remove_empty(folders)
        raise


def timestamp() -> str:
    """The time part of run and result folder names (local time, to the second)."""
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S")

"""The project root and its folders, so every command works from any working directory."""

from __future__ import annotations

import os
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

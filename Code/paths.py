"""Repository-rooted paths, so every command works from any working directory."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT: Path = Path(__file__).resolve().parent.parent
CODE_DIR: Path = REPO_ROOT / "Code"
MFCC_DIR: Path = REPO_ROOT / "MFCC"
DATA_DIR: Path = REPO_ROOT / "data"
FIG_DIR: Path = REPO_ROOT / "Fig"
TEST_MODELS_DIR: Path = REPO_ROOT / "Test_Models"
RESULTS_DIR: Path = REPO_ROOT / "Results"
LOG_DIR: Path = REPO_ROOT / "log"
ESD_DIR: Path = DATA_DIR / "Emotional_Speech_Dataset"


def resolve(path: str | Path, base: Path = REPO_ROOT) -> Path:
    """Resolve a user path: absolute paths and paths that exist from the current
    directory are kept; anything else is taken relative to ``base``."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p.resolve()
    return (base / p).resolve()

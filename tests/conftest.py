"""Test setup: the installed ``timnet`` package (``make setup``), CPU only, quiet TensorFlow."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO_ROOT = Path(__file__).resolve().parent.parent

import pytest  # noqa: E402


def emodb_corpus_dir() -> Path | None:
    """The real EMO-DB copy for tests: $TIMNET_EMODB_DIR, else ../shared/corpora/emodb-2s."""
    env = os.environ.get("TIMNET_EMODB_DIR")
    candidate = Path(env) if env else REPO_ROOT.parent / "shared" / "corpora" / "emodb-2s"
    return candidate if (candidate / "wav").is_dir() else None


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def emodb_dir() -> Path:
    path = emodb_corpus_dir()
    if path is None:
        pytest.skip("EMO-DB copy not found (set TIMNET_EMODB_DIR or place ../shared/corpora/emodb-2s)")
    return path


def ravdess_corpus_dir() -> Path | None:
    """The real RAVDESS speech copy (FLAC) for tests: $TIMNET_RAVDESS_DIR, else
    ../shared/corpora/ravdess-speech."""
    env = os.environ.get("TIMNET_RAVDESS_DIR")
    candidate = Path(env) if env else REPO_ROOT.parent / "shared" / "corpora" / "ravdess-speech"
    return candidate if (candidate / "flac").is_dir() else None


@pytest.fixture(scope="session")
def ravdess_dir() -> Path:
    path = ravdess_corpus_dir()
    if path is None:
        pytest.skip("RAVDESS copy not found (set TIMNET_RAVDESS_DIR or place ../shared/corpora/ravdess-speech)")
    return path

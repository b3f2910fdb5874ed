"""The original code's hand-sorted layout: ``<root>/<class>/*.wav``.

Class names come from the caller (their order is the column order of y) or, when
not given, from the sorted folder names. The layout says nothing about speakers.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

from timnet.features.corpus_prep.base import CorpusSpec, LayoutError, Utterance, audio_files, finish

LAYOUT = "<root>/<class>/<file>.wav, one folder per class"


def class_folders(root: Path) -> tuple[str, ...]:
    """Sorted names of the sub-folders of ``root`` that hold audio files."""
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root}: input folder not found (give the corpus folder with --input)")
    names = sorted(d.name for d in root.iterdir() if d.is_dir() and audio_files(d))
    if not names:
        raise LayoutError(f"{root}: no class folder with audio files found (expected {LAYOUT})")
    return tuple(names)


def list_utterances(root: Path, classes: Sequence[str] | None = None) -> list[Utterance]:
    """Every audio file in a class folder (and its sub-folders), labelled by the folder."""
    root = Path(root)
    classes = tuple(classes) if classes else class_folders(root)
    found = []
    for label in classes:
        folder = root / label
        if folder.is_dir():
            found.extend(Utterance(path, label) for path in audio_files(folder))
    return finish(found, root, LAYOUT + f" with class folders {', '.join(classes)}")


def spec(name: str, classes: Sequence[str], mean_signal_length: int) -> CorpusSpec:
    """A parser for a hand-sorted corpus with these class folders, writing ``<name>``."""
    classes = tuple(classes)
    return CorpusSpec(name, classes, mean_signal_length, partial(list_utterances, classes=classes), LAYOUT)

"""What every corpus parser returns, and the helpers they share.

A parser reads a corpus in the layout its authors publish and returns one
:class:`Utterance` per usable audio file, sorted by path, so that nobody has to sort
files into one folder per emotion by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from timnet.errors import UserError
from timnet.features.audio_formats import find_audio_files, suffix_list


class LayoutError(UserError):
    """The folder does not hold the corpus in the expected layout."""


@dataclass(frozen=True, order=True)
class Utterance:
    """One labelled audio file. ``speaker`` (and ``session``, the recording session of
    corpora that have them, e.g. IEMOCAP) is None when the layout does not tell it."""

    path: Path
    label: str
    speaker: str | None = None
    session: str | None = None


@dataclass(frozen=True)
class CorpusSpec:
    """A corpus parser and the facts needed to turn its output into a feature file."""

    name: str  # output name: MFCC/<name>.npy
    classes: tuple[str, ...]  # column order of y
    mean_signal_length: int
    list_utterances: Callable[[Path], list[Utterance]]
    layout: str  # one line for error messages and --help


def audio_files(root: Path) -> list[Path]:
    """Every audio file below ``root`` (any format the predictor reads: .wav, .flac,
    .ogg, ...), sorted; macOS resource forks (``._x.wav``) skipped."""
    if not root.is_dir():
        raise LayoutError(f"{root}: input folder not found (give the corpus folder with --input)")
    return find_audio_files(root)


def finish(utterances: Iterable[Utterance], root: Path, layout: str) -> list[Utterance]:
    """Sort by path; an empty result is a layout error that says what was expected."""
    result = sorted(utterances)
    if not result:
        raise LayoutError(f"{root}: no audio file matches the expected layout ({layout}; any of the audio "
                          f"formats {suffix_list()} instead of .wav)")
    return result


def parsed_utterances(root: Path, parse: Callable[[Path], tuple[str, str] | None], layout: str) -> list[Utterance]:
    """Every audio file below ``root`` that ``parse`` labels: ``parse(path)`` returns
    ``(label, speaker)``, or None for a file that is not part of the corpus."""
    found = []
    for path in audio_files(root):
        parsed = parse(path)
        if parsed is not None:
            found.append(Utterance(path, parsed[0], parsed[1]))
    return finish(found, root, layout)

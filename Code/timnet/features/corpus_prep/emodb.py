"""EMO-DB (Berlin Database of Emotional Speech): the emotion is a letter in the file name.

``wav/<speaker:2><text:3><emotion letter><version>.wav``, e.g. ``03a01Wa.wav``; the
letters are the German initials (W Wut, L Langeweile, E Ekel, A Angst, F Freude,
N Neutral, T Trauer). The speaker is the first two characters.
"""

from __future__ import annotations

import re
from pathlib import Path

from timnet.features.audio_formats import audio_stem
from timnet.features.corpora import CLASS_LABELS, MEAN_SIGNAL_LENGTH
from timnet.features.corpus_prep.base import CorpusSpec, Utterance, parsed_utterances

NAME = "EMODB"
LAYOUT = "wav/<speaker:2><text:3><emotion letter W L E A F N T><version>.wav, e.g. wav/03a01Wa.wav"
LETTERS = {"W": "angry", "L": "boredom", "E": "disgust", "A": "fear", "F": "happy", "N": "neutral", "T": "sad"}
_NAME_RE = re.compile(r"^(\d{2})([a-z]\d{2})([WLEAFNT])([a-z])$", re.IGNORECASE)


def parse_name(file_name: str) -> tuple[str, str] | None:
    """(label, speaker) of an EMO-DB file name (any audio format), or None when it is not one."""
    stem = audio_stem(file_name)
    match = None if stem is None else _NAME_RE.match(stem)
    if match is None:
        return None
    return LETTERS[match.group(3).upper()], match.group(1)


def list_utterances(root: Path) -> list[Utterance]:
    """Every EMO-DB utterance below ``root`` (the corpus folder or its ``wav/``)."""
    return parsed_utterances(root, lambda path: parse_name(path.name), LAYOUT)


SPEC = CorpusSpec(NAME, CLASS_LABELS[NAME], MEAN_SIGNAL_LENGTH[NAME], list_utterances, LAYOUT)

"""SAVEE: speaker folders, the emotion is the file name's letter prefix.

``AudioData/<DC|JE|JK|KL>/<prefix><NN>.wav`` with prefixes a (anger), d (disgust),
f (fear), h (happiness), n (neutral), sa (sadness), su (surprise). The flat variant
``<speaker>_<prefix><NN>.wav`` (as some mirrors ship it) is read too. The speaker is
the folder name (or the file name's prefix in the flat variant).
"""

from __future__ import annotations

import re
from pathlib import Path

from timnet.features.audio_formats import audio_stem
from timnet.features.corpora import CLASS_LABELS, MEAN_SIGNAL_LENGTH
from timnet.features.corpus_prep.base import CorpusSpec, Utterance, parsed_utterances

NAME = "SAVEE"
LAYOUT = "<DC|JE|JK|KL>/<a|d|f|h|n|sa|su><NN>.wav, e.g. AudioData/DC/sa01.wav"
SPEAKERS = ("DC", "JE", "JK", "KL")
PREFIXES = {"a": "angry", "d": "disgust", "f": "fear", "h": "happy", "n": "neutral", "sa": "sad", "su": "surprise"}
_NAME_RE = re.compile(r"^(?:(DC|JE|JK|KL)_)?(a|d|f|h|n|sa|su)(\d+)$")


def parse(path: Path) -> tuple[str, str] | None:
    """(label, speaker) of a SAVEE file, or None when it is not one."""
    stem = audio_stem(path)
    match = None if stem is None else _NAME_RE.match(stem)
    if match is None:
        return None
    speaker = match.group(1) or path.parent.name
    if speaker not in SPEAKERS:
        return None
    return PREFIXES[match.group(2)], speaker


def list_utterances(root: Path) -> list[Utterance]:
    """Every SAVEE utterance below ``root`` (the corpus folder or its ``AudioData/``)."""
    return parsed_utterances(root, parse, LAYOUT)


SPEC = CorpusSpec(NAME, CLASS_LABELS[NAME], MEAN_SIGNAL_LENGTH[NAME], list_utterances, LAYOUT)

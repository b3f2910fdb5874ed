"""EMOVO (Italian): speaker folders, the emotion is the file name's Italian prefix.

``<f1|f2|f3|m1|m2|m3>/<emotion>-<speaker>-<sentence>.wav``, e.g. ``f1/dis-f1-b1.wav``;
prefixes dis (disgusto), gio (gioia), neu (neutro), pau (paura), rab (rabbia),
sor (sorpresa), tri (tristezza). The speaker is the folder name.
"""

from __future__ import annotations

import re
from pathlib import Path

from timnet.features.audio_formats import audio_stem
from timnet.features.corpora import CLASS_LABELS, MEAN_SIGNAL_LENGTH
from timnet.features.corpus_prep.base import CorpusSpec, Utterance, parsed_utterances

NAME = "EMOVO"
LAYOUT = "<f1..m3>/<dis|gio|neu|pau|rab|sor|tri>-<speaker>-<sentence>.wav, e.g. f1/dis-f1-b1.wav"
PREFIXES = {
    "dis": "disgust", "gio": "happy", "neu": "neutral", "pau": "fear",
    "rab": "angry", "sor": "surprise", "tri": "sad",
}
_NAME_RE = re.compile(r"^(dis|gio|neu|pau|rab|sor|tri)-([fm]\d)-[^.]+$", re.IGNORECASE)
_SPEAKER_RE = re.compile(r"^[fm]\d$", re.IGNORECASE)


def parse(path: Path) -> tuple[str, str] | None:
    """(label, speaker) of an EMOVO file, or None when it is not one."""
    stem = audio_stem(path)
    match = None if stem is None else _NAME_RE.match(stem)
    if match is None:
        return None
    folder = path.parent.name
    speaker = folder if _SPEAKER_RE.match(folder) else match.group(2)
    return PREFIXES[match.group(1).lower()], speaker.lower()


def list_utterances(root: Path) -> list[Utterance]:
    """Every EMOVO utterance below ``root``."""
    return parsed_utterances(root, parse, LAYOUT)


SPEC = CorpusSpec(NAME, CLASS_LABELS[NAME], MEAN_SIGNAL_LENGTH[NAME], list_utterances, LAYOUT)

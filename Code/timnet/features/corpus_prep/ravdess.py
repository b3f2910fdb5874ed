"""RAVDESS: the emotion is the third field of the file name; speech files only.

``Actor_NN/MM-VV-EE-II-SS-RR-AA.wav`` (modality, vocal channel, emotion, intensity,
statement, repetition, actor). Audio-only speech is modality 03, channel 01; song
(channel 02) is left out, as in the paper. Emotion codes 01..08: neutral, calm,
happy, sad, angry, fearful, disgust, surprised. The speaker is the actor.
"""

from __future__ import annotations

import re
from pathlib import Path

from timnet.features.audio_formats import audio_stem
from timnet.features.corpora import CLASS_LABELS, MEAN_SIGNAL_LENGTH
from timnet.features.corpus_prep.base import CorpusSpec, Utterance, parsed_utterances

NAME = "RAVDE"
LAYOUT = "Actor_NN/03-01-EE-II-SS-RR-AA.wav or .flac (speech, emotion code EE 01..08)"
EMOTIONS = {
    "01": "neutral", "02": "calm", "03": "happy", "04": "sad",
    "05": "angry", "06": "fear", "07": "disgust", "08": "surprise",
}
_NAME_RE = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")


def parse_name(file_name: str) -> tuple[str, str] | None:
    """(label, speaker) of a RAVDESS audio-only speech file name (.wav, .flac, ...), else None."""
    stem = audio_stem(file_name)
    match = None if stem is None else _NAME_RE.match(stem)
    if match is None:
        return None
    modality, channel, emotion, *_, actor = match.groups()
    if modality != "03" or channel != "01" or emotion not in EMOTIONS:
        return None
    return EMOTIONS[emotion], f"Actor_{actor}"


def list_utterances(root: Path) -> list[Utterance]:
    """Every RAVDESS speech utterance below ``root``."""
    return parsed_utterances(root, lambda path: parse_name(path.name), LAYOUT)


SPEC = CorpusSpec(NAME, CLASS_LABELS[NAME], MEAN_SIGNAL_LENGTH[NAME], list_utterances, LAYOUT)

"""CASIA (Mandarin): ``<speaker>/<emotion>/<NNN>.wav``, emotion folders named in English.

The public release has four speakers (liuchanhg, wangzhe, zhaoquanyin, ZhaoZuoxiang)
and the folders angry, fear, happy, neutral, sad, surprise. The speaker is the folder
above the emotion folder.
"""

from __future__ import annotations

from pathlib import Path

from timnet.features.corpora import CLASS_LABELS, MEAN_SIGNAL_LENGTH
from timnet.features.corpus_prep.base import CorpusSpec, Utterance, audio_files, finish

NAME = "CASIA"
LAYOUT = "<speaker>/<angry|fear|happy|neutral|sad|surprise>/<NNN>.wav, e.g. wangzhe/angry/201.wav"
CLASSES = CLASS_LABELS[NAME]


def list_utterances(root: Path) -> list[Utterance]:
    """Every CASIA utterance below ``root``: files whose folder is an emotion name."""
    root = Path(root)
    found = []
    for path in audio_files(root):
        parts = path.relative_to(root).parts  # (..., speaker, emotion, file)
        if len(parts) >= 3 and parts[-2].lower() in CLASSES:
            found.append(Utterance(path, parts[-2].lower(), parts[-3]))
    return finish(found, root, LAYOUT)


SPEC = CorpusSpec(NAME, CLASSES, MEAN_SIGNAL_LENGTH[NAME], list_utterances, LAYOUT)

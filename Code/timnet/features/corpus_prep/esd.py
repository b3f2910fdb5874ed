"""ESD (Emotional Speech Dataset): ``<speaker>/<Emotion>/<split>/<file>.wav``.

Speakers 0001-0010 speak Mandarin, 0011-0020 English; Emotion is one of Angry, Happy,
Neutral, Sad, Surprise; split is train, test or evaluation, and each split becomes
its own feature file (``ESD_train``, ``ESD_test``, ``ESD_evaluation``). The speaker
is the speaker folder.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from timnet.features.corpora import CLASS_LABELS, MEAN_SIGNAL_LENGTH
from timnet.features.corpus_prep.base import CorpusSpec, LayoutError, Utterance, audio_files, finish

SPLITS = ("train", "test", "evaluation")
CLASSES = CLASS_LABELS["ESD"]
LAYOUT = "<speaker>/<Angry|Happy|Neutral|Sad|Surprise>/<train|test|evaluation>/<file>.wav"


def list_utterances(root: Path, split: str = "train") -> list[Utterance]:
    """Every utterance of one split below ``root`` (``data/Emotional_Speech_Dataset``)."""
    if split not in SPLITS:
        raise LayoutError(f"unknown ESD split '{split}' (choose from {', '.join(SPLITS)})")
    root = Path(root)
    found = []
    for path in audio_files(root):
        parts = path.relative_to(root).parts  # (..., speaker, Emotion, split, file)
        if len(parts) >= 4 and parts[-2] == split and parts[-3].lower() in CLASSES:
            found.append(Utterance(path, parts[-3].lower(), parts[-4]))
    return finish(found, root, LAYOUT.replace("<train|test|evaluation>", split))


def spec(split: str = "train", mean_signal_length: int = MEAN_SIGNAL_LENGTH["ESD"]) -> CorpusSpec:
    """The parser of one split, writing ``ESD_<split>``."""
    return CorpusSpec(f"ESD_{split}", CLASSES, mean_signal_length, partial(list_utterances, split=split), LAYOUT)


SPEC = spec("train")

"""IEMOCAP: sentence WAVs labelled from the ``EmoEvaluation`` files; four classes.

``Session<n>/sentences/wav/<dialog>/<utterance>.wav`` holds the audio and
``Session<n>/dialog/EmoEvaluation/<dialog>.txt`` one line per utterance,
``[start - end]<TAB><utterance><TAB><code><TAB>[V, A, D]``. As in the paper, only
ang, hap, exc (merged into happy), neu and sad are kept: 5 531 utterances of the full
release. The speaker is the session plus the speaker's gender, the letter of the
utterance name's last part (``Ses01F_impro01_M013`` -> ``Ses01M``).
"""

from __future__ import annotations

import re
from pathlib import Path

from timnet.features.corpora import CLASS_LABELS, MEAN_SIGNAL_LENGTH
from timnet.features.corpus_prep.base import CorpusSpec, LayoutError, Utterance, audio_files, finish

NAME = "IEMOCAP"
LAYOUT = "Session<n>/sentences/wav/<dialog>/<utterance>.wav labelled by Session<n>/dialog/EmoEvaluation/<dialog>.txt"
CODES = {"ang": "angry", "hap": "happy", "exc": "happy", "neu": "neutral", "sad": "sad"}
_LINE_RE = re.compile(r"^\[\s*[\d.]+\s*-\s*[\d.]+\s*\]\s+(\S+)\s+(\S+)")
_UTTERANCE_RE = re.compile(r"^(Ses\d{2})[FM]_.*_([FM])\d+$")


def read_evaluation(path: Path) -> dict[str, str]:
    """Utterance name -> categorical code (e.g. 'neu', 'xxx') from one EmoEvaluation file."""
    codes = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _LINE_RE.match(line)
        if match is not None:
            codes[match.group(1)] = match.group(2).lower()
    return codes


def speaker_of(utterance: str) -> str | None:
    """Session + speaker gender ('Ses01M') from an utterance name, None if malformed."""
    match = _UTTERANCE_RE.match(utterance)
    return None if match is None else match.group(1) + match.group(2)


def read_labels(root: Path) -> dict[str, str]:
    """Utterance name -> code for every EmoEvaluation file below ``root``."""
    files = sorted(
        txt for folder in root.rglob("EmoEvaluation") if folder.is_dir()
        for txt in folder.glob("*.txt") if not txt.name.startswith("._")
    )
    if not files:
        raise LayoutError(f"{root}: no EmoEvaluation/*.txt label file found (expected {LAYOUT})")
    codes: dict[str, str] = {}
    for txt in files:
        codes.update(read_evaluation(txt))
    return codes


def list_utterances(root: Path) -> list[Utterance]:
    """Every IEMOCAP sentence WAV whose label is one of the four classes."""
    root = Path(root)
    codes = read_labels(root)
    found: dict[str, Utterance] = {}
    for path in audio_files(root):
        code = codes.get(path.stem)
        if code in CODES and path.stem not in found:
            speaker = speaker_of(path.stem)
            found[path.stem] = Utterance(path, CODES[code], speaker, speaker[:5] if speaker else None)
    return finish(found.values(), root, LAYOUT)


SPEC = CorpusSpec(NAME, CLASS_LABELS[NAME], MEAN_SIGNAL_LENGTH[NAME], list_utterances, LAYOUT)

"""One parser per corpus, reading each corpus in the layout its authors publish.

``get_spec(name)`` gives the parser and the facts (class order, output name, signal
length) for a corpus name; ``CORPORA`` lists the published-layout parsers.
"""

from __future__ import annotations

from timnet.features.corpus_prep import casia, emodb, emovo, esd, generic, iemocap, ravdess, savee
from timnet.features.corpus_prep.base import CorpusSpec, LayoutError, Utterance

# Published-layout parsers by the name the CLI accepts (upper case).
CORPORA: dict[str, CorpusSpec] = {
    "CASIA": casia.SPEC,
    "EMODB": emodb.SPEC,
    "EMOVO": emovo.SPEC,
    "IEMOCAP": iemocap.SPEC,
    "RAVDESS": ravdess.SPEC,
    "SAVEE": savee.SPEC,
    "ESD": esd.SPEC,
}
ALIASES = {"RAVDE": "RAVDESS", "EMO-DB": "EMODB", "ESD_TRAIN": "ESD"}
CHOICES = (*CORPORA, "generic")


def get_spec(name: str) -> CorpusSpec:
    """The parser of a corpus by name (case-insensitive); LayoutError for an unknown one."""
    key = name.upper()
    key = ALIASES.get(key, key)
    if key not in CORPORA:
        raise LayoutError(f"unknown corpus '{name}' (choose from {', '.join(CHOICES)})")
    return CORPORA[key]


__all__ = [
    "CHOICES", "CORPORA", "CorpusSpec", "LayoutError", "Utterance", "get_spec",
    "casia", "emodb", "emovo", "esd", "generic", "iemocap", "ravdess", "savee",
]

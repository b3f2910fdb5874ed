"""Facts about the emotional-speech corpora: class order, signal length, INTERSECT map.

These are the original code's conventions (see README, "Differences"), kept in one
place so that feature extraction, mixing, training and testing agree.
"""

from __future__ import annotations

CLASS_LABELS: dict[str, tuple[str, ...]] = {
    "CASIA": ("angry", "fear", "happy", "neutral", "sad", "surprise"),
    "EMODB": ("angry", "boredom", "disgust", "fear", "happy", "neutral", "sad"),
    "EMOVO": ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"),
    "IEMOCAP": ("angry", "happy", "neutral", "sad"),
    "RAVDE": ("angry", "calm", "disgust", "fear", "happy", "neutral", "sad", "surprise"),
    "SAVEE": ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"),
    "ESD": ("angry", "happy", "neutral", "sad", "surprise"),
    "ESD_train": ("angry", "happy", "neutral", "sad", "surprise"),
    "ESD_test": ("angry", "happy", "neutral", "sad", "surprise"),
    "ESD_evaluation": ("angry", "happy", "neutral", "sad", "surprise"),
    "INTERSECT": ("angry", "happy", "neutral", "sad", "surprise"),
}

# Samples kept per utterance (after resampling to 22 050 Hz) in the paper's features.
MEAN_SIGNAL_LENGTH: dict[str, int] = {
    "CASIA": 88000,
    "EMODB": 96000,
    "EMOVO": 96000,
    "IEMOCAP": 310000,
    "RAVDE": 110000,
    "SAVEE": 130000,
    "ESD": 100000,
}
# The seed (fork) used one length for every corpus when building INTERSECT.
SEED_SIGNAL_LENGTH: int = 100000
SAMPLE_RATE: int = 22050
N_MFCC: int = 39
HOP_LENGTH: int = 512
# librosa.feature.mfcc's other defaults, which the waveform front end (network/frontend.py) reproduces.
N_FFT: int = 2048
N_MELS: int = 128
TOP_DB: float = 80.0
AMIN: float = 1e-10

# Corpus class index -> INTERSECT class index (-1: dropped).
INTERSECT_MAP: dict[str, tuple[int, ...]] = {
    "CASIA": (0, -1, 1, 2, 3, 4),
    "EMODB": (0, -1, -1, -1, 1, 2, 3),
    "SAVEE": (0, -1, -1, 1, 2, 3, 4),
    "RAVDE": (0, -1, -1, -1, 1, 2, 3, 4),
    "IEMOCAP": (0, 1, 2, 3),
    "EMOVO": (0, -1, -1, 1, 2, 3, 4),
    "ESD_train": (0, 1, 2, 3, 4),
}

# Default number of temporal-aware blocks per branch (dilations 1 .. 2**(n-1)).
DEFAULT_DILATIONS: int = 8
DILATIONS_BY_DATA: dict[str, int] = {"IEMOCAP": 10}


def corpus_key(name: str) -> str:
    """Canonical corpus name for a data name or file stem ('emodb' -> 'EMODB')."""
    upper = {k.upper(): k for k in CLASS_LABELS}
    key = upper.get(name.upper())
    if key is None:
        known = ", ".join(sorted(CLASS_LABELS))
        raise KeyError(f"unknown corpus name '{name}' (known: {known})")
    return key


def class_labels_for(name: str) -> tuple[str, ...]:
    """Class tuple (column order of Y) for a corpus or data name."""
    return CLASS_LABELS[corpus_key(name)]


def default_dilations(data_name: str) -> int:
    """The original's number of dilations for a data set (10 for IEMOCAP, else 8)."""
    return DILATIONS_BY_DATA.get(data_name.upper(), DEFAULT_DILATIONS)

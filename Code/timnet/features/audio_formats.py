"""Which files are audio: one list of suffixes for the corpus parsers and the predictor.

Corpora circulate as WAV, FLAC (RAVDESS is often shared so), OGG and others; everything
``librosa.load`` reads (libsndfile, then audioread/ffmpeg) is accepted everywhere, so a
corpus that ``timnet predict`` reads can also be extracted. Light on purpose: no audio
library is imported here.
"""

from __future__ import annotations

from pathlib import Path

# Formats libsndfile (WAV, FLAC, OGG/Vorbis/Opus, AIFF, ...) or audioread (MP3, M4A, ...) read.
AUDIO_SUFFIXES: frozenset[str] = frozenset({
    ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".wma", ".aif", ".aiff",
    ".aifc", ".au", ".snd", ".caf", ".w64", ".webm", ".mp4",
})


def is_audio_name(name: str | Path) -> bool:
    """Whether a file name has an audio suffix (case-insensitive); macOS resource forks
    (``._x.wav``, metadata beside the real file) are not audio."""
    path = Path(name)
    return path.suffix.lower() in AUDIO_SUFFIXES and not path.name.startswith("._")


def audio_stem(name: str | Path) -> str | None:
    """The file name without its audio suffix (``03a01Wa.flac`` -> ``03a01Wa``), or None
    when the name is not an audio file's: what the corpus parsers read labels from."""
    path = Path(name)
    return path.stem if is_audio_name(path) else None


def find_audio_files(root: Path) -> list[Path]:
    """Every audio file below ``root``, sorted."""
    return sorted(p for p in Path(root).rglob("*") if is_audio_name(p) and p.is_file())


def suffix_list() -> str:
    """The suffixes for a message: ``.aac, .aif, ...``."""
    return ", ".join(sorted(AUDIO_SUFFIXES))

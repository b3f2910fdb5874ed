"""Reading audio as ``librosa.load`` does (mono float32, soxr HQ to 22 050 Hz) without librosa.

``librosa.load`` pulls in scipy.signal and numba: seconds and 200 MB before the first
sample on a small machine. A waveform-input model (``timnet export --input waveform``)
needs only the samples, so :func:`read_signal` reads them with soundfile and resamples
with soxr exactly as librosa does (channel mean, ``soxr.resample(quality="soxr_hq")``,
length fixed to ``ceil(n * 22050 / sr)``); a format soundfile cannot read falls back to
``librosa.load`` itself (audioread).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from timnet.features.corpora import SAMPLE_RATE


def resample(signal: np.ndarray, orig_sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """``librosa.resample(res_type="soxr_hq")`` of a mono signal."""
    if orig_sr == target_sr:
        return signal
    import soxr

    out = soxr.resample(signal, orig_sr, target_sr, quality="soxr_hq")
    size = int(math.ceil(signal.shape[-1] * float(target_sr) / orig_sr))
    if len(out) < size:
        out = np.pad(out, (0, size - len(out)))
    return np.asarray(out[:size], dtype=np.float32)


def read_signal(path: str | Path) -> np.ndarray:
    """Mono float32 samples at 22 050 Hz, the values ``librosa.load(path)`` gives."""
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as f:
            rate = f.samplerate
            y = f.read(dtype="float32", always_2d=True)
    except sf.LibsndfileError:
        from timnet.features.mfcc import load_signal

        return load_signal(path)
    signal = y[:, 0] if y.shape[1] == 1 else np.mean(y, axis=1, dtype=np.float32)
    return resample(np.ascontiguousarray(signal, dtype=np.float32), rate)

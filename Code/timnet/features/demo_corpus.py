"""Generate a synthetic emotional-speech corpus in the ESD folder layout.

The project's built-in default data: a newcomer can run feature extraction, training
and testing end to end without downloading the Emotional Speech Dataset. Files go to
``<root>/<speaker>/<Emotion>/<split>/<speaker>_<NNNNNN>.wav`` (16 kHz mono int16),
numbered like ESD: per speaker, emotions in the order Neutral, Angry, Happy, Sad,
Surprise, each block holding evaluation, then test, then train utterances. Each
speaker folder also gets ``<speaker>.txt`` (ESD's ``id<TAB>text<TAB>Emotion`` lines)
with the pseudo-words that were "spoken".

The audio is a source-filter model of speech: a Rosenberg glottal-pulse train with an
f0 contour, per-cycle jitter and shimmer and aspiration noise, through a time-varying
cascade of formant resonators (vowel targets per syllable, scaled by the speaker's
vocal-tract length), with plosive bursts and frication for consonants, syllable
amplitude envelopes and pauses. Emotions differ the way acted emotions do (f0 level,
range and contour shape, speaking rate, loudness, voice quality / spectral tilt), but
each utterance's emotion is only partly expressed (a random intensity pulls it towards
neutral) and speakers, recording gain and length vary, so no single global statistic
separates the classes while a model on spectral-temporal features can learn them.

Same seed -> byte-identical files: every file draws from its own random stream keyed
by (seed, speaker, emotion, split, index), so the result does not depend on ``--jobs``
and changing one split's count leaves the other splits' files unchanged.

Re-running is idempotent: ``<root>/DEMO_CORPUS.json`` records the generator settings.
Same settings -> only missing files are written. Different settings -> refused unless
``--force``, which deletes the files of the previous synthetic corpus (and nothing
else) first. A folder with audio this generator did not write (e.g. a real ESD copy)
is always refused, ``--force`` or not: pick another ``--output``.

    python Code/make_demo_corpus.py                      # 5 speakers x 5 emotions x (20+4+2)
    python Code/make_demo_corpus.py --speakers 10 --train 40 --seed 1 --force
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import wave
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from timnet.errors import UserError

GENERATOR_VERSION = 1
MANIFEST_NAME = "DEMO_CORPUS.json"
EMOTIONS: tuple[str, ...] = ("Neutral", "Angry", "Happy", "Sad", "Surprise")  # ESD numbering order
SPLITS: tuple[str, ...] = ("evaluation", "test", "train")  # ESD numbering order within an emotion
DEFAULT_PER_SPLIT: dict[str, int] = {"train": 20, "test": 4, "evaluation": 2}
MIN_SECONDS, MAX_SECONDS = 1.5, 4.5
FRAME_SECONDS = 0.005  # control rate of the prosody tracks
TRACT_FRAMES = 2  # formant filters are updated every TRACT_FRAMES control frames (10 ms)

# Vowel formant targets F1, F2, F3 (Hz) for an adult male vocal tract.
VOWELS: dict[str, tuple[float, float, float]] = {
    "a": (730.0, 1090.0, 2440.0),
    "e": (530.0, 1840.0, 2480.0),
    "i": (290.0, 2250.0, 2890.0),
    "o": (570.0, 840.0, 2410.0),
    "u": (320.0, 870.0, 2240.0),
}
# Onset consonants: kind, noise band (Hz) for voiceless ones.
CONSONANTS: dict[str, tuple[str, tuple[float, float]]] = {
    "": ("none", (0.0, 0.0)),
    "p": ("plosive", (400.0, 1500.0)),
    "t": ("plosive", (3000.0, 6500.0)),
    "k": ("plosive", (1500.0, 3200.0)),
    "s": ("fricative", (4000.0, 7500.0)),
    "sh": ("fricative", (2000.0, 4200.0)),
    "f": ("fricative", (1200.0, 7000.0)),
    "h": ("fricative", (700.0, 4000.0)),
    "m": ("nasal", (0.0, 0.0)),
    "n": ("nasal", (0.0, 0.0)),
    "l": ("nasal", (0.0, 0.0)),
}
_CONSONANT_KEYS = tuple(CONSONANTS)
_CONSONANT_P = np.array([0.14, 0.09, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.11, 0.12, 0.09])
_VOWEL_KEYS = tuple(VOWELS)


@dataclass(frozen=True)
class SpeakerProfile:
    """What stays fixed for one synthetic speaker across all emotions."""

    name: str  # "0001"
    sex: str  # "female" | "male"
    f0_hz: float  # neutral speaking f0
    range_scale: float  # how much of an emotion's f0 range this speaker uses
    formant_scale: float  # 1 / relative vocal-tract length
    loudness_db: float  # habitual level / microphone distance
    rate_scale: float  # habitual speaking rate
    breathiness: float  # habitual aspiration noise
    tilt: float  # habitual voice brightness (-1 dark .. 1 bright)
    noise_floor_db: float  # recording-session noise floor (dBFS)


@dataclass(frozen=True)
class EmotionStyle:
    """Acoustic correlates of an acted emotion (the values at full intensity)."""

    f0_shift_st: float  # f0 level relative to the speaker's neutral f0, semitones
    range_st: float  # pitch-accent height, semitones
    accent_width_s: float  # accent shape: small = sharp peaks
    declination_st: float  # f0 drift over the utterance, semitones
    final_st: float  # final movement: >0 rise (question-like), <0 fall
    rate_sps: float  # syllables per second
    loudness_db: float  # level relative to neutral
    stress_db: float  # stressed-syllable level boost
    tilt: float  # -1 dark .. +1 bright (pre-emphasis / low-pass)
    open_quotient: float  # glottal open quotient: high = breathy/lax, low = pressed
    jitter: float  # relative per-cycle f0 perturbation
    shimmer: float  # relative per-cycle amplitude perturbation
    breath: float  # aspiration noise relative to the voiced source
    pause_prob: float  # chance of a pause between words
    formant_shift: float  # relative F1/F2 shift (smiling / wide open mouth > 0)
    stress_prob: float  # chance that a word's lexical stress gets a pitch accent


# Columns in EmotionStyle field order:
#   f0 range width  decl  final rate  loud stress tilt  OQ   jitter shimmer breath pause formant accent
STYLES: dict[str, EmotionStyle] = {
    "Neutral": EmotionStyle(0.0, 2.5, 0.09, -2.0, -2.0, 4.6, 0.0, 2.0, 0.0, 0.6, 0.006, 0.04, 0.10, 0.12, 0.0, 0.5),
    "Angry": EmotionStyle(3.5, 4.0, 0.045, -0.8, -3.5, 5.3, 6.0, 5.0, 0.8, 0.42, 0.012, 0.07, 0.05, 0.08, 0.06, 0.85),
    "Happy": EmotionStyle(4.0, 6.0, 0.11, -1.0, 1.0, 5.0, 3.0, 3.0, 0.45, 0.55, 0.009, 0.05, 0.08, 0.10, 0.07, 0.75),
    "Sad": EmotionStyle(-2.0, 1.0, 0.13, -3.0, -2.5, 3.4, -5.0, 1.0, -0.8, 0.75, 0.010, 0.07, 0.25, 0.30, -0.05, 0.35),
    "Surprise": EmotionStyle(5.0, 5.0, 0.08, 0.5, 7.0, 4.8, 3.0, 3.5, 0.35, 0.55, 0.009, 0.05, 0.12, 0.10, 0.05, 0.7),
}


def make_speaker(index: int, seed: int = 0) -> SpeakerProfile:
    """Speaker ``index`` (0-based) of a corpus: even indices female, odd male."""
    rng = np.random.default_rng([seed, 0, index])
    female = index % 2 == 0
    return SpeakerProfile(
        name=f"{index + 1:04d}",
        sex="female" if female else "male",
        f0_hz=float(rng.uniform(180.0, 240.0) if female else rng.uniform(95.0, 135.0)),
        range_scale=float(rng.uniform(0.7, 1.3)),
        formant_scale=float(rng.uniform(1.1, 1.22) if female else rng.uniform(0.94, 1.04)),
        loudness_db=float(rng.uniform(-4.0, 4.0)),
        rate_scale=float(rng.uniform(0.85, 1.15)),
        breathiness=float(rng.uniform(0.0, 0.12) + (0.05 if female else 0.0)),
        tilt=float(rng.uniform(-0.35, 0.35)),
        noise_floor_db=float(rng.uniform(-68.0, -54.0)),
    )


def _utterance_style(emotion: str, speaker: SpeakerProfile, rng: np.random.Generator) -> EmotionStyle:
    """The style actually produced: the emotion at a random intensity (acted emotions are
    not always full-blown), plus utterance-to-utterance variation of every cue."""
    target, neutral = STYLES[emotion], STYLES["Neutral"]
    k = rng.uniform(0.5, 1.0)
    mix = {f.name: getattr(neutral, f.name) + k * (getattr(target, f.name) - getattr(neutral, f.name)) for f in fields(EmotionStyle)}

    def jit(sd: float) -> float:
        return float(rng.normal(0.0, sd))

    return replace(
        EmotionStyle(**mix),
        f0_shift_st=mix["f0_shift_st"] + jit(1.5),
        range_st=max(0.3, mix["range_st"] * speaker.range_scale * float(rng.lognormal(0.0, 0.3))),
        accent_width_s=mix["accent_width_s"] * float(rng.lognormal(0.0, 0.2)),
        declination_st=mix["declination_st"] + jit(1.0),
        final_st=mix["final_st"] + jit(2.0),
        rate_sps=mix["rate_sps"] * speaker.rate_scale * float(rng.lognormal(0.0, 0.12)),
        loudness_db=mix["loudness_db"] + jit(2.0),
        tilt=float(np.clip(mix["tilt"] + speaker.tilt + jit(0.3), -1.0, 1.0)),
        open_quotient=float(np.clip(mix["open_quotient"] + jit(0.06), 0.3, 0.85)),
        breath=max(0.0, mix["breath"] + speaker.breathiness + jit(0.04)),
        pause_prob=float(np.clip(mix["pause_prob"] + jit(0.05), 0.0, 0.6)),
    )


@dataclass
class _Segment:
    start: float
    end: float
    kind: str  # "silence" | "plosive" | "fricative" | "nasal" | "vowel"
    band: tuple[float, float] = (0.0, 0.0)
    vowel: str = ""
    stressed: bool = False


Word = tuple[tuple[tuple[str, str], ...], int]  # ((consonant, vowel) syllables, lexically stressed syllable)


def make_sentence(rng: np.random.Generator) -> list[Word]:
    """A pseudo-word sentence. As in ESD, every speaker reads the same sentence in every
    emotion, so content cannot give the emotion away."""
    n_target = int(round(rng.uniform(1.1, 3.2) * STYLES["Neutral"].rate_sps))
    words: list[Word] = []
    n = 0
    while n < max(n_target, 2):
        n_syl = int(rng.choice([1, 2, 3], p=[0.35, 0.45, 0.2]))
        cons = rng.choice(len(_CONSONANT_KEYS), size=n_syl, p=_CONSONANT_P)
        vows = rng.integers(len(_VOWEL_KEYS), size=n_syl)
        syl = tuple((_CONSONANT_KEYS[int(c)], _VOWEL_KEYS[int(v)]) for c, v in zip(cons, vows))
        words.append((syl, int(rng.integers(n_syl))))
        n += n_syl
    return words


def _plan(words: list[Word], style: EmotionStyle, rng: np.random.Generator) -> tuple[list[_Segment], str, float]:
    """Time the sentence at the style's rate; returns (segments, transcript, duration).
    Words that would run past MAX_SECONDS are dropped (slow, sad readings)."""
    lead, trail = rng.uniform(0.08, 0.25), rng.uniform(0.1, 0.3)
    t, end_speech = lead, MAX_SECONDS - trail
    segments = [_Segment(0.0, lead, "silence")]
    spoken: list[str] = []
    for w, (syllables, stress) in enumerate(words):
        word_start, t_word = len(segments), t
        accented = bool(rng.random() < style.stress_prob)
        for k, (cons, vowel) in enumerate(syllables):
            stressed = accented and k == stress
            dur = rng.lognormal(0.0, 0.2) / style.rate_sps * (1.3 if stressed else 1.0)
            kind, band = CONSONANTS[cons]
            if kind == "plosive":
                closure, burst = rng.uniform(0.03, 0.06), rng.uniform(0.015, 0.035)
                segments.append(_Segment(t, t + closure, "silence"))
                segments.append(_Segment(t + closure, t + closure + burst, "plosive", band))
                c_dur = closure + burst
            elif kind == "fricative":
                c_dur = rng.uniform(0.05, 0.11)
                segments.append(_Segment(t, t + c_dur, "fricative", band))
            elif kind == "nasal":
                c_dur = rng.uniform(0.04, 0.08)
                segments.append(_Segment(t, t + c_dur, "nasal", vowel=vowel))
            else:
                c_dur = 0.0
            v_dur = max(0.06, dur - c_dur)
            if w == len(words) - 1 and k == len(syllables) - 1:
                v_dur *= 1.3  # phrase-final lengthening
            segments.append(_Segment(t + c_dur, t + c_dur + v_dur, "vowel", vowel=vowel, stressed=stressed))
            t += c_dur + v_dur
        if t > end_speech and spoken:
            del segments[word_start:]
            t = t_word
            break
        spoken.append("".join(c + v for c, v in syllables))
        if w < len(words) - 1:
            if rng.random() < style.pause_prob:
                pause = rng.uniform(0.12, 0.35)
                segments.append(_Segment(t, t + pause, "silence"))
                t += pause
                spoken[-1] += ","
            else:
                t += rng.uniform(0.0, 0.03)
    t = max(s.end for s in segments)
    duration = float(np.clip(t + trail, MIN_SECONDS, MAX_SECONDS))
    text = " ".join(spoken).rstrip(",")
    return segments, text[:1].upper() + text[1:] + ".", duration


def _resonator_sos(freq: np.ndarray, bw: np.ndarray, sr: int) -> np.ndarray:
    """Second-order all-pole sections (unity gain at DC), one per formant; shape (n, 6)."""
    r = np.exp(-np.pi * bw / sr)
    a1, a2 = -2.0 * r * np.cos(2.0 * np.pi * freq / sr), r * r
    sos = np.zeros((len(freq), 6))
    sos[:, 0] = 1.0 + a1 + a2
    sos[:, 3], sos[:, 4], sos[:, 5] = 1.0, a1, a2
    return sos


def _vocal_tract(x: np.ndarray, formants: np.ndarray, bandwidths: np.ndarray, hop: int, sr: int) -> np.ndarray:
    """Filter ``x`` through formant resonators whose frequencies change every ``hop``
    samples (filter state carried across frames, so there are no clicks)."""
    from scipy import signal  # here, not at import: scipy.signal takes seconds to load (timnet --help)
    n_frames, n_form = formants.shape
    y = np.empty_like(x)
    zi = np.zeros((n_form, 2))
    for i in range(n_frames):
        a, b = i * hop, min(len(x), (i + 1) * hop)
        if a >= b:
            break
        y[a:b], zi = signal.sosfilt(_resonator_sos(formants[i], bandwidths[i], sr), x[a:b], zi=zi)
    return y


def _smooth(x: np.ndarray, frames: int) -> np.ndarray:
    """Moving-average smoothing of a control track (keeps its length)."""
    if frames <= 1:
        return x
    kernel = np.hanning(frames + 2)[1:-1]
    return np.convolve(np.pad(x, frames, mode="edge"), kernel / kernel.sum(), mode="same")[frames:-frames]


@functools.lru_cache(maxsize=64)
def _band_sos(band: tuple[float, float], sr: int) -> np.ndarray:
    from scipy import signal  # here, not at import: scipy.signal takes seconds to load (timnet --help)
    lo, hi = band
    hi = min(hi, 0.45 * sr)
    lo = min(lo, 0.5 * hi)
    return signal.butter(2, [lo, hi], btype="bandpass", fs=sr, output="sos")


@functools.lru_cache(maxsize=8)
def _highpass_sos(sr: int) -> np.ndarray:
    from scipy import signal  # here, not at import: scipy.signal takes seconds to load (timnet --help)
    return signal.butter(2, 60.0, btype="highpass", fs=sr, output="sos")


def _bandpass(noise: np.ndarray, band: tuple[float, float], sr: int) -> np.ndarray:
    from scipy import signal  # here, not at import: scipy.signal takes seconds to load (timnet --help)
    return signal.sosfilt(_band_sos(band, sr), noise)


def _synthesize(
    emotion: str, speaker: SpeakerProfile, rng: np.random.Generator, sr: int, sentence: list[Word] | None = None
) -> tuple[np.ndarray, str]:
    """One utterance as float32 in [-1, 1] plus its pseudo-word transcript; the sentence
    is drawn from ``rng`` unless given."""
    from scipy import signal  # here, not at import: scipy.signal takes seconds to load (timnet --help)
    emotion = _emotion_name(emotion)
    if sentence is None:
        sentence = make_sentence(rng)
    style = _utterance_style(emotion, speaker, rng)
    segments, text, duration = _plan(sentence, style, rng)
    n = int(round(duration * sr))
    hop = max(1, int(round(FRAME_SECONDS * sr)))
    n_frames = -(-n // hop) + 1
    ft = np.arange(n_frames) * hop / sr  # frame times
    st = np.arange(n) / sr  # sample times

    # Voicing, syllable loudness and formant targets on the frame grid.
    voicing = np.zeros(n_frames)
    loud_db = np.full(n_frames, -60.0)
    knots_t: list[float] = []
    knots_f: list[np.ndarray] = []
    vowel_centres: list[tuple[float, bool]] = []
    shift = 1.0 + style.formant_shift
    for seg in segments:
        m = (ft >= seg.start) & (ft < seg.end)
        if seg.kind in ("vowel", "nasal"):
            voicing[m] = 1.0
        if seg.kind == "vowel":
            rel = (ft[m] - seg.start) / max(seg.end - seg.start, 1e-3)
            attack = 0.05 if style.stress_db > 3.5 else 0.15
            env = np.minimum(1.0, rel / attack) * (1.0 - 0.6 * np.clip((rel - 0.6) / 0.4, 0.0, 1.0))
            loud_db[m] = 20.0 * np.log10(np.maximum(env, 1e-3)) + (style.stress_db if seg.stressed else 0.0)
            f1, f2, f3 = VOWELS[seg.vowel]
            target = np.array([f1 * shift, f2 * (1.0 + 0.5 * style.formant_shift), f3]) * speaker.formant_scale
            target *= rng.lognormal(0.0, 0.04, size=3)
            for frac in (0.3, 0.7):
                knots_t.append(seg.start + frac * (seg.end - seg.start))
                knots_f.append(target)
            vowel_centres.append((0.5 * (seg.start + seg.end), seg.stressed))
        elif seg.kind == "nasal":
            loud_db[m] = -8.0
    voicing = np.clip(_smooth(voicing, 3), 0.0, 1.0)
    loud_db = _smooth(loud_db, 2)
    # Overall amplitude declination across the utterance.
    loud_db += -3.0 * ft / duration
    kf = np.array(knots_f)
    formants = np.stack([np.interp(ft, knots_t, kf[:, j]) for j in range(3)], axis=1)
    formants = np.concatenate([formants, np.full((n_frames, 1), 3500.0 * speaker.formant_scale)], axis=1)
    formants = np.minimum(formants, 0.45 * sr)
    bandwidths = np.array([70.0, 100.0, 160.0, 250.0]) * (1.0 + 0.8 * style.breath) * np.ones((n_frames, 1))
    bandwidths[:, 0] += 0.05 * formants[:, 0]

    # f0 contour (semitones around the speaker's neutral f0).
    f0_st = np.full(n_frames, style.f0_shift_st) + style.declination_st * ft / duration
    for centre, stressed in vowel_centres:
        height = style.range_st * rng.uniform(0.5, 1.0) if stressed else rng.normal(0.0, 0.4)
        c = centre + 0.2 * style.accent_width_s
        f0_st += height * np.exp(-0.5 * ((ft - c) / style.accent_width_s) ** 2)
    last = [seg for seg in segments if seg.kind == "vowel"][-1]
    final_start = min(last.start, last.end - 0.25)
    f0_st += style.final_st * np.clip((ft - final_start) / max(last.end - final_start, 1e-3), 0.0, 1.0) ** 1.5
    f0_st += _smooth(rng.normal(0.0, 1.2, n_frames), 20)  # slow wander
    f0 = speaker.f0_hz * 2.0 ** (np.interp(st, ft, f0_st) / 12.0)
    f0 = np.clip(f0, 50.0, 0.2 * sr)

    # Glottal source: Rosenberg pulse derivative, per-cycle jitter and shimmer.
    phase = np.cumsum(f0) / sr
    cycle = phase.astype(np.int64)
    jitter = rng.normal(0.0, style.jitter, cycle[-1] + 2)
    phase = np.cumsum(f0 * (1.0 + jitter[cycle])) / sr
    cycle = phase.astype(np.int64)
    frac = phase - cycle
    oq = style.open_quotient
    tp, tn = 0.6 * oq, 0.4 * oq
    pulse = np.where(
        frac < tp,
        np.sin(np.pi * frac / tp) / tp,
        np.where(frac < tp + tn, -np.sin(0.5 * np.pi * (frac - tp) / tn) / tn, 0.0),
    )
    shimmer = np.exp(rng.normal(0.0, style.shimmer, cycle[-1] + 2))
    flow_open = frac < oq
    aspiration = _bandpass(rng.normal(0.0, 1.0, n), (500.0, 6000.0), sr) * (0.4 + 0.6 * flow_open)
    source = pulse * shimmer[cycle] / np.sqrt(np.mean(pulse**2) + 1e-12)
    source = source + 3.0 * style.breath * aspiration
    source *= np.interp(st, ft, voicing)

    voiced = _vocal_tract(source, formants[::TRACT_FRAMES], bandwidths[::TRACT_FRAMES], hop * TRACT_FRAMES, sr)
    # Spectral tilt: pre-emphasis (bright) or one-pole low-pass (dark).
    if style.tilt >= 0:
        voiced = signal.lfilter([1.0, -0.85 * style.tilt], [1.0], voiced)
    else:
        a = 0.8 * -style.tilt
        voiced = signal.lfilter([1.0 - a], [1.0, -a], voiced)
    voiced /= np.sqrt(np.mean(voiced[np.interp(st, ft, voicing) > 0.5] ** 2) + 1e-12)

    # Consonant noise (not shaped by the vowel formants).
    noise = np.zeros(n)
    for seg in segments:
        if seg.kind not in ("plosive", "fricative"):
            continue
        a, b = int(seg.start * sr), min(n, int(seg.end * sr))
        if b - a < 8:
            continue
        w = np.hanning(b - a) ** (0.3 if seg.kind == "plosive" else 1.0)
        level = rng.uniform(0.5, 0.9) if seg.kind == "plosive" else rng.uniform(0.15, 0.4)
        level *= 10.0 ** (0.3 * style.tilt / 2.0)
        burst = _bandpass(rng.normal(0.0, 1.0, b - a + 64), seg.band, sr)[64:]
        noise[a:b] += level * w * burst / (np.std(burst) + 1e-9)

    gain = 10.0 ** (np.interp(st, ft, loud_db) / 20.0)
    speech = voiced * gain + noise
    # Recording level: habitual loudness, emotion, and a random per-utterance gain.
    level_db = -24.0 + speaker.loudness_db + style.loudness_db + rng.uniform(-5.0, 5.0)
    active = np.abs(speech) > 0.0
    speech *= 10.0 ** (level_db / 20.0) / np.sqrt(np.mean(speech[active] ** 2) + 1e-12)
    speech += 10.0 ** (speaker.noise_floor_db / 20.0) * rng.normal(0.0, 1.0, n)
    speech = signal.sosfilt(_highpass_sos(sr), speech)
    peak = np.max(np.abs(speech))
    if peak > 0.97:  # a limiter, as a careful recording engineer would set the level
        speech *= 0.97 / peak
    return speech.astype(np.float32), text


def _emotion_name(emotion: str) -> str:
    for name in EMOTIONS:
        if name.lower() == emotion.lower():
            return name
    raise ValueError(f"unknown emotion '{emotion}' (known: {', '.join(EMOTIONS)})")


def synthesize_utterance(emotion: str, speaker: SpeakerProfile, rng: np.random.Generator, sample_rate: int = 16000) -> np.ndarray:
    """One synthetic utterance of ``emotion`` by ``speaker``: float32 mono in [-1, 1]."""
    return _synthesize(emotion, speaker, rng, sample_rate)[0]


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")


def _part_path(path: Path) -> Path:
    """Where ``path`` is written before it is complete: a fixed name, not a ``.wav``, so
    corpus readers never see it and ``_remove_old_corpus`` can find leftovers."""
    return path.with_name(path.name + ".part")


@contextmanager
def _written_then_renamed(path: Path) -> Iterator[Path]:
    """Yield ``path``'s part file; rename it over ``path`` once the block completes."""
    tmp = _part_path(path)
    yield tmp
    os.replace(tmp, path)


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """16-bit mono PCM, written to a temporary name and renamed when complete (the
    ``wave`` module writes no timestamps, so equal audio gives equal bytes)."""
    with _written_then_renamed(path) as tmp, wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(_to_int16(audio).tobytes())


@dataclass(frozen=True)
class _Job:
    path: str
    utt_id: str
    emotion: str
    speaker_index: int
    key: tuple[int, ...]  # this file's random stream
    sentence_key: tuple[int, ...]  # the sentence: shared by all speakers and emotions


def _plan_files(root: Path, speakers: int, per_split: dict[str, int], seed: int) -> list[_Job]:
    """Every file of the corpus, in ESD numbering order."""
    jobs = []
    block = sum(per_split.values())
    for s in range(speakers):
        name = f"{s + 1:04d}"
        number = 0
        for e, emotion in enumerate(EMOTIONS):
            number = e * block
            for k, split in enumerate(SPLITS):
                for i in range(per_split[split]):
                    number += 1
                    utt_id = f"{name}_{number:06d}"
                    path = root / name / emotion / split / f"{utt_id}.wav"
                    jobs.append(_Job(str(path), utt_id, emotion, s, (seed, 1, s, e, k, i), (seed, 2, k, i)))
    return jobs


def _run_job(job: _Job, seed: int, sample_rate: int) -> tuple[str, str, str, int]:
    speaker = make_speaker(job.speaker_index, seed)
    sentence = make_sentence(np.random.default_rng(list(job.sentence_key)))
    audio, text = _synthesize(job.emotion, speaker, np.random.default_rng(list(job.key)), sample_rate, sentence)
    write_wav(Path(job.path), audio, sample_rate)
    return job.utt_id, text, job.emotion, len(audio)


def _settings(speakers: int, per_split: dict[str, int], seed: int, sample_rate: int) -> dict:
    return {
        "generator": "make_demo_corpus.py",
        "version": GENERATOR_VERSION,
        "speakers": speakers,
        "per_split": {k: per_split[k] for k in ("train", "test", "evaluation")},
        "seed": seed,
        "sample_rate": sample_rate,
    }


def _read_manifest(root: Path) -> dict | None:
    path = root / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) and "settings" in data else None
    except (OSError, ValueError):
        return None


def _write_manifest(root: Path, settings: dict, complete: bool) -> None:
    with _written_then_renamed(root / MANIFEST_NAME) as tmp:
        tmp.write_text(json.dumps({"settings": settings, "complete": complete}, indent=2) + "\n")


def _remove_old_corpus(root: Path, old: dict) -> int:
    """Delete exactly the files a previous run of this generator wrote."""
    s = old["settings"]
    removed = 0
    for job in _plan_files(root, int(s["speakers"]), {k: int(v) for k, v in s["per_split"].items()}, int(s["seed"])):
        p = Path(job.path)
        for q in (p, _part_path(p)):
            if q.exists():
                q.unlink()
                removed += 1
    for s_idx in range(int(s["speakers"])):
        spk = root / f"{s_idx + 1:04d}"
        txt = spk / f"{spk.name}.txt"
        if txt.exists():
            txt.unlink()
        for d in sorted(spk.glob("**/"), key=lambda p: len(p.parts), reverse=True):
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
    return removed


def generate_corpus(
    root: Path,
    speakers: int = 5,
    per_split: dict[str, int] | None = None,
    seed: int = 0,
    sample_rate: int = 16000,
    jobs: int | None = None,
    force: bool = False,
    progress: bool = False,
) -> dict:
    """Write the synthetic corpus under ``root`` (see the module docstring for the rules
    on existing folders). Returns counts: files, written, skipped, per emotion/split,
    speakers and total audio seconds."""
    root = Path(root)
    per_split = {**DEFAULT_PER_SPLIT, **(per_split or {})}
    if set(per_split) != set(DEFAULT_PER_SPLIT):
        raise UserError(f"per_split keys must be {sorted(DEFAULT_PER_SPLIT)}, got {sorted(per_split)}")
    if any(int(v) < 0 for v in per_split.values()) or sum(per_split.values()) < 1:
        raise UserError("utterance counts must be >= 0 and not all 0")
    if not 1 <= speakers <= 9999:
        raise UserError(f"--speakers must be between 1 and 9999, got {speakers}")
    if sum(per_split.values()) * len(EMOTIONS) > 999999:
        raise UserError("too many utterances per speaker for 6-digit ESD numbering")
    if sample_rate < 8000:
        raise UserError(f"sample rate must be at least 8000 Hz, got {sample_rate}")
    settings = _settings(speakers, per_split, seed, sample_rate)

    if root.exists() and not root.is_dir():
        raise UserError(f"{root} exists and is not a folder")
    old = _read_manifest(root) if root.is_dir() else None
    if old is not None and old["settings"] != settings:
        if not force:
            raise UserError(
                f"{root} holds a demo corpus made with other settings ({_describe(old['settings'])}); "
                "add --force to replace it"
            )
        _remove_old_corpus(root, old)
        old = None
    if old is None and root.is_dir() and any(root.rglob("*.wav")):
        raise UserError(
            f"{root} already holds audio this generator did not write (a real ESD copy?); "
            "choose another --output or move it away"
        )
    root.mkdir(parents=True, exist_ok=True)
    _write_manifest(root, settings, complete=False)

    planned = _plan_files(root, speakers, per_split, seed)
    todo = [j for j in planned if not Path(j.path).is_file()]
    for j in todo:
        Path(j.path).parent.mkdir(parents=True, exist_ok=True)
    if jobs is None:  # worker start-up (~1 s each) only pays off for a real corpus
        jobs = min(os.cpu_count() or 1, 8) if len(todo) >= 64 else 1
    jobs = max(1, min(jobs, len(todo)))
    results: list[tuple[str, str, str, int]] = []
    bar = tqdm(total=len(todo), desc="synthesizing", unit="file", disable=not progress)
    if jobs == 1:
        for j in todo:
            results.append(_run_job(j, seed, sample_rate))
            bar.update()
    else:
        # spawn, not fork: safe when the caller has already started threads (TensorFlow).
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            for r in pool.map(_run_job, todo, [seed] * len(todo), [sample_rate] * len(todo), chunksize=4):
                results.append(r)
                bar.update()
    bar.close()

    # Transcripts: only rewritten when something was synthesized (texts come from synthesis).
    if results:
        texts = {utt: (text, emo) for utt, text, emo, _ in results}
        for s in range(speakers):
            name = f"{s + 1:04d}"
            txt = root / name / f"{name}.txt"
            known: dict[str, tuple[str, str]] = {}
            if txt.is_file():
                for line in txt.read_text(encoding="utf-8").splitlines():
                    parts = line.split("\t")
                    if len(parts) == 3:
                        known[parts[0]] = (parts[1], parts[2])
            known.update({u: t for u, t in texts.items() if u.startswith(name + "_")})
            lines = [f"{u}\t{known[u][0]}\t{known[u][1]}" for u in sorted(known)]
            with _written_then_renamed(txt) as tmp:
                tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _write_manifest(root, settings, complete=True)

    seconds = sum(r[3] for r in results) / sample_rate
    return {
        "root": str(root),
        "files": len(planned),
        "written": len(results),
        "skipped": len(planned) - len(results),
        "speakers": speakers,
        "emotions": len(EMOTIONS),
        "per_split": {k: per_split[k] * speakers * len(EMOTIONS) for k in ("train", "test", "evaluation")},
        "written_seconds": round(seconds, 1),
    }


def _describe(settings: dict) -> str:
    ps = settings.get("per_split", {})
    return (
        f"speakers={settings.get('speakers')}, train={ps.get('train')}, test={ps.get('test')}, "
        f"evaluation={ps.get('evaluation')}, seed={settings.get('seed')}, sample_rate={settings.get('sample_rate')}"
    )

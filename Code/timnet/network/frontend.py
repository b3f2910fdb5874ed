"""The MFCC front end as Keras layers, so that an exported model takes a waveform.

``features/mfcc.py`` makes a model's input with librosa: the signal centred (or cropped)
to ``mean_signal_length`` samples, then ``librosa.feature.mfcc`` with its defaults
(centred Hann STFT of 2048 points every 512 samples, power spectrum, 128 Slaney mel
bands, ``power_to_db`` with ``top_db`` 80 under the utterance's maximum, DCT-II).
These layers compute the same with plain tensor operations, so that every export format
(ONNX, LiteRT, SavedModel) can hold them:

- ``CentreSignal``: pad (floor-half left) or crop the middle to exactly L samples, for a
  signal of any length (the length is read at run time).
- ``MfccFeatures``: the STFT as a matrix product with fixed (window x DFT) weights on
  frames cut by reshaping (no STFT/FFT op, which LiteRT's builtins and some ONNX runtimes
  lack), the mel filterbank and DCT as matrix products, ``log10`` and the ``top_db`` floor.
- ``CentroidScores``: cosine similarity of an embedding to fixed class centroids (the
  N-pair model's scoring, ``evaluation.scoring.cosine_scores``) as a layer.

Resampling stays outside: the signal must already be mono at 22 050 Hz.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from timnet.features import corpora


def dft_matrix(n_fft: int) -> np.ndarray:
    """(n_fft, 2 * bins) weights: a Hann-windowed frame times them gives the real and the
    imaginary parts of its one-sided DFT (librosa's periodic Hann window)."""
    n = np.arange(n_fft)
    bins = n_fft // 2 + 1
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / n_fft)
    angle = 2.0 * np.pi * np.outer(n, np.arange(bins)) / n_fft
    return np.concatenate([window[:, None] * np.cos(angle), -window[:, None] * np.sin(angle)], axis=1)


def dct_matrix(n_mels: int, n_mfcc: int) -> np.ndarray:
    """(n_mels, n_mfcc) orthonormal DCT-II (``scipy.fft.dct(norm="ortho")``), first n_mfcc rows."""
    n = np.arange(n_mels)
    k = np.arange(n_mfcc)
    basis = np.cos(np.pi * np.outer(2 * n + 1, k) / (2 * n_mels)) * np.sqrt(2.0 / n_mels)
    basis[:, 0] = np.sqrt(1.0 / n_mels)
    return basis


def mel_matrix(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """(bins, n_mels): librosa's Slaney mel filterbank, transposed."""
    import librosa

    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels).T.astype(np.float64)


@keras.saving.register_keras_serializable(package="TIMNet")
class CentreSignal(keras.layers.Layer):
    """(batch, samples) of any length -> (batch, length): ``mfcc.centre_signal`` in the graph.

    The signal is padded with ``length`` zeros on both sides and a window of ``length``
    samples is cut at ``length + trunc((n - length) / 2)``: the middle of a longer signal,
    or a shorter one with floor(missing / 2) zeros on its left."""

    def __init__(self, length: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if int(length) <= 0:
            raise ValueError(f"length must be positive, got {length}")
        self.length = int(length)

    def call(self, inputs: Any) -> Any:
        length = self.length
        shape = ops.shape(inputs)
        padded = ops.pad(inputs, [[0, 0], [length, length]])
        extra = ops.cast(shape[1], "int32") - length
        start = length + ops.sign(extra) * ops.floor_divide(ops.abs(extra), 2)
        return ops.slice(padded, ops.stack([ops.zeros((), "int32"), start]), ops.stack([shape[0], length]))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], self.length)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "length": self.length}


@keras.saving.register_keras_serializable(package="TIMNet")
class MfccFeatures(keras.layers.Layer):
    """(batch, length) signal at ``sample_rate`` -> (batch, 1 + length // hop, n_mfcc) MFCCs,
    librosa.feature.mfcc's defaults computed with matrix products."""

    def __init__(self, length: int, n_mfcc: int = corpora.N_MFCC, sample_rate: int = corpora.SAMPLE_RATE,
                 n_fft: int = corpora.N_FFT, hop_length: int = corpora.HOP_LENGTH, n_mels: int = corpora.N_MELS,
                 top_db: float = corpora.TOP_DB, amin: float = corpora.AMIN, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if n_fft % hop_length:
            raise ValueError(f"n_fft ({n_fft}) must be a multiple of hop_length ({hop_length})")
        self.length, self.n_mfcc, self.sample_rate = int(length), int(n_mfcc), int(sample_rate)
        self.n_fft, self.hop_length, self.n_mels = int(n_fft), int(hop_length), int(n_mels)
        self.top_db, self.amin = float(top_db), float(amin)
        self.frames = 1 + self.length // self.hop_length

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        def constant(name: str, value: np.ndarray) -> Any:
            return self.add_weight(name=name, shape=value.shape, trainable=False, dtype="float32",
                                   initializer=keras.initializers.Constant(value.astype(np.float32)))

        self.dft = constant("dft", dft_matrix(self.n_fft))
        self.mel = constant("mel", mel_matrix(self.sample_rate, self.n_fft, self.n_mels))
        self.dct = constant("dct", dct_matrix(self.n_mels, self.n_mfcc))

    def call(self, inputs: Any) -> Any:
        half, hop = self.n_fft // 2, self.hop_length
        per_frame = self.n_fft // hop
        blocks = self.frames + per_frame - 1
        padded = ops.pad(ops.cast(inputs, "float32"), [[0, 0], [half, half]])[:, : blocks * hop]
        pieces = ops.reshape(padded, (-1, blocks, hop))
        frames = ops.concatenate([pieces[:, i:i + self.frames] for i in range(per_frame)], axis=-1)
        spectrum = ops.matmul(frames, self.dft)
        bins = self.n_fft // 2 + 1
        power = ops.square(spectrum[..., :bins]) + ops.square(spectrum[..., bins:])
        mel = ops.matmul(power, self.mel)
        db = (10.0 / np.log(10.0)) * ops.log(ops.maximum(mel, self.amin))
        floor = ops.max(db, axis=(1, 2), keepdims=True) - self.top_db
        return ops.matmul(ops.maximum(db, floor), self.dct)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], self.frames, self.n_mfcc)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "length": self.length, "n_mfcc": self.n_mfcc,
                "sample_rate": self.sample_rate, "n_fft": self.n_fft, "hop_length": self.hop_length,
                "n_mels": self.n_mels, "top_db": self.top_db, "amin": self.amin}


@keras.saving.register_keras_serializable(package="TIMNet")
class CentroidScores(keras.layers.Layer):
    """(batch, dim) embeddings -> (batch, classes) cosine similarity to fixed class centroids."""

    def __init__(self, num_classes: int, epsilon: float = 1e-12, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.epsilon = float(epsilon)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.centroids = self.add_weight(name="centroids", shape=(self.num_classes, int(input_shape[-1])),
                                         trainable=False, initializer="zeros")

    def call(self, inputs: Any) -> Any:
        def unit(x: Any) -> Any:
            return x / (ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True)) + self.epsilon)

        return ops.matmul(unit(inputs), ops.transpose(unit(self.centroids)))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], self.num_classes)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_classes": self.num_classes, "epsilon": self.epsilon}

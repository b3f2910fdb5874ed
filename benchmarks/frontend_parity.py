"""The waveform front end inside an exported model against the project's librosa MFCCs.

For every file of the real corpora (EMO-DB-2s, RAVDESS speech, resampled to 22 050 Hz
outside the model as ``librosa.load`` does) and for generated signals:

- max |ΔMFCC| of ``network/frontend.py``'s layers against ``features/mfcc.get_mfcc``, as a
  fraction of each utterance's MFCC range (target ≤ 1e-3);
- the scores of a waveform-input ``.onnx`` export against the Keras model on librosa's
  MFCCs: the same predicted class (target ≥ 99.5 % of files) and max |Δscore| (≤ 1e-2).

    python benchmarks/frontend_parity.py --model Test_Models/<run>/weights_best.keras \\
        --onnx model_waveform.onnx [--corpora ../shared/corpora]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from tqdm import tqdm  # noqa: E402

from timnet.features.audio_io import read_signal  # noqa: E402
from timnet.features.mfcc import centre_signal, get_mfcc  # noqa: E402

CORPORA = {"emodb-2s": "wav/*.wav", "ravdess-speech": "flac/**/*.flac"}


def generated(n: int, length: int, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """Noise, tones, chirps and clicks at several levels, shorter and longer than the model's window."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        size = int(rng.integers(length // 4, 2 * length))
        t = np.arange(size) / 22050
        kind = i % 4
        if kind == 0:
            x = rng.standard_normal(size)
        elif kind == 1:
            x = np.sin(2 * np.pi * rng.uniform(80, 4000) * t)
        elif kind == 2:
            x = np.sin(2 * np.pi * (rng.uniform(100, 300) + rng.uniform(200, 3000) * t) * t) * np.exp(-t)
        else:
            x = np.zeros(size)
            x[rng.integers(0, size, 20)] = 1.0
        out.append((f"generated {i} ({['noise', 'tone', 'chirp', 'clicks'][kind]})",
                    (10 ** rng.uniform(-3, 0) * x).astype(np.float32)))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="the .keras (or weights) file the export was made from")
    parser.add_argument("--onnx", required=True, help="its waveform-input ONNX export")
    parser.add_argument("--corpora", default=str(Path(__file__).resolve().parents[2] / "shared" / "corpora"))
    parser.add_argument("--generated", type=int, default=200, help="generated signals")
    parser.add_argument("--limit", type=int, default=None, help="files per corpus (default: all)")
    args = parser.parse_args()

    import keras

    from timnet.inference.exported import ExportedPredictor
    from timnet.model import TimNetModel
    from timnet.network.frontend import CentreSignal, MfccFeatures

    reference = TimNetModel.load(args.model)
    runtime = ExportedPredictor(args.onnx)
    length, n_mfcc = runtime.mean_signal_length, runtime.n_mfcc
    inputs = keras.Input((None,))
    front = keras.Model(inputs, MfccFeatures(length, n_mfcc)(CentreSignal(length)(inputs)))

    sets: dict[str, list[tuple[str, np.ndarray]]] = {}
    for name, pattern in CORPORA.items():
        files = sorted((Path(args.corpora) / name).glob(pattern))[: args.limit]
        if files:
            sets[name] = [(str(f), read_signal(f)) for f in tqdm(files, desc=f"read {name}", unit="file")]
        else:
            print(f"{name}: not found under {args.corpora}, skipped")
    sets["generated"] = generated(args.generated, length)

    print(f"model {args.model} -> {args.onnx}: {length} samples, {n_mfcc} MFCCs, classes "
          f"{', '.join(runtime.class_labels)}")
    print("| set | files | max |ΔMFCC| / range | median | same class | max |Δscore| |")
    print("|---|---|---|---|---|---|")
    verdict = True
    for name, items in sets.items():
        t0 = time.perf_counter()
        rel, same, dscore = [], 0, 0.0
        for i in tqdm(range(0, len(items), 32), desc=name, unit="batch"):
            chunk = items[i:i + 32]
            want = np.stack([get_mfcc(s, length, n_mfcc) for _, s in chunk])
            centred = np.stack([centre_signal(s, length) for _, s in chunk])
            got = keras.ops.convert_to_numpy(front(centred))
            span = want.max(axis=(1, 2)) - want.min(axis=(1, 2))
            rel.extend(np.abs(got - want).max(axis=(1, 2)) / np.maximum(span, 1e-12))
            keras_scores = reference.scores(want)
            # each file whole, as a user passes it: the export centres it itself
            onnx_scores = np.concatenate([runtime.runtime.run(s[None]) for _, s in chunk])
            same += int(np.sum(keras_scores.argmax(1) == onnx_scores.argmax(1)))
            dscore = max(dscore, float(np.abs(keras_scores - onnx_scores).max()))
        rel = np.asarray(rel)
        agree = same / len(items)
        ok = rel.max() <= 1e-3 and agree >= 0.995 and dscore <= 1e-2
        verdict &= ok
        print(f"| {name} | {len(items)} | {rel.max():.2e} | {np.median(rel):.2e} | {100 * agree:.2f} % | "
              f"{dscore:.2e} |  ({time.perf_counter() - t0:.0f} s{'' if ok else ', OUTSIDE the tolerance'})")
    print("within tolerance on every set" if verdict else "OUTSIDE the tolerance on some set")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())

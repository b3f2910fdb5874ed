"""Int8 (dynamic-range) exports against the float ones: UAR on EMO-DB-2s, size, speed.

Scores every EMO-DB-2s recording with each waveform-input artifact (float and int8, ONNX
and LiteRT) and prints UAR / WAR on all files and on the hold-out test split of the model's
seed (the utterances a ``--protocol holdout`` model never trained on), the file sizes and
the max score difference to the float model. ``timnet export --quantize`` is worth it only
if UAR stays within 1 point of the float model's.

    python benchmarks/bench_quantize.py --artifacts a.onnx a_int8.onnx a.tflite a_int8.tflite \\
        [--emodb ../shared/corpora/emodb-2s] [--seed 46]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from timnet.features.audio_io import read_signal  # noqa: E402
from timnet.features.corpora import CLASS_LABELS  # noqa: E402
from timnet.inference.exported import ExportedPredictor  # noqa: E402

LETTERS = "WLEAFNT"  # EMO-DB's emotion letters in TIM-Net's EMODB class order


def uar_war(true: np.ndarray, pred: np.ndarray, classes: int) -> tuple[float, float]:
    recalls = [np.mean(pred[true == c] == c) for c in range(classes) if np.any(true == c)]
    return float(np.mean(recalls)), float(np.mean(pred == true))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", nargs="+", required=True, help="waveform-input .onnx/.tflite exports")
    parser.add_argument("--emodb", default=str(Path(__file__).resolve().parents[2] / "shared" / "corpora" / "emodb-2s"))
    parser.add_argument("--seed", type=int, default=46, help="the model's seed (its hold-out split)")
    args = parser.parse_args()

    from timnet.protocols.standard import holdout_split

    files = sorted((Path(args.emodb) / "wav").glob("*.wav"))
    if not files:
        raise SystemExit(f"{args.emodb}: no wav/*.wav")
    labels = np.asarray([LETTERS.index(f.name[5]) for f in files])
    test = holdout_split(labels, args.seed)[0].test
    signals = [read_signal(f) for f in files]
    classes = len(CLASS_LABELS["EMODB"])
    print(f"EMO-DB-2s: {len(files)} files, hold-out test split {len(test)} (seed {args.seed})")
    print("| artifact | size | UAR all | WAR all | UAR test | WAR test | max |Δscore| vs first | s |")
    print("|---|---|---|---|---|---|---|---|")
    first = None
    for path in map(Path, args.artifacts):
        runtime = ExportedPredictor(path)
        if not runtime.takes_waveform:
            raise SystemExit(f"{path}: export it with --input waveform")
        start = time.perf_counter()
        centred = np.stack([runtime.signal_features(s)[0][0] for s in signals])
        scores = runtime.score_features(centred)
        took = time.perf_counter() - start
        pred = scores.argmax(1)
        first = scores if first is None else first
        ua, wa = uar_war(labels, pred, classes)
        ut, wt = uar_war(labels[test], pred[test], classes)
        print(f"| {path.name} | {path.stat().st_size / 1e6:.2f} MB | {100 * ua:.2f} | {100 * wa:.2f} | "
              f"{100 * ut:.2f} | {100 * wt:.2f} | {np.abs(scores - first).max():.1e} | {took:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

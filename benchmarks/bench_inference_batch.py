"""Inference throughput on the CPU against the batch size (issue 16, item 2).

    python benchmarks/bench_inference_batch.py [--utterances 2048] [--repeats 3]
        [--batches 16,32,64,128,256,512,1024]

Samples per second of the project's compiled predict path (``predict_array``: one
cached ``tf.function`` of the model in inference mode, fed batch after batch) for a
full-size TIM-Net at the paper's shapes: 188 frames x 39 MFCCs, 7 classes,
bi-directional, 8 dilations, 39 filters, softmax head, random weights, on
``--utterances`` random utterances. Batch sizes alternate within every repeat; the best
of ``--repeats`` counts. Prints a table, the fastest batch size and the project's
default on this device (``scoring.inference_batch_size()``, which predict, test and
evaluate use; always among the timed sizes) against the fastest and the largest.
The CPU default (``config.CPU_INFERENCE_BATCH``) was chosen from these figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from timnet.evaluation.scoring import inference_batch_size, predict_array  # noqa: E402
from timnet.network.layers import build_timnet_model  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--utterances", type=int, default=2048)
    p.add_argument("--frames", type=int, default=188)
    p.add_argument("--mfcc", type=int, default=39)
    p.add_argument("--classes", type=int, default=7)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batches", default="16,32,64,128,256,512,1024")
    args = p.parse_args()
    default = inference_batch_size()
    batches = sorted({int(b) for b in args.batches.split(",")} | {default})

    keras.utils.set_random_seed(0)
    model = build_timnet_model((args.frames, args.mfcc), args.classes, head="softmax", dilation_size=8,
                               bidirection=True)
    x = np.random.default_rng(0).normal(0, 1, (args.utterances, args.frames, args.mfcc)).astype("float32")
    print(f"TF {tf.__version__}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; {args.utterances} "
          f"utterances of ({args.frames}, {args.mfcc}), {args.classes} classes, bi-directional, softmax head")

    reference = predict_array(model, x, batch_size=batches[0])  # traces the function, warms up
    best = {b: float("inf") for b in batches}
    for b in batches:  # warm-up per batch size (allocator, thread pools); results must agree
        out = predict_array(model, x, batch_size=b)
        assert np.allclose(out, reference, atol=1e-5), f"batch {b} changes the outputs"
    for _ in range(args.repeats):
        for b in batches:
            start = time.perf_counter()
            predict_array(model, x, batch_size=b)
            best[b] = min(best[b], time.perf_counter() - start)

    print(f"{'batch':>6} | {'best s':>7} | {'samples/s':>9}")
    for b in batches:
        print(f"{b:>6} | {best[b]:7.3f} | {args.utterances / best[b]:9.0f}")
    top = min(batches, key=lambda b: best[b])
    print(f"best batch: {top} ({args.utterances / best[top]:.0f} samples/s); load at end {os.getloadavg()[0]:.2f}")
    device = "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
    largest = max(batches)
    print(f"project default on the {device}: batch {default} ({args.utterances / best[default]:.0f} samples/s), "
          f"x{best[top] / best[default]:.2f} the speed of the fastest, x{best[largest] / best[default]:.2f} "
          f"that of batch {largest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training and inference throughput of TIM-Net: the project's path vs the plain reference.

    python benchmarks/bench_speed.py [--steps N] [--repeats N] [--loss ce|npair] [--epoch_train N]

(a) ours: ``loop.build_model`` + ``loop.training_dataset`` + ``model.fit`` as
``loop.train`` runs them, and ``scoring.predict_array`` for inference;
(b) reference: ``plain_timnet.build_plain_timnet`` (one standard Keras layer per
operation and branch, compiled without XLA) trained with ``model.fit(x, y)`` and
run with ``model.predict(x)``, the straightforward Keras way.

Both have the same weights and see the same synthetic data at the paper's shapes
(188 frames x 39 MFCCs, batch 64, 7 classes, bi-directional). Prints samples/s of
each, the ratio, and the peak memory. Runs on the GPU when TensorFlow sees one.
Timings alternate between the two models and keep the best of ``--repeats``.

A second figure times whole epochs on a corpus the size of an EMO-DB fold, with
everything a run does around the training steps (validation, the weights file,
TensorBoard logging; ours as ``loop.train``, the reference as the original: Keras'
TensorBoard callback with weight histograms every epoch).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO_ROOT = Path(__file__).resolve().parent.parent

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from timnet.config import TrainingConfig  # noqa: E402
from timnet.evaluation.scoring import predict_array  # noqa: E402
from timnet.features.files import FeatureSet  # noqa: E402
from timnet.network.losses import NPairAccuracy, NPairLoss  # noqa: E402
from timnet.network.reference import build_plain_timnet, copy_weights_to_plain  # noqa: E402
from timnet.protocols import Split  # noqa: E402
from timnet.training import callbacks as cb  # noqa: E402
from timnet.training import loop  # noqa: E402
from timnet.training.data_pipeline import make_dataset  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--steps", type=int, default=40, help="timed training steps (batches) per model")
    p.add_argument("--warmup", type=int, default=3, help="untimed training steps first (tracing, compiling)")
    p.add_argument("--predict_samples", type=int, default=2048, help="utterances for the inference timing")
    p.add_argument("--repeats", type=int, default=3, help="timings per figure, alternating models; the best is kept")
    p.add_argument("--frames", type=int, default=188)
    p.add_argument("--n_mfcc", type=int, default=39)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--classes", type=int, default=7)
    p.add_argument("--dilation_size", type=int, default=8)
    p.add_argument("--loss", choices=("ce", "npair"), default="ce", help="ce: the paper's softmax head")
    p.add_argument("--forward_only", action="store_true", help="no backward branch")
    p.add_argument("--jit", default="auto", help="jit_compile of our model: auto, true or false")
    p.add_argument("--mixed_precision", action="store_true", help="mixed_float16 for our model (GPU only)")
    p.add_argument("--skip_reference", action="store_true", help="time our path only")
    p.add_argument("--epoch_train", type=int, default=481,
                   help="training utterances of the whole-epoch timing (an EMO-DB 10-fold fold); 0 skips it")
    p.add_argument("--epoch_val", type=int, default=54, help="validation utterances of the whole-epoch timing")
    p.add_argument("--epochs", type=int, default=4, help="epochs per whole-epoch timing")
    return p.parse_args(argv)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def device_name() -> str:
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
        return f"GPU ({details.get('device_name', gpus[0].name)})"
    return f"CPU ({os.cpu_count()} cores visible, {tf.config.threading.get_intra_op_parallelism_threads() or 'auto'} "\
           "intra-op threads)"


def gpu_peak_mb() -> str:
    if not tf.config.list_logical_devices("GPU"):
        return ""
    info = tf.config.experimental.get_memory_info("GPU:0")
    return f", GPU peak {info['peak'] / 2**20:.0f} MB"


def loss_and_metrics(head: str) -> tuple[keras.losses.Loss, list[keras.metrics.Metric]]:
    """What ``loop.build_model`` compiles with, for the reference model."""
    if head == "softmax":
        return keras.losses.CategoricalCrossentropy(), [keras.metrics.CategoricalAccuracy(name="accuracy")]
    return NPairLoss(), [NPairAccuracy()]


def rate(samples: int, run: Callable[[], object]) -> float:
    """Samples per second of one call of ``run``."""
    start = time.perf_counter()
    run()
    return samples / (time.perf_counter() - start)


def epoch_figures(args: argparse.Namespace, settings: TrainingConfig, model: keras.Model, plain: keras.Model,
                  shape: tuple[int, int]) -> None:
    """Whole epochs as a run goes, on a corpus the size of an EMO-DB fold: ours with the
    callbacks ``loop.train`` uses (validation UAR, weights file every epoch, TensorBoard
    scalars and weight histograms); the reference as the original ran it (validation
    data, ``keras.callbacks.TensorBoard(histogram_freq=1)``). Tracing is excluded."""
    rng = np.random.default_rng(1)
    n = args.epoch_train + args.epoch_val
    x = rng.standard_normal((n, *shape), dtype=np.float32)
    y = np.eye(args.classes, dtype=np.float32)[np.arange(n) % args.classes]
    features = FeatureSet(x, y, tuple(f"c{i}" for i in range(args.classes)), "bench")
    split = Split(1, np.arange(args.epoch_train), np.arange(args.epoch_train, n), "bench")
    bs = args.batch_size
    with tempfile.TemporaryDirectory() as tmp:
        writer = cb.WeightsWriter(Path(tmp) / "weights.hdf5", loop.model_metadata(settings, features), best=False)
        callbacks = cb.fold_callbacks(settings, features, split, writer, cb.StopRequest(), Path(tmp) / "ours")
        train_ds = loop.training_dataset(features, y, split, settings)
        val_ds = make_dataset(x, y, split.test, bs)
        reference_log = keras.callbacks.TensorBoard(str(Path(tmp) / "reference"), histogram_freq=1)
        x_train, y_train = x[split.train], y[split.train]
        x_val, y_val = x[split.test], y[split.test]
        runs = {
            "ours": lambda epochs: model.fit(train_ds, validation_data=val_ds, epochs=epochs, callbacks=callbacks,
                                             verbose=0),
            "reference": lambda epochs: plain.fit(x_train, y_train, batch_size=bs, epochs=epochs, shuffle=True,
                                                  validation_data=(x_val, y_val), callbacks=[reference_log],
                                                  verbose=0),
        }
        for run in runs.values():
            run(1)  # traces the validation step
        best = dict.fromkeys(runs, 0.0)
        for _ in range(args.repeats):
            for name, run in runs.items():
                best[name] = max(best[name], rate(args.epochs * args.epoch_train, partial(run, args.epochs)))
    ours, reference = best["ours"], best["reference"]
    print(f"Whole epochs ({args.epoch_train} training + {args.epoch_val} validation utterances, logging as a run "
          f"does): ours {ours:.1f} utterances/s ({args.epoch_train / ours:.2f} s/epoch), "
          f"reference {reference:.1f} ({args.epoch_train / reference:.2f} s/epoch), x{ours / reference:.2f}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    jit = {"true": True, "false": False}.get(args.jit.lower(), args.jit)
    if args.mixed_precision:
        if tf.config.list_logical_devices("GPU"):
            keras.mixed_precision.set_global_policy("mixed_float16")
        else:
            print("--mixed_precision ignored: no GPU")
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    n = args.steps * args.batch_size
    x = rng.standard_normal((n, args.frames, args.n_mfcc), dtype=np.float32)
    labels = np.arange(n) % args.classes
    y = np.eye(args.classes, dtype=np.float32)[labels]
    x_pred = x[: args.predict_samples] if args.predict_samples <= n else \
        rng.standard_normal((args.predict_samples, args.frames, args.n_mfcc), dtype=np.float32)
    settings = TrainingConfig(loss=args.loss, batch_size=args.batch_size, histogram_freq=1,
                              label_smoothing=0.1 if args.loss == "ce" else 0.0).replace(
        dropout=0.1, dilation_size=args.dilation_size, bidirection=not args.forward_only)
    features = FeatureSet(x, y, tuple(f"c{i}" for i in range(args.classes)), "bench")
    split = Split(1, np.arange(n), np.arange(0), "bench")
    shape = (args.frames, args.n_mfcc)
    print(f"Device: {device_name()}")
    print(f"Shapes: {args.frames} frames x {args.n_mfcc} MFCCs, batch {args.batch_size}, {args.classes} classes, "
          f"{'forward only' if args.forward_only else 'bi-directional'}, {args.loss} head; "
          f"{args.steps} timed steps, {args.predict_samples} utterances predicted; jit_compile={jit!r}")
    rss_start = peak_rss_mb()

    # (a) ours, as loop.train runs it.
    model = loop.build_model(settings, shape, args.classes, jit_compile=jit)
    print(f"Parameters: {model.count_params()}")
    train_ds = loop.training_dataset(features, y, split, settings)
    callbacks = [cb.StopOnRequest(cb.StopRequest())]
    model.fit(train_ds, epochs=1, steps_per_epoch=args.warmup, callbacks=callbacks, verbose=0)
    predict_array(model, x_pred[: args.batch_size])
    runs = {
        "ours train": lambda: model.fit(train_ds, epochs=1, callbacks=callbacks, verbose=0),
        "ours inference": lambda: predict_array(model, x_pred),
    }
    runs["ours train"]()
    rss_ours = peak_rss_mb()

    # (b) the plain reference with the same weights.
    if not args.skip_reference:
        keras.mixed_precision.set_global_policy("float32")
        plain = build_plain_timnet(shape, args.classes, head=settings.head, **settings.architecture.as_dict())
        copy_weights_to_plain(model, plain)
        loss, metrics = loss_and_metrics(settings.head)
        plain.compile(optimizer=keras.optimizers.Adam(settings.lr, settings.beta1, settings.beta2, epsilon=1e-8),
                      loss=loss, metrics=metrics, jit_compile=False)
        bs = args.batch_size
        plain.fit(x[: args.warmup * bs], y[: args.warmup * bs], batch_size=bs, epochs=1, verbose=0)
        plain.predict(x_pred[:bs], batch_size=bs, verbose=0)
        runs["reference train"] = lambda: plain.fit(x, y, batch_size=bs, epochs=1, shuffle=True, verbose=0)
        runs["reference inference"] = lambda: plain.predict(x_pred, batch_size=bs, verbose=0)

    # Timings alternate between the two models, so that a slower spell of a shared
    # machine does not favour either; the best of the repeats is kept.
    samples = {name: n if name.endswith("train") else len(x_pred) for name in runs}
    best = dict.fromkeys(runs, 0.0)
    for _ in range(args.repeats):
        for name, run in runs.items():
            best[name] = max(best[name], rate(samples[name], run))
    print(f"ours:      train {best['ours train']:8.1f} samples/s   inference {best['ours inference']:8.1f} "
          f"samples/s   (peak RSS {rss_ours:.0f} MB{gpu_peak_mb()})")
    if args.skip_reference:
        return 0
    print(f"reference: train {best['reference train']:8.1f} samples/s   inference "
          f"{best['reference inference']:8.1f} samples/s   (peak RSS {peak_rss_mb():.0f} MB)")
    print(f"speed-up:  train x{best['ours train'] / best['reference train']:.2f}   "
          f"inference x{best['ours inference'] / best['reference inference']:.2f}")
    print(f"Peak RSS {peak_rss_mb():.0f} MB (process start {rss_start:.0f} MB; data {x.nbytes / 2**20:.0f} MB)")
    if args.epoch_train > 0:
        epoch_figures(args, settings, model, plain, shape)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Peak memory of training on a feature file the size of INTERSECT + ESD.

    python benchmarks/bench_memory.py [--utterances 40000] [--frames 196] [--steps 20]

Writes a ``{"x": float32, "y": one-hot}`` feature file of that size into a temporary
folder (in a separate process), then, in a fresh process, loads it with
``timnet.features.files.load_features`` and runs the training pipeline of ``loop.train``
(``loop.build_model`` + ``loop.training_dataset`` + ``model.fit`` for a bounded
number of steps, then ``scoring.predict_array`` over a validation-sized part).
Prints peak RSS (ru_maxrss) after TensorFlow is up, after loading and at the end,
and the growth over the TensorFlow baseline as a multiple of the feature array:
about 1 means one float32 copy of the features plus a batch pipeline.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate(path: Path, n: int, frames: int, n_mfcc: int, classes: int) -> None:
    import numpy as np

    from timnet.features.files import write_npy_dict

    rng = np.random.default_rng(0)
    x = np.empty((n, frames, n_mfcc), dtype=np.float32)
    for start in range(0, n, 4096):  # chunks: no float64 temporary of the whole array
        x[start : start + 4096] = rng.standard_normal((min(4096, n - start), frames, n_mfcc), dtype=np.float32)
    labels = np.arange(n) % classes
    write_npy_dict(path, {"x": x, "y": np.eye(classes, dtype=np.float32)[labels],
                          "class_labels": np.array([f"c{i}" for i in range(classes)])})


def measure(path: Path, steps: int, batch_size: int) -> None:
    import keras
    import numpy as np
    import tensorflow as tf

    from timnet.config import TrainingConfig
    from timnet.evaluation.scoring import predict_array
    from timnet.features.files import load_features
    from timnet.protocols import holdout_split
    from timnet.training import loop

    keras.utils.set_random_seed(0)
    tf.constant(0.0)  # initialise the runtime before the baseline
    base = peak_rss_mb()
    features = load_features(path)
    loaded = peak_rss_mb()
    array_mb = features.x.nbytes / 2**20
    settings = TrainingConfig(batch_size=batch_size, loss="ce").replace(dropout=0.1, bidirection=True)
    split = holdout_split(features.labels, 46)[0]
    model = loop.build_model(settings, tuple(features.x.shape[1:]), len(features.class_labels))
    targets = features.y.astype(np.float32)
    ds = loop.training_dataset(features, targets, split, settings)
    model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0)
    trained = peak_rss_mb()
    predict_array(model, features.x, split.test[: 8 * 1024])
    end = peak_rss_mb()
    print(f"feature array: {features.x.shape} float32 = {array_mb:.0f} MB")
    print(f"peak RSS: TensorFlow baseline {base:.0f} MB, after loading {loaded:.0f} MB, "
          f"after {steps} training steps {trained:.0f} MB, after inference {end:.0f} MB")
    print(f"loading: +{loaded - base:.0f} MB = {(loaded - base) / array_mb:.2f} x the array; "
          f"whole run: +{end - base:.0f} MB = {(end - base) / array_mb:.2f} x the array")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--utterances", type=int, default=40000)
    p.add_argument("--frames", type=int, default=196)
    p.add_argument("--n_mfcc", type=int, default=39)
    p.add_argument("--classes", type=int, default=7)
    p.add_argument("--steps", type=int, default=20, help="training steps (batches)")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--measure", type=Path, default=None, help=argparse.SUPPRESS)  # the child process
    p.add_argument("--generate", nargs=5, default=None, help=argparse.SUPPRESS)  # the generating child
    args = p.parse_args(argv)
    if args.generate:
        generate(Path(args.generate[0]), *map(int, args.generate[1:]))
        return 0
    if args.measure:
        measure(args.measure, args.steps, args.batch_size)
        return 0
    with tempfile.TemporaryDirectory(prefix="timnet_mem_") as tmp:
        path = Path(tmp) / "BIG.npy"
        print(f"Generating {args.utterances} x {args.frames} x {args.n_mfcc} float32 features in {path} ...",
              flush=True)
        # A child process writes the file, so that its memory is not counted here.
        subprocess.run([sys.executable, __file__, "--generate", str(path), str(args.utterances), str(args.frames),
                        str(args.n_mfcc), str(args.classes)], check=True)
        print(f"File: {path.stat().st_size / 2**20:.0f} MB", flush=True)
        return subprocess.run([sys.executable, __file__, "--measure", str(path), "--steps", str(args.steps),
                               "--batch_size", str(args.batch_size)]).returncode


if __name__ == "__main__":
    sys.exit(main())

"""The cost of resumability and the gain of one traced step per run, on EMO-DB-sized folds.

    python benchmarks/bench_resume.py [--epochs N] [--folds N] [--bidirection]

Trains ``loop.train`` (the paper's recipe, 10-fold split of 535 random utterances of
188 frames x 39 MFCCs, 7 classes: 481 training / 54 validation utterances a fold) on the
CPU and prints (a) the seconds per epoch spent writing the resume state (timed around
``RunState.save``, the only work the resume feature adds to an epoch) against the
seconds per epoch, and (b) the first epoch of the run (which traces the training step)
against the first epoch of the later folds (which reuse it).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from timnet.config import make_config  # noqa: E402
from timnet.features.files import FeatureSet  # noqa: E402
from timnet.training import loop, resume  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=4, help="epochs per fold")
    p.add_argument("--folds", type=int, default=2, help="folds trained (of 10)")
    p.add_argument("--bidirection", action="store_true", help="both branches, as the paper")
    args = p.parse_args()
    tf.config.set_visible_devices([], "GPU")
    rng = np.random.default_rng(0)
    labels = np.arange(535) % 7
    features = FeatureSet(x=rng.normal(size=(535, 188, 39)).astype(np.float32),
                          y=np.eye(7, dtype=np.float32)[labels], class_labels=tuple(f"c{i}" for i in range(7)),
                          name="EMODB")
    saves: list[float] = []
    original = resume.RunState.save

    def timed_save(self: resume.RunState) -> None:
        start = time.perf_counter()
        original(self)
        saves.append(time.perf_counter() - start)

    resume.RunState.save = timed_save  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as tmp:
        config = make_config({"data": "EMODB", "recipe": "paper", "epoch": args.epochs, "max_folds": args.folds,
                              "bidirection": args.bidirection, "histogram_freq": 0, "gpu": "-1",
                              "model_path": Path(tmp) / "m", "result_path": Path(tmp) / "r", "log_dir": Path(tmp) / "l"})
        outcome = loop.train(config, features, verbose=0)
    epochs = [t for h in outcome.histories for t in h["epoch_time"][1:]]  # untraced epochs
    per_epoch = saves[: args.folds * args.epochs]
    print(f"resume state: {np.mean(per_epoch) * 1000:.1f} ms per epoch (max {np.max(per_epoch) * 1000:.1f} ms) "
          f"against {np.mean(epochs):.2f} s per epoch ({100 * np.mean(per_epoch) / np.mean(epochs):.1f} %)")
    firsts = [h["epoch_time"][0] for h in outcome.histories]
    print(f"first epoch of the run (traced) {firsts[0]:.2f} s; first epoch of later folds "
          f"{', '.join(f'{t:.2f}' for t in firsts[1:])} s; later epochs {np.mean(epochs):.2f} s")


if __name__ == "__main__":
    main()

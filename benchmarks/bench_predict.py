"""Prediction speed: warm single-file latency and folder throughput.

    python benchmarks/bench_predict.py [--model PATH] [--files 50] [--folder_files 200] [--jobs N]

Latency: file -> label with the model already loaded (``Predictor.predict_files([f])``),
median and p90 over ``--files`` generated recordings of 1-5 s at 16 kHz (resampled
to the model's 22 050 Hz as a real file would be). Baseline in the same run: the
same features through ``keras.Model.predict`` per call, the unoptimised way.
Throughput: a folder of ``--folder_files`` such files with one process and with
``--jobs`` workers (default all cores), worker start-up included, through the loaded
``Predictor`` and through the command line end to end.

Without ``--model`` a full-size TIM-Net (bi-directional, 8 dilations, 39 filters,
seed's 100 000-sample window, 196 frames) with random weights is written to a
temporary .keras file and loaded the way users load theirs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent

from timnet.features import corpora, mfcc  # noqa: E402
from timnet.inference import featurise  # noqa: E402
from timnet.inference.predictor import Predictor  # noqa: E402


def make_files(folder: Path, count: int, seed: int, rate: int = 16000) -> list[Path]:
    """Tones with noise, 1-5 s long."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(count):
        seconds = rng.uniform(1.0, 5.0)
        t = np.arange(int(seconds * rate)) / rate
        signal = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 400) * t) + 0.05 * rng.standard_normal(len(t))
        path = folder / f"utt_{i:04d}.wav"
        sf.write(path, signal.astype(np.float32), rate)
        files.append(path)
    return files


def make_model(folder: Path) -> Path:
    from timnet.modelfiles import portable as portable_model
    from timnet.network.layers import build_timnet_model

    length = corpora.SEED_SIGNAL_LENGTH
    classes = corpora.CLASS_LABELS["INTERSECT"]
    model = build_timnet_model((mfcc.n_frames(length), corpora.N_MFCC), len(classes), head="softmax",
                               dilation_size=8, bidirection=True)
    meta = {"class_labels": list(classes), "head": "softmax", "mean_signal_length": length,
            "frames": mfcc.n_frames(length), "n_mfcc": corpora.N_MFCC, "sample_rate": corpora.SAMPLE_RATE}
    return portable_model.save_portable(model, folder / "bench.keras", meta)


def percentiles(times: list[float]) -> str:
    ms = np.asarray(times) * 1000
    return f"median {np.median(ms):6.1f} ms, p90 {np.percentile(ms, 90):6.1f} ms"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help=".keras file, weights file or run folder (default: generated)")
    p.add_argument("--files", type=int, default=50, help="files for the latency figures")
    p.add_argument("--folder_files", type=int, default=200, help="files for the throughput figures")
    p.add_argument("--jobs", type=int, default=mfcc.default_jobs(), help="workers for the throughput figure")
    p.add_argument("--no_cli", action="store_true", help="skip the end-to-end command-line figure")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        model_path = Path(args.model) if args.model else make_model(tmp_path)
        start = time.perf_counter()
        predictor = Predictor.load(model_path)
        print(f"model {model_path}: loaded in {time.perf_counter() - start:.1f} s; {predictor.frames} frames x "
              f"{predictor.n_mfcc} MFCCs, {len(predictor.class_labels)} classes; {mfcc.default_jobs()} cores")
        files = make_files(tmp_path / "latency", args.files, seed=0)
        predictor.predict_files(files[:3], progress=False)  # warm-up

        latency, features_t, model_t, baseline_t = [], [], [], []
        for f in files:
            s = time.perf_counter()
            row = predictor.predict_files([f], progress=False)[0]
            latency.append(time.perf_counter() - s)
            assert row.ok, row
        for f in files:  # breakdown and baseline on the same files
            s = time.perf_counter()
            x, _ = mfcc.extract_many([f], predictor.mean_signal_length, 1, predictor.n_mfcc, progress=False)
            features_t.append(time.perf_counter() - s)
            s = time.perf_counter()
            predictor.score_features(x)
            model_t.append(time.perf_counter() - s)
            s = time.perf_counter()
            predictor.model.predict(x, verbose=0)
            baseline_t.append(time.perf_counter() - s)
        print(f"\nwarm latency, file -> label, {len(files)} files of 1-5 s at 16 kHz:")
        print(f"  predict_files([file])        {percentiles(latency)}   (target: median < 50 ms)")
        print(f"    of which MFCC              {percentiles(features_t)}")
        print(f"    of which network           {percentiles(model_t)}   (compiled tf.function, batch 1)")
        print(f"  baseline network: Model.predict per call  {percentiles(baseline_t)}  -> "
              f"{np.median(baseline_t) / np.median(model_t):.1f}x slower than the compiled path")

        folder = make_files(tmp_path / "folder", args.folder_files, seed=1)
        print(f"\nthroughput of the loaded Predictor on a folder of {len(folder)} files of 1-5 s "
              "(worker start-up included):")
        rates = {}
        featurise.PARALLEL_MIN_FILES_SPAWN = 2  # force the workers, to measure them
        for jobs in dict.fromkeys((1, args.jobs)):
            s = time.perf_counter()
            rows = predictor.predict_files(folder, jobs=jobs, progress=False)
            elapsed = time.perf_counter() - s
            assert all(r.ok for r in rows)
            rates[jobs] = len(folder) / elapsed
            print(f"  jobs={jobs}: {rates[jobs]:6.1f} files/s ({elapsed:.1f} s)")
        if len(rates) > 1:
            print(f"  speed-up with {args.jobs} workers: {rates[args.jobs] / rates[1]:.2f}x (spawned workers: "
                  f"TensorFlow is loaded; the CLI forks them instead, below)")
        if not args.no_cli:
            print("\ncommand line end to end (python start, TensorFlow import and model load included):")
            for jobs in dict.fromkeys((1, args.jobs)):
                s = time.perf_counter()
                proc = subprocess.run([sys.executable, str(REPO_ROOT / "Code" / "main.py"), "--mode", "predict",
                                       "--test_path", str(model_path), "--wav", str(tmp_path / "folder"),
                                       "--jobs", str(jobs), "--result_path", str(tmp_path / "results")],
                                      capture_output=True, text=True)
                elapsed = time.perf_counter() - s
                assert proc.returncode == 0, proc.stderr[-2000:]
                print(f"  --jobs {jobs}: {len(folder) / elapsed:6.1f} files/s ({elapsed:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

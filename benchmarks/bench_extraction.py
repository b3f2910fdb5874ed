"""MFCC extraction throughput with one worker and with all cores, on the same files.

    python benchmarks/bench_extraction.py [--files N] [--jobs N] [--mean_signal_length L]

Uses the EMO-DB copy for tests when present ($TIMNET_EMODB_DIR, else
../shared/corpora/emodb-2s), else generated 2 s WAVs. Times include starting the
worker processes, as a real run pays them; each setting is run ``--repeat`` times,
alternating, and the best run is kept (other load on the machine only slows runs down).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO_ROOT = Path(__file__).resolve().parent.parent

from timnet.features.corpora import MEAN_SIGNAL_LENGTH, SAMPLE_RATE  # noqa: E402
from timnet.features.mfcc import default_jobs, extract_many, get_mfcc  # noqa: E402


def emodb_files() -> list[Path]:
    env = os.environ.get("TIMNET_EMODB_DIR")
    root = Path(env) if env else REPO_ROOT.parent / "shared" / "corpora" / "emodb-2s"
    return sorted((root / "wav").glob("*.wav")) if (root / "wav").is_dir() else []


def generated_files(folder: Path, count: int) -> list[Path]:
    """Noise bursts of 2 s at 22 050 Hz: the same cost per file as the EMO-DB copy."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"gen_{i:04d}.wav"
        sf.write(path, (0.1 * rng.standard_normal(2 * SAMPLE_RATE)).astype(np.float32), SAMPLE_RATE)
        paths.append(path)
    return paths


def cpu_seconds() -> float:
    """CPU time of this process and of its finished workers."""
    me, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + workers.ru_utime + workers.ru_stime


def throughput(paths: list[Path], length: int, jobs: int) -> tuple[float, float, np.ndarray]:
    """(files per wall second, CPU milliseconds per file, features)."""
    start, cpu = time.perf_counter(), cpu_seconds()
    x, failures = extract_many(paths, length, jobs, progress=False)
    elapsed, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    if failures:
        raise SystemExit(f"benchmark files failed: {failures[:3]}")
    return len(paths) / elapsed, 1000 * cpu / len(paths), x


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=0, help="use at most this many files (default: all)")
    parser.add_argument("--jobs", type=int, default=default_jobs(), help="workers of the parallel run (default: all cores)")
    parser.add_argument("--mean_signal_length", type=int, default=MEAN_SIGNAL_LENGTH["EMODB"])
    parser.add_argument("--generated", type=int, default=200, help="files to generate when EMO-DB is absent")
    parser.add_argument("--repeat", type=int, default=3, help="alternate runs per setting; the best is kept")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        paths = emodb_files()
        source = "EMO-DB copy"
        if not paths:
            paths, source = generated_files(Path(tmp), args.generated), "generated WAVs"
        if args.files:
            paths = paths[:args.files]
        get_mfcc(paths[0], args.mean_signal_length)  # librosa's lazy imports, outside the timings
        one = many = 0.0
        cpu_one = cpu_many = float("inf")
        for _ in range(args.repeat):  # alternating, best of each: robust to other load on the machine
            rate, cpu, x1 = throughput(paths, args.mean_signal_length, 1)
            one, cpu_one = max(one, rate), min(cpu_one, cpu)
            rate, cpu, xn = throughput(paths, args.mean_signal_length, args.jobs)
            many, cpu_many = max(many, rate), min(cpu_many, cpu)
    print(f"{len(paths)} files ({source}), mean_signal_length {args.mean_signal_length}, {default_jobs()} cores")
    print(f"1 worker:   {one:8.1f} files/s   {cpu_one:6.2f} CPU ms/file")
    print(f"{args.jobs} workers: {many:8.1f} files/s   {cpu_many:6.2f} CPU ms/file (workers included)")
    print(f"speed-up:   {many / one:8.2f}x   (identical features: {np.array_equal(x1, xn)})")
    print(f"load average over the last minute: {os.getloadavg()[0]:.2f} (other work skews the figures)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Deployment figures: cold single-file prediction, throughput and parity of the exports.

1. Cold start: one ``timnet predict`` of one recording as a whole new process, for the
   TensorFlow path (.keras) and each exported runtime (ONNX with MFCC input, ONNX and
   LiteRT with the waveform front end inside), alternating, ``--rounds`` times each:
   median wall time and median peak RSS (the child's ``ru_maxrss``).
2. Throughput (samples/s) of the network at batch 1 and 64 in one process, each runtime
   alternating, best of ``--repeats``: TensorFlow (``scoring.predict_array``), ONNX Runtime
   (all graph optimisations), LiteRT.
3. Parity: max |score difference| of each artifact against the Keras model (MFCC input:
   the same MFCCs; waveform input: the signal against Keras on librosa's MFCCs).

Targets (issue 20): cold ONNX ≤ 1.0 s and ≤ 300 MB, ≥ 5x faster than TensorFlow in the same
run; batch-64 throughput of the fastest runtime ≥ 1.5x TensorFlow's.

    python benchmarks/bench_deploy.py [--model model.keras] [--wav recording.wav]

Without ``--model`` an untrained EMO-DB-sized model (7 classes, 96 000 samples, the
default architecture) is built: speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

EMODB_WAV = ROOT.parent / "shared" / "corpora" / "emodb-2s" / "wav" / "03a01Wa.wav"


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return env


def cold_run(model: Path, wav: Path, out: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one ``timnet predict`` process. The RSS is measured by
    ``/usr/bin/time`` (a small parent): a child forked from this process would inherit this
    process' high-water mark (TensorFlow loaded) through fork and exec."""
    cmd = [sys.executable, "-m", "timnet", "predict", "--test_path", str(model), "--wav", str(wav),
           "--result_path", str(out)]
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        start = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name, *cmd], env=child_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr[-1000:]}")
        peak_kb = float(Path(rss.name).read_text().split()[-1])
    return wall, peak_kb / 1024


def export_all(model: Path, folder: Path) -> dict[str, Path]:
    """The artifacts the benchmark compares (Keras' own exporters, via timnet export); one
    already in ``folder`` and newer than ``model`` is reused."""
    from timnet.modelfiles.deploy_export import export_artifact

    artifacts = {}
    for name, fmt, kind, suffix in (("onnx-mfcc", "onnx", "mfcc", ".onnx"), ("onnx-waveform", "onnx", "waveform",
                                                                              ".onnx"),
                                    ("litert-mfcc", "litert", "mfcc", ".tflite"),
                                    ("litert-waveform", "litert", "waveform", ".tflite")):
        path = folder / f"{name}{suffix}"
        artifacts[name] = path
        if path.is_file() and path.stat().st_mtime > model.stat().st_mtime:
            print(f"reusing {path}")
            continue
        t0 = time.perf_counter()
        export_artifact(model, path, fmt, kind, "EMODB", None, 46, overwrite=True)
        print(f"exported {path.name} ({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t0:.0f} s")
    return artifacts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a .keras model (default: an untrained EMO-DB-sized one)")
    parser.add_argument("--wav", help="the recording of the cold runs (default: an EMO-DB-2s file or a generated one)")
    parser.add_argument("--rounds", type=int, default=5, help="cold runs per path (alternating)")
    parser.add_argument("--repeats", type=int, default=3, help="throughput measurements per runtime (best)")
    parser.add_argument("--workdir", help="folder for the exports, kept and reused (default: a new temporary one)")
    args = parser.parse_args()

    import soundfile as sf

    from timnet.inference.exported import ExportedPredictor
    from timnet.model import TimNetModel

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench_deploy_"))
    work.mkdir(parents=True, exist_ok=True)
    if args.model:
        keras_file = Path(args.model).resolve()
    else:
        keras_file = TimNetModel.build(("angry", "boredom", "disgust", "fear", "happy", "neutral", "sad"),
                                       96000).save(work / "weights_best.keras")
    wav = Path(args.wav) if args.wav else EMODB_WAV
    if not wav.is_file():
        t = np.arange(3 * 22050) / 22050
        wav = work / "tone.wav"
        sf.write(wav, (0.3 * np.sin(2 * np.pi * (150 + 200 * t) * t)).astype(np.float32), 22050)
    artifacts = export_all(keras_file, work)
    reference = TimNetModel.load(keras_file)
    runtimes = {name: ExportedPredictor(path) for name, path in artifacts.items()}

    # --- cold start -----------------------------------------------------------------------
    paths = {"tensorflow (.keras)": keras_file, "onnx (mfcc input)": artifacts["onnx-mfcc"],
             "onnx (waveform input)": artifacts["onnx-waveform"], "litert (waveform input)": artifacts["litert-waveform"]}
    cold: dict[str, list[tuple[float, float]]] = {name: [] for name in paths}
    for r in range(args.rounds):
        for name, path in paths.items():
            cold[name].append(cold_run(path, wav, work / "results"))
        print(f"cold round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {c[-1][0]:.2f} s" for n, c in cold.items()))
    print(f"\nCold single-file predict of {wav.name} ({args.rounds} alternating rounds, medians):")
    print("| path | wall | peak RSS | TF wall / this |")
    print("|---|---|---|---|")
    tf_wall = statistics.median(w for w, _ in cold["tensorflow (.keras)"])
    for name, runs in cold.items():
        wall, rss = statistics.median(w for w, _ in runs), statistics.median(m for _, m in runs)
        print(f"| {name} | {wall:.2f} s | {rss:.0f} MB | {tf_wall / wall:.1f}x |")

    # --- throughput ------------------------------------------------------------------------
    meta = reference.metadata
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(64, meta.frames, meta.n_mfcc)).astype(np.float32)
    from timnet.evaluation.scoring import predict_array

    def keras_run(x: np.ndarray) -> None:
        predict_array(reference.keras_model, x, batch_size=len(x))

    engines = {"tensorflow": keras_run,
               "onnx runtime": lambda x: runtimes["onnx-mfcc"].runtime.run(x),
               "litert": lambda x: runtimes["litert-mfcc"].runtime.run(x)}
    best: dict[tuple[str, int], float] = {}
    for batch in (1, 64):
        x = feats[:batch]
        for fn in engines.values():  # warm up (tracing, allocation)
            fn(x)
        for _ in range(args.repeats):
            for name, fn in engines.items():
                n, start = 0, time.perf_counter()
                while time.perf_counter() - start < 1.0:
                    fn(x)
                    n += batch
                best[name, batch] = max(best.get((name, batch), 0.0), n / (time.perf_counter() - start))
    print("\nThroughput of the network, samples/s (best of "
          f"{args.repeats}, alternating; MFCC-input artifacts):")
    print("| runtime | batch 1 | batch 64 | batch 64 vs TF |")
    print("|---|---|---|---|")
    for name in engines:
        print(f"| {name} | {best[name, 1]:.0f} | {best[name, 64]:.0f} | "
              f"{best[name, 64] / best['tensorflow', 64]:.2f}x |")

    # --- parity ---------------------------------------------------------------------------
    from timnet.features.mfcc import centre_signal, get_mfcc
    from timnet.inference.featurise import signal_windows

    signals = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (50000, 96000, 130001)]
    signals.append(sf.read(wav, dtype="float32")[0])
    centred = np.stack([signal_windows(s, meta.mean_signal_length, None)[0][0] for s in signals])
    librosa_feats = np.stack([get_mfcc(centre_signal(s, meta.mean_signal_length), meta.mean_signal_length)
                              for s in signals])
    want_feats = reference.scores(feats)
    want_wave = reference.scores(librosa_feats)
    print("\nParity against the Keras model (max |score difference|):")
    print("| artifact | size | max abs diff |")
    print("|---|---|---|")
    for name, runtime in runtimes.items():
        got = runtime.score_features(centred if runtime.takes_waveform else feats)
        diff = np.abs(got - (want_wave if runtime.takes_waveform else want_feats)).max()
        print(f"| {artifacts[name].name} | {artifacts[name].stat().st_size / 1e6:.2f} MB | {diff:.1e} |")

    onnx_wall = min(statistics.median(w for w, _ in cold[n]) for n in ("onnx (mfcc input)", "onnx (waveform input)"))
    onnx_rss = statistics.median(m for _, m in cold["onnx (waveform input)"])
    fastest = max(best[n, 64] for n in engines if n != "tensorflow")
    print(f"\nTargets: cold ONNX {onnx_wall:.2f} s (≤ 1.0 s), {onnx_rss:.0f} MB (≤ 300 MB), "
          f"{tf_wall / onnx_wall:.1f}x faster than TF (≥ 5x); batch-64 fastest runtime "
          f"{fastest / best['tensorflow', 64]:.2f}x TF (≥ 1.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

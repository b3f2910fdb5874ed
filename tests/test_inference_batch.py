"""Inference batch size comes from one place: cache-sized on the CPU, large on a GPU."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from timnet.config import CPU_INFERENCE_BATCH, GPU_INFERENCE_BATCH
from timnet.evaluation import scoring
from timnet.model import TimNetModel


def test_inference_batch_size_per_device() -> None:
    assert scoring.inference_batch_size("CPU") == CPU_INFERENCE_BATCH == 64
    assert scoring.inference_batch_size("gpu") == GPU_INFERENCE_BATCH >= 512
    assert scoring.inference_batch_size() == CPU_INFERENCE_BATCH  # the tests run without a GPU
    with pytest.raises(ValueError):
        scoring.inference_batch_size("TPU")


def test_predict_paths_use_the_default_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    model = TimNetModel.build(("a", "b", "c"), mean_signal_length=8000, architecture=None)
    x = np.random.default_rng(0).normal(size=(150, model.metadata.frames, 39)).astype(np.float32)
    expected = scoring.predict_array(model.keras_model, x, batch_size=1000)
    fn = scoring._predict_function(model.keras_model)
    sizes: list[int] = []
    monkeypatch.setitem(scoring._PREDICT_FUNCTIONS, model.keras_model, lambda batch: sizes.append(len(batch))
                        or fn(batch))
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-5, atol=1e-6)
    assert sizes == [64, 64, 22]
    sizes.clear()
    model.scores(x[:70])
    assert sizes == [1, 64, 6]  # the predictor traces with one utterance, then scores in batches of 64
    sizes.clear()
    assert TimNetModel(model.keras_model, model.metadata, batch_size=32).predict(x[:40]).shape == (40, 3)
    assert sizes == [32, 8]


def test_bench_inference_batch_reports_the_default(repo_root: Path) -> None:
    cmd = [sys.executable, str(repo_root / "benchmarks" / "bench_inference_batch.py"), "--utterances", "96",
           "--frames", "16", "--repeats", "1", "--batches", "16,256"]
    result = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = re.findall(r"^\s+(\d+) \|\s+[\d.]+ \|\s+(\d+)$", result.stdout, re.MULTILINE)
    assert [int(b) for b, _ in rows] == [16, 64, 256]
    assert re.search(r"best batch: (16|64|256) \(\d+ samples/s\)", result.stdout)
    assert re.search(r"project default on the CPU: batch 64 \(\d+ samples/s\), x\d+\.\d\d the speed of the fastest, "
                     r"x\d+\.\d\d that of batch 256", result.stdout)

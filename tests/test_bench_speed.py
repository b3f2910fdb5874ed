"""The speed benchmark runs end to end (tiny shapes) and prints every figure it promises."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def test_bench_speed_prints_ratios_and_epoch_figures(repo_root: Path) -> None:
    cmd = [sys.executable, str(repo_root / "benchmarks" / "bench_speed.py"), "--steps", "2", "--warmup", "1",
           "--predict_samples", "32", "--repeats", "1", "--frames", "24", "--n_mfcc", "6", "--batch_size", "8",
           "--dilation_size", "3", "--epoch_train", "16", "--epoch_val", "8", "--epochs", "1"]
    result = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert re.match(r"Device: (CPU|GPU)", out)
    assert re.search(r"speed-up:\s+train x\d+\.\d\d\s+inference x\d+\.\d\d", out)
    assert re.search(r"Whole epochs .* ours [\d.]+ utterances/s .* reference [\d.]+ .* x\d+\.\d\d", out)

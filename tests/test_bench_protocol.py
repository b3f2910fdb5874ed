"""The protocol benchmark runs end to end (tiny settings) and prints every figure it promises."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

NUMBER = r"(-?\d+\.\d+)"


def test_bench_protocol_prints_walls_fixed_costs_and_ratios(repo_root: Path, tmp_path: Path) -> None:
    folds, epochs = 2, 2  # the first 2 of 3 folds
    cmd = [sys.executable, str(repo_root / "benchmarks" / "bench_protocol.py"), "--epochs", str(epochs),
           "--folds", "3", "--max_folds", str(folds), "--utterances", "16", "--frames", "12", "--classes", "4", "--dilation_size", "1",
           "--batch_size", "8", "--no_progress", "--work_dir", str(tmp_path)]
    result = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert f"2 of 3 folds x {epochs} epochs, 16 generated utterances of (12, 39), 4 classes" in out
    figures = {}
    for name in ("ours", "reference"):
        m = re.search(rf"^{name}\s*: wall\s+{NUMBER} s; steady epoch\s+{NUMBER} s; fixed cost per fold\s+{NUMBER} s "
                      rf"= first epoch extra\s+{NUMBER} s \+ build, evaluation, outputs and start\s+{NUMBER} s$",
                      out, re.MULTILINE)
        assert m, out
        wall, steady, fixed, first, rest = map(float, m.groups())
        assert wall > 0 and steady > 0
        # The decomposition adds up (to the printed rounding) and matches the wall time.
        assert abs(first + rest - fixed) <= 0.02
        assert abs(folds * (epochs * steady + fixed) - wall) <= 0.05 * folds * epochs + 0.1
        figures[name] = (wall, steady, fixed)
    m = re.search(rf"ratio \(reference / ours\): wall x{NUMBER}, steady epoch x{NUMBER}, fixed cost per fold x{NUMBER}",
                  out)
    assert m, out
    ratios = list(map(float, m.groups()))
    for ratio, ours, reference in zip(ratios, figures["ours"], figures["reference"]):
        # The printed figures are rounded to 0.1 s (wall) or 0.01 s: the ratio lies within their bounds.
        low, high = (reference - 0.05) / (ours + 0.05), (reference + 0.05) / max(ours - 0.05, 1e-3)
        assert low - 0.01 <= ratio <= high + 0.01, (ratio, ours, reference)
    # The breakdown: per fold and per run, both columns, adding up to each wall time.
    assert "where the time goes" in out
    rows = {m[1].strip(): (m[2], m[4]) for m in re.finditer(rf"^    (\S.*?)\s+({NUMBER}|-)\s+({NUMBER}|-)$", out, re.MULTILINE)}
    for label in ("training steps", "validation (fit's pass)", "evaluation", "weights file every epoch",
                  "process start (imports, data)", ".keras files", "TensorBoard confusion image", "curves figure",
                  "confusion matrix figure", "t-SNE figure", "workbook", "process exit", "wall (run)"):
        assert label in rows, (label, out)
    for name, column in (("ours", 0), ("reference", 1)):
        assert float(rows["training steps"][column]) > 0 and float(rows["process start (imports, data)"][column]) > 0
        assert abs(float(rows["wall (run)"][column]) - figures[name][0]) <= 0.06
    assert rows["t-SNE figure"][1] == "-"  # the reference draws no figures
    # Both runs really ran the protocol: our run's reports, the reference's per-fold weights.
    assert len(list(tmp_path.glob("ours_1/results/*/metrics.json"))) == 1
    assert len(list(tmp_path.glob("reference_1/reference_models/*.weights.h5"))) == folds


def test_bench_protocol_rejects_one_epoch(repo_root: Path) -> None:
    cmd = [sys.executable, str(repo_root / "benchmarks" / "bench_protocol.py"), "--epochs", "1"]
    result = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "--epochs must be at least 2" in result.stderr

"""A fast start: ``--help`` and the command line's validation errors load none of the heavy
libraries (TensorFlow, scikit-learn, SciPy, librosa, matplotlib, ...), only what they need.

Each case runs the command in a fresh interpreter and reports which of those modules are in
``sys.modules`` when it exits. A check of what is imported, not a timing test
(``benchmarks/bench_start.py`` times the same commands).
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from helpers import REPO_ROOT, cli_env

HEAVY = ("tensorflow", "keras", "sklearn", "scipy", "pandas", "matplotlib", "librosa", "numba", "soundfile",
         "tensorboard", "openpyxl", "h5py", "onnxruntime", "numpy")
# Runs ``timnet`` (a module) or a script as its command line does, then prints the heavy modules loaded.
PROBE = """
import json, runpy, sys
entry, argv = sys.argv[1], sys.argv[2:]
sys.argv = [entry, *argv]
code = 0
try:
    if entry.endswith(".py"):
        runpy.run_path(entry, run_name="__main__")
    else:
        runpy.run_module(entry, run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
print("@@probe " + json.dumps({"code": code, "loaded": sorted(m for m in HEAVY if m in sys.modules)}))
""".replace("HEAVY", repr(HEAVY))

MAIN = str(REPO_ROOT / "Code" / "main.py")
MISSING = "/nonexistent/timnet-fast-start"
# (command line, exit code, heavy modules it may load: reading a feature file needs NumPy)
CASES: list[tuple[list[str], int, set[str]]] = [
    (["timnet", "--help"], 0, set()),
    (["timnet", "train", "--help"], 0, set()),
    (["timnet", "test", "--help"], 0, set()),
    (["timnet", "predict", "--help"], 0, set()),
    (["timnet", "cross-corpus", "--help"], 0, set()),
    (["timnet", "cross-corpus", "--corpora", f"{MISSING}.npy,{MISSING}2.npy"], 2, {"numpy"}),
    ([MAIN, "--help"], 0, set()),
    (["timnet", "train", "--epoch", "0"], 2, set()),
    ([MAIN, "--mode", "train", "--lr", "-1"], 2, set()),
    (["timnet", "train", "--data", f"{MISSING}.npy"], 2, {"numpy"}),
    ([MAIN, "--mode", "train", "--data", f"{MISSING}.npy"], 2, {"numpy"}),
    (["timnet", "test", "--data", f"{MISSING}.npy"], 2, {"numpy"}),
    ([MAIN, "--mode", "predict", "--wav", "x.wav"], 2, set()),
    (["timnet", "export", "--test_path", f"{MISSING}.keras", "--output", f"{MISSING}/x.keras"], 2, set()),
    (["timnet", "extract", "--corpus", "EMODB", "--input", MISSING], 2, set()),
    (["timnet", "mix", "--mfcc_dir", MISSING], 2, set()),
]


def probe(argv: list[str], cwd: Path) -> dict:
    entry = argv[0] if argv[0].endswith(".py") else "timnet"
    result = subprocess.run([sys.executable, "-c", PROBE, entry, *argv[1:]], cwd=cwd, env=cli_env(),
                            capture_output=True, text=True, timeout=120)
    lines = [line for line in result.stdout.splitlines() if line.startswith("@@probe ")]
    assert lines, result.stdout[-2000:] + result.stderr[-2000:]
    return {**json.loads(lines[-1].removeprefix("@@probe ")), "stderr": result.stderr}


@pytest.fixture(scope="module")
def probed(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    cwd = tmp_path_factory.mktemp("fast_start")
    with ThreadPoolExecutor(max_workers=4) as pool:  # separate interpreters, mostly waiting on imports
        return list(pool.map(lambda case: probe(case[0], cwd), CASES))


@pytest.mark.parametrize("index", range(len(CASES)),
                         ids=[" ".join(c[0]).replace(MAIN, "main.py").replace(MISSING, "MISSING") for c in CASES])
def test_help_and_validation_errors_load_no_heavy_library(probed: list[dict], index: int) -> None:
    argv, code, allowed = CASES[index]
    result = probed[index]
    assert result["code"] == code, result
    if code == 2:  # a validation error: one error line, no traceback
        assert "error:" in result["stderr"] and "Traceback" not in result["stderr"], result["stderr"]
    assert set(result["loaded"]) <= allowed, f"{' '.join(argv)} loaded {result['loaded']}"

"""How long the command line takes to start: ``--help`` and validation errors.

    python benchmarks/bench_start.py [--rounds 7] [--baseline OTHER_CHECKOUT/Code]

Issue 21, item 4. Runs each command below in a fresh interpreter (as a user does) and prints
its median wall time over ``--rounds`` rounds, the commands interleaved round by round. With
``--baseline`` (the ``Code`` folder of another checkout, e.g. an older commit unpacked with
``git archive``), the same commands with that code alternate with this checkout's, and the
ratio is printed too. ``tests/test_fast_start.py`` checks what these commands import.
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

REPO_ROOT = Path(__file__).resolve().parent.parent
MISSING = "/nonexistent/timnet-bench-start"
COMMANDS: dict[str, list[str]] = {
    "timnet --help": ["-m", "timnet", "--help"],
    "timnet train --help": ["-m", "timnet", "train", "--help"],
    "python Code/main.py --help": ["Code/main.py", "--help"],
    "timnet train --epoch 0 (a flag error)": ["-m", "timnet", "train", "--epoch", "0"],
    "timnet train --data MISSING.npy": ["-m", "timnet", "train", "--data", f"{MISSING}.npy"],
    "python Code/main.py --mode train --data MISSING.npy": ["Code/main.py", "--mode", "train", "--data",
                                                            f"{MISSING}.npy"],
    "timnet extract --input MISSING": ["-m", "timnet", "extract", "--corpus", "EMODB", "--input", MISSING],
}


def timed(args: list[str], code: Path, cwd: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(code), "TF_CPP_MIN_LOG_LEVEL": "2"}
    script = [str(REPO_ROOT / args[0])] + args[1:] if args[0].endswith(".py") else args
    start = time.perf_counter()
    subprocess.run([sys.executable, *script], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--rounds", type=int, default=7, help="rounds of every command; the median counts")
    p.add_argument("--baseline", default=None, help="the Code folder of another checkout to compare with")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    sides = {"this checkout": REPO_ROOT / "Code"}
    if args.baseline:
        baseline = Path(args.baseline).absolute()
        if not (baseline / "timnet" / "__init__.py").is_file():
            p.error(f"--baseline {baseline}: not a Code folder (no timnet/__init__.py in it)")
        sides = {"baseline": baseline, **sides}
    times: dict[tuple[str, str], list[float]] = {}
    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; {args.rounds} rounds", flush=True)
    with tempfile.TemporaryDirectory() as cwd:
        for _ in range(args.rounds):
            for name, command in COMMANDS.items():
                for side, code in sides.items():  # alternating
                    times.setdefault((name, side), []).append(timed(command, code, Path(cwd)))
    width = max(map(len, COMMANDS))
    for name in COMMANDS:
        medians = {side: statistics.median(times[(name, side)]) for side in sides}
        line = f"{name:<{width}}  " + "  ".join(f"{side} {t:5.2f} s" for side, t in medians.items())
        if args.baseline:
            line += f"  x{medians['baseline'] / medians['this checkout']:.1f}"
        print(line)
    print(f"load at end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

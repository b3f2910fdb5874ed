"""Fused temporal-aware block (TAB) forward as a C++ TensorFlow op vs the Keras layers.

    python benchmarks/bench_fused_tab.py [--batch 64] [--time 188] [--repeats 5] [--calls 20]

Issue 16, item 3: is one TAB stage, written as one C++ op (causal dilated conv as a
register-blocked AVX-512 matmul, batch norm, relu, spatial-dropout mask, second
conv/BN/relu/mask, sigmoid gate times the block input), at least 1.5x faster than the
project's Keras ops? Only then is the whole thing (gradient, BN updates) worth building.
This measures the FORWARD only, in training mode (batch statistics, dropout masks, moving
statistics updated, as a training step runs it) and in inference mode (moving statistics,
no dropout), both branches (forward and time-reversed) of one block, for every dilation
1..128 of the paper's network.

The op is compiled from ``benchmarks/fused_tab/fused_tab_op.cc`` with g++ against the
installed TensorFlow wheel's headers into ``benchmarks/out/fused_tab/`` (ignored by git).
Without g++ or the headers the script says so on one line and exits 0 (a failed
compilation exits 1).

Both sides run as ``tf.function`` graphs in one process, alternating, best of
``--repeats`` (each the mean of ``--calls`` calls). Outputs (and the moving-statistic
updates) are checked against the Keras block with the same weights, inputs and masks.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE = REPO_ROOT / "benchmarks" / "fused_tab" / "fused_tab_op.cc"
BUILD_DIR = REPO_ROOT / "benchmarks" / "out" / "fused_tab"

from timnet.network.layers import TemporalAwareBlock  # noqa: E402


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def build_op(verbose: bool = False, plain_loops: bool = False) -> tuple[Path | None, str]:
    """Compile the op (cached by source hash and flags). Returns (library, "") or (None, why).
    ``plain_loops``: without AVX-512, so the op's plain C++ loops (compiler-vectorised) run."""
    compiler = shutil.which(os.environ.get("CXX", "g++"))
    if compiler is None:
        return None, "g++ not found"
    include = Path(tf.sysconfig.get_include())
    if not (include / "tensorflow" / "core" / "framework" / "op_kernel.h").exists():
        return None, f"TensorFlow C++ headers not found under {include}"
    flags = ["-O3", "-shared", "-fPIC", "-Wno-deprecated-declarations", "-Wno-ignored-attributes",
             "-Wno-interference-size"]
    if platform.machine() in ("x86_64", "AMD64"):
        flags.append("-march=native")
        # TF's bundled Eigen does not compile with avx512fp16 enabled (gcc 12).
        if {"avx512fp16", "avx512_fp16"} & _cpu_flags():
            flags.append("-mno-avx512fp16")
        if plain_loops:
            flags.append("-mno-avx512f")
    flags += tf.sysconfig.get_compile_flags()
    link = tf.sysconfig.get_link_flags()
    key = hashlib.sha256((SOURCE.read_text() + " ".join(flags + link) + tf.__version__).encode()).hexdigest()[:12]
    library = BUILD_DIR / f"fused_tab_op_{key}.so"
    if library.exists():
        return library, ""
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    cmd = [compiler, *flags, str(SOURCE), "-o", str(library), *link]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        return None, f"compilation failed ({' '.join(cmd)}):\n{tail}"
    if verbose:
        print("built", library)
    return library, ""


def make_block(dilation: int, channels: int, batch: int, time_steps: int, rng: np.random.Generator
               ) -> TemporalAwareBlock:
    """A built two-branch TAB with random (not default) weights and moving statistics."""
    block = TemporalAwareBlock(channels, 2, dilation, 0.1, "relu", 2, name=f"tab_d{dilation}")
    block.build((2, batch, time_steps, channels))
    for layer in (block.conv_1, block.conv_2):
        layer.bias.assign(rng.normal(0, 0.1, layer.bias.shape).astype("float32"))
    for layer in (block.bn_1, block.bn_2):
        shape = layer.gamma.shape
        layer.gamma.assign(rng.uniform(0.5, 1.5, shape).astype("float32"))
        layer.beta.assign(rng.normal(0, 0.2, shape).astype("float32"))
        layer.moving_mean.assign(rng.normal(0, 0.3, shape).astype("float32"))
        layer.moving_variance.assign(rng.uniform(0.5, 2.0, shape).astype("float32"))
    return block


class FusedBlock:
    """The TAB forward through the C++ op, reading the Keras block's variables."""

    def __init__(self, module, block: TemporalAwareBlock) -> None:
        self.op = module.fused_tab_forward
        self.block = block

    def __call__(self, xs: list[tf.Tensor], training: bool, masks: list[list[tf.Tensor]] | None = None
                 ) -> list[tf.Tensor]:
        blk = self.block
        channels = blk.filters
        if training and masks is None:
            # Same draws as the Keras block: one (batch, 1, channels) uniform per branch and layer.
            masks = [blk.drop_1.mask_branches(xs, True), blk.drop_2.mask_branches(xs, True)]
        outs, stats = [], []
        for b, x in enumerate(xs):
            if training:
                m1 = tf.reshape(masks[0][b], (-1, channels))
                m2 = tf.reshape(masks[1][b], (-1, channels))
            else:
                m1 = m2 = tf.zeros((0,), x.dtype)
            y, mean1, var1, mean2, var2 = self.op(
                x,
                tf.reshape(blk.conv_1.kernel[b], (2 * channels, channels)), blk.conv_1.bias[b],
                blk.bn_1.gamma[b], blk.bn_1.beta[b], blk.bn_1.moving_mean[b], blk.bn_1.moving_variance[b], m1,
                tf.reshape(blk.conv_2.kernel[b], (2 * channels, channels)), blk.conv_2.bias[b],
                blk.bn_2.gamma[b], blk.bn_2.beta[b], blk.bn_2.moving_mean[b], blk.bn_2.moving_variance[b], m2,
                dilation=blk.dilation_rate, epsilon=blk.bn_1.epsilon, training=training,
            )
            outs.append(y)
            stats.append((mean1, var1, mean2, var2))
        if training:
            for i, bn in enumerate((blk.bn_1, blk.bn_2)):
                mean = tf.stack([s[2 * i] for s in stats])
                var = tf.stack([s[2 * i + 1] for s in stats])
                m = bn.momentum
                bn.moving_mean.assign(bn.moving_mean * m + mean * (1 - m))
                bn.moving_variance.assign(bn.moving_variance * m + var * (1 - m))
        return outs


def _bn_state(block: TemporalAwareBlock) -> list[np.ndarray]:
    return [v.numpy().copy() for bn in (block.bn_1, block.bn_2) for v in (bn.moving_mean, bn.moving_variance)]


def _set_bn_state(block: TemporalAwareBlock, state: list[np.ndarray]) -> None:
    for v, a in zip([v for bn in (block.bn_1, block.bn_2) for v in (bn.moving_mean, bn.moving_variance)], state):
        v.assign(a)


def check(block: TemporalAwareBlock, fused: FusedBlock, xs: list[tf.Tensor], rng: np.random.Generator
          ) -> tuple[float, float, float]:
    """Max |difference| of (training output, moving-statistic updates, inference output)."""
    batch, channels = xs[0].shape[0], block.filters
    rate = block.dropout
    masks = [[tf.constant((rng.uniform(size=(batch, 1, channels)) >= rate).astype("float32") / (1 - rate))
              for _ in xs] for _ in range(2)]
    state = _bn_state(block)
    # Keras block with these masks: its own call_branches, the mask draw replaced.
    block.drop_1.mask_branches = lambda inputs, training=None: masks[0]
    block.drop_2.mask_branches = lambda inputs, training=None: masks[1]
    try:
        want = [t.numpy() for t in block.call_branches(xs, training=True)]
    finally:
        del block.drop_1.mask_branches, block.drop_2.mask_branches
    want_state = _bn_state(block)
    _set_bn_state(block, state)
    got = [t.numpy() for t in fused(xs, True, masks)]
    got_state = _bn_state(block)
    _set_bn_state(block, state)
    train_diff = max(float(np.max(np.abs(w - g))) for w, g in zip(want, got))
    state_diff = max(float(np.max(np.abs(w - g))) for w, g in zip(want_state, got_state))
    want = [t.numpy() for t in block.call_branches(xs, training=False)]
    got = [t.numpy() for t in fused(xs, False)]
    infer_diff = max(float(np.max(np.abs(w - g))) for w, g in zip(want, got))
    return train_diff, state_diff, infer_diff


def timed(fn, xs, calls: int) -> float:
    """Mean seconds per call over ``calls`` calls (outputs fetched to the host at the end)."""
    start = time.perf_counter()
    out = None
    for _ in range(calls):
        out = fn(xs)
    _ = [o.numpy() for o in out]
    return (time.perf_counter() - start) / calls


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--time", type=int, default=188)
    p.add_argument("--channels", type=int, default=39)
    p.add_argument("--dilations", type=int, default=8, help="blocks with dilations 1, 2, ..., 2^(n-1)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--calls", type=int, default=20)
    p.add_argument("--tolerance", type=float, default=1e-4)
    p.add_argument("--plain_loops", action="store_true",
                   help="build the op without AVX-512 (its plain loops instead of the blocked matmul)")
    args = p.parse_args()

    library, why = build_op(plain_loops=args.plain_loops)
    if library is None:
        if why.startswith("compilation failed"):
            print(f"bench_fused_tab: {why}")
            return 1
        print(f"bench_fused_tab: skipped, cannot build the C++ op: {why}")
        return 0
    module = tf.load_op_library(str(library))
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    xs = [tf.constant(rng.normal(0, 1, (args.batch, args.time, args.channels)).astype("float32")) for _ in range(2)]
    dilations = [2**i for i in range(args.dilations)]
    print(f"TF {tf.__version__}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; "
          f"x per branch ({args.batch}, {args.time}, {args.channels}), 2 branches, op {library.name}")

    rows = []
    ok = True
    for d in dilations:
        block = make_block(d, args.channels, args.batch, args.time, rng)
        fused = FusedBlock(module, block)
        diffs = check(block, fused, xs, rng)
        ok &= max(diffs) <= args.tolerance
        fns = {
            ("keras", True): tf.function(lambda x, blk=block: blk.call_branches(x, training=True)),
            ("fused", True): tf.function(lambda x, f=fused: f(x, True)),
            ("keras", False): tf.function(lambda x, blk=block: blk.call_branches(x, training=False)),
            ("fused", False): tf.function(lambda x, f=fused: f(x, False)),
        }
        for fn in fns.values():  # trace and warm up
            timed(fn, xs, 3)
        best = {k: float("inf") for k in fns}
        for _ in range(args.repeats):
            for k, fn in fns.items():  # alternate
                best[k] = min(best[k], timed(fn, xs, args.calls))
        rows.append((d, diffs, best))

    print(f"{'dilation':>8} | {'train keras':>11} {'train fused':>11} {'ratio':>6} | "
          f"{'infer keras':>11} {'infer fused':>11} {'ratio':>6} | max|diff| train / BN update / infer")
    for d, diffs, best in rows:
        tk, tf_, ik, if_ = (best[("keras", True)], best[("fused", True)], best[("keras", False)],
                            best[("fused", False)])
        print(f"{d:>8} | {tk*1e3:9.2f}ms {tf_*1e3:9.2f}ms {tk/tf_:5.2f}x | {ik*1e3:9.2f}ms {if_*1e3:9.2f}ms "
              f"{ik/if_:5.2f}x | {diffs[0]:.2e} / {diffs[1]:.2e} / {diffs[2]:.2e}")
    total = {k: sum(best[k] for _, _, best in rows) for k in rows[0][2]}
    n = len(rows)
    print(f"{'mean':>8} | {total[('keras', True)]/n*1e3:9.2f}ms {total[('fused', True)]/n*1e3:9.2f}ms "
          f"{total[('keras', True)]/total[('fused', True)]:5.2f}x | {total[('keras', False)]/n*1e3:9.2f}ms "
          f"{total[('fused', False)]/n*1e3:9.2f}ms {total[('keras', False)]/total[('fused', False)]:5.2f}x |")
    train_ratio = total[("keras", True)] / total[("fused", True)]
    print(f"outputs equal within {args.tolerance:g}: {'yes' if ok else 'NO'}; training-mode forward ratio "
          f"{train_ratio:.2f}x -> {'>=' if train_ratio >= 1.5 else '<'} 1.5x rule: "
          f"{'build the gradient' if train_ratio >= 1.5 else 'do not build the gradient'}; "
          f"load at end {os.getloadavg()[0]:.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

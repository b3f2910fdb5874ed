"""Figures: the TIM-Net architecture diagram, training curves, confusion matrices
and t-SNE plots of the fused features.

Every function draws on its own ``matplotlib.figure.Figure`` (never pyplot's global
figure list), so drawing one figure per fold over many folds leaks nothing; the
Agg backend is selected explicitly so servers without a display work. Files are
written under a temporary name and renamed, so a reader never sees half a PNG.

The architecture diagram is this project's own drawing: it is generated from the
model definition (``TIMNET.build_timnet_model``), so it follows the code when the
hyper-parameters change.

CLI: ``python Code/figures.py architecture [--output Fig/architecture.png] ...``
"""

from __future__ import annotations

import io
import math
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib import patheffects  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from timnet.features.files import atomic_path  # noqa: E402

DPI = 100
_UMASK = os.umask(0)
os.umask(_UMASK)

# Box colours of the architecture diagram, one per role.
_C_INPUT = "#e6ecf5"
_C_FWD = "#d4e6f7"
_C_BWD = "#fbe2cf"
_C_CONV = "#e4e4e4"
_C_GAP = "#dcefd3"
_C_FUSION = "#ebdcf3"
_C_HEAD = "#fff0bf"
_C_EDGE = "#333333"
_FWD_TEXT = "#1f5f99"
_BWD_TEXT = "#b35a12"


def _save(fig: Figure, path: str | Path, dpi: float = DPI) -> Path:
    """Write ``fig`` as PNG atomically (creating parent folders) and drop it."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.15)
        tmp.chmod(0o666 & ~_UMASK)  # mkstemp makes 0600 files; figures are for sharing
    fig.clear()
    return path


# --------------------------------------------------------------------------------------
# Architecture diagram
# --------------------------------------------------------------------------------------


def _box(
    ax: Any,
    cx: float,
    cy: float,
    w: float,
    h: float,
    text: str,
    fc: str,
    fontsize: float = 11,
    weight: str = "normal",
    ec: str = _C_EDGE,
    lw: float = 1.2,
    color: str = "black",
) -> None:
    ax.add_patch(
        FancyBboxPatch(
            (cx - w / 2, cy - h / 2), w, h, boxstyle="round,pad=0,rounding_size=0.12",
            fc=fc, ec=ec, lw=lw, zorder=3,
        )
    )
    ax.text(cx, cy, text, ha="center", va="center", fontsize=fontsize, weight=weight, color=color, zorder=4,
            linespacing=1.25)


def _arrow(ax: Any, p0: tuple[float, float], p1: tuple[float, float], color: str = _C_EDGE, lw: float = 1.4,
           head: bool = True, zorder: float = 2, hop: bool = False) -> None:
    """An arrow (or a plain line); ``hop`` draws it over a white halo so lines it
    crosses visibly pass underneath instead of looking like a junction."""
    patch = FancyArrowPatch(
        p0, p1, arrowstyle="-|>" if head else "-", mutation_scale=15, color=color, lw=lw,
        shrinkA=0, shrinkB=0, zorder=zorder,
    )
    if hop:
        patch.set_path_effects([patheffects.withStroke(linewidth=7, foreground="white"), patheffects.Normal()])
    ax.add_patch(patch)


def _dot(ax: Any, x: float, y: float, color: str = _C_EDGE, zorder: float = 5) -> None:
    ax.add_patch(Circle((x, y), 0.07, fc=color, ec=color, zorder=zorder))


def _op(ax: Any, x: float, y: float, symbol: str, r: float = 0.22, fc: str = "white") -> None:
    """A circled operator (sum or product)."""
    ax.add_patch(Circle((x, y), r, fc=fc, ec=_C_EDGE, lw=1.3, zorder=4))
    ax.text(x, y, symbol, ha="center", va="center", fontsize=15, zorder=5)


def _shown_blocks(n: int, limit: int = 10) -> list[int | None]:
    """Indices of the blocks to draw; long chains keep both ends around an ellipsis."""
    if n <= limit:
        return list(range(n))
    head = (limit - 1) // 2 + 1
    tail = limit - 1 - head
    return [*range(head), None, *range(n - tail, n)]


def _count(weights: Sequence[Any]) -> int:
    return int(sum(int(np.prod(w.shape)) for w in weights))


def draw_architecture(
    path: str | Path,
    filters: int = 39,
    kernel_size: int = 2,
    dilation_size: int = 8,
    stack_size: int = 1,
    bidirection: bool = True,
    head: str = "softmax",
    num_classes: int = 7,
    input_shape: tuple[int, int] = (188, 39),
) -> Path:
    """Draw TIM-Net as built by ``TIMNET.build_timnet_model`` with these settings:
    the blocks, dilations, receptive field and parameter counts are read from the
    built model, not restated by hand."""
    from timnet.network import layers as TIMNET  # deferred: importing Keras/TensorFlow costs seconds

    model = TIMNET.build_timnet_model(
        tuple(input_shape), num_classes, head=head, filters=filters, kernel_size=kernel_size,
        stack_size=stack_size, dilation_size=dilation_size, bidirection=bidirection,
    )
    timnet = model.get_layer("timnet")
    blocks = list(timnet.blocks)
    n_scales = len(blocks)
    bi = bool(timnet.bidirection)
    k = int(timnet.kernel_size)
    n_filters = int(timnet.filters)
    time_steps, n_feat = int(input_shape[0]), int(input_shape[1])
    is_softmax = TIMNET.model_head(model) == "softmax"
    total = int(model.count_params())
    trainable = _count(model.trainable_weights)
    p_input = int(timnet.input_conv.count_params())
    p_blocks = int(sum(b.count_params() for b in blocks))
    p_fusion = int(model.get_layer("fusion").count_params())
    p_head = int(model.get_layer("dense").count_params()) if is_softmax else 0
    rf = int(timnet.receptive_field)
    dropout = float(blocks[0].dropout) if blocks else float(timnet.dropout)
    activation = str(blocks[0].activation if blocks else timnet.activation)
    act_label = {"relu": "ReLU", "elu": "ELU", "gelu": "GELU", "tanh": "tanh"}.get(activation, activation)

    # ---- geometry (data units; the axes have equal aspect) -------------------------
    bw, bh, pitch = 1.35, 1.1, 2.05
    y_f = 7.6
    y_b = 2.5 if bi else None
    y_sum = 5.25 if bi else 5.9
    bus_y = 3.95 if bi else 4.75
    y_mid = (y_f + y_b) / 2 if bi else y_f
    shown = _shown_blocks(n_scales)

    width_needed = 6.45 + len(shown) * pitch + 1.6 + 0.9 + 3.0 + 0.7 + 2.6 + 0.6 + 2.6
    fig_w_units = max(width_needed, 30.5)
    main_bottom = (y_b - 1.3) if bi else (bus_y - 0.9)
    panel_h = 4.3
    panel_top = main_bottom - 0.35
    panel_bottom = panel_top - panel_h
    caption_y = panel_bottom - 0.35
    y_top = y_f + 2.1
    y_lo = caption_y - 1.0
    scale = 0.62  # inches per unit
    fig = Figure(figsize=(fig_w_units * scale, (y_top - y_lo) * scale))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(-0.2, fig_w_units)
    ax.set_ylim(y_lo, y_top)
    ax.set_aspect("equal")
    ax.axis("off")

    variant = "bi-directional" if bi else "forward-only (--no-bidirection)"
    ax.text(
        -0.1, y_f + 1.75,
        f"TIM-Net, {variant}: temporal-aware multi-scale network for speech emotion recognition",
        fontsize=17, weight="bold", ha="left", va="center",
    )
    ax.text(
        -0.1, y_f + 1.2,
        f"filters = {n_filters},  kernel_size = {k},  dilation_size = {timnet.dilation_size},  "
        f"stack_size = {timnet.stack_size},  dropout = {dropout:g},  activation = {activation},  "
        f"head = {'softmax' if is_softmax else 'embedding'}",
        fontsize=12.5, ha="left", va="center", color="#444444",
    )

    # ---- input and the split into branches -----------------------------------------
    _box(ax, 0.85, y_mid, 1.7, 1.9, f"Input\nMFCC\n{time_steps} × {n_feat}\n(frames ×\ncoefficients)",
         _C_INPUT, fontsize=11, weight="normal")
    x_split = 2.05
    _arrow(ax, (1.7, y_mid), (x_split, y_mid), head=False)
    x_conv = 5.0
    conv_text = f"Conv1D 1×1\ncausal\n{n_filters} filters"
    if bi:
        _arrow(ax, (x_split, y_b), (x_split, y_f), head=False)
        _dot(ax, x_split, y_mid)
        _arrow(ax, (x_split, y_f), (x_conv - 0.75, y_f))
        ax.text(3.1, y_f + 0.22, "t = 1 … T", ha="center", va="bottom", fontsize=10.5, color=_FWD_TEXT)
        _box(ax, 3.1, y_b, 1.45, bh, "reverse\ntime", _C_BWD, fontsize=11)
        _arrow(ax, (x_split, y_b), (3.1 - 0.725, y_b))
        _arrow(ax, (3.1 + 0.725, y_b), (x_conv - 0.75, y_b))
        ax.text(x_split + 0.05, y_f + 0.72, "Forward branch", fontsize=13, weight="bold", color=_FWD_TEXT,
                ha="left", va="center")
        ax.text(x_split + 0.05, y_b - 0.95, "Backward branch: the time-reversed input through the same "
                "structure with its own weights", fontsize=13, weight="bold", color=_BWD_TEXT,
                ha="left", va="center")
        _box(ax, x_conv, y_b, 1.5, bh, conv_text, _C_CONV, fontsize=10)
    else:
        _arrow(ax, (x_split, y_f), (x_conv - 0.75, y_f))
        ax.text(x_split + 0.05, y_f + 0.72, "Forward branch (the only one)", fontsize=13, weight="bold",
                color=_FWD_TEXT, ha="left", va="center")
    _box(ax, x_conv, y_f, 1.5, bh, conv_text, _C_CONV, fontsize=10)

    # ---- the chain of temporal-aware blocks, per-scale sum and pooling -------------
    rows = [(y_f, _C_FWD)] + ([(y_b, _C_BWD)] if bi else [])
    x0 = 6.35
    prev_right = x_conv + 0.75
    gap_centres: list[tuple[float, int]] = []
    tap_xs: list[float] = []
    for i, idx in enumerate(shown):
        left = x0 + i * pitch
        cx = left + bw / 2
        if idx is None:
            for y, _ in rows:
                _arrow(ax, (prev_right, y), (left + 0.25, y), head=False)
                ax.text(cx, y, "⋯", ha="center", va="center", fontsize=22)
                _arrow(ax, (left + bw - 0.25, y), (left + pitch, y))
            ax.text(cx, y_f + bh / 2 + 0.1, f"{n_scales - len(shown) + 1} more\nblocks", ha="center",
                    va="bottom", fontsize=10, color="#555555")
            prev_right = left + bw
            continue
        block = blocks[idx]
        stack = idx // timnet.dilation_size
        label = f"TAB\nd = {block.dilation_rate}" if timnet.stack_size == 1 else \
            f"TAB s{stack + 1}\nd = {block.dilation_rate}"
        for y, colour in rows:
            if i == 0 or shown[i - 1] is not None:
                _arrow(ax, (prev_right, y), (left, y))
            _box(ax, cx, y, bw, bh, label, colour, fontsize=11.5)
        right = left + bw
        x_g = right + 0.3
        tap_xs.append(x_g)
        is_last = idx == n_scales - 1
        for y, _ in rows:
            if is_last:
                _arrow(ax, (right, y), (x_g, y), head=False)
            _dot(ax, x_g, y)
        gx = x_g + 0.42 + 0.5 if bi else x_g
        if bi:
            _op(ax, x_g, y_sum, "+", r=0.2)
            _arrow(ax, (x_g, y_f), (x_g, y_sum + 0.2))
            _arrow(ax, (x_g, y_b), (x_g, y_sum - 0.2))
            _arrow(ax, (x_g + 0.2, y_sum), (gx - 0.5, y_sum))
        else:
            _arrow(ax, (x_g, y_f), (x_g, y_sum + 0.31))
        _box(ax, gx, y_sum, 1.0, 0.62, "GAP", _C_GAP, fontsize=10.5)
        _arrow(ax, (gx, y_sum - 0.31), (gx, bus_y), head=False)
        _dot(ax, gx, bus_y)
        ax.text(gx + 0.1, (y_sum - 0.31 + bus_y) / 2 + 0.02, f"$g_{{{idx + 1}}}$", ha="left", va="center",
                fontsize=12)
        gap_centres.append((gx, idx))
        prev_right = right

    last_gap_right = gap_centres[-1][0] + 0.5
    fus_w, fus_h = 3.0, 2.9
    fus_cx = last_gap_right + 0.9 + fus_w / 2
    fus_cy = bus_y + 0.95
    _arrow(ax, (gap_centres[0][0], bus_y), (fus_cx - fus_w / 2, bus_y), lw=1.6, hop=True, zorder=2.5)
    _box(
        ax, fus_cx, fus_cy - 0.2, fus_w, fus_h - 0.4,
        f"$z=\\Sigma_{{j=1}}^{{{n_scales}}}\\, w_j\\,g_j$\n"
        f"learnt weights\n$w_1, \\dots, w_{{{n_scales}}}$\n"
        f"$z \\in \\mathbb{{R}}^{{{n_filters}}}$",
        _C_FUSION, fontsize=12,
    )
    ax.add_patch(
        FancyBboxPatch(
            (fus_cx - fus_w / 2, fus_cy + fus_h / 2 - 0.6), fus_w, 0.6, boxstyle="round,pad=0,rounding_size=0.12",
            fc=_C_FUSION, ec=_C_EDGE, lw=1.2, zorder=3,
        )
    )
    ax.text(fus_cx, fus_cy + fus_h / 2 - 0.3, "Dynamic fusion", ha="center", va="center", fontsize=12.5,
            weight="bold", zorder=4)
    head_w, head_h = 2.6, 2.0
    head_cx = fus_cx + fus_w / 2 + 0.7 + head_w / 2
    _arrow(ax, (fus_cx + fus_w / 2, fus_cy), (head_cx - head_w / 2, fus_cy))
    if is_softmax:
        head_text = f"Dense\n{n_filters} → {num_classes}\nsoftmax"
        out_text = f"class\nprobabilities\n({num_classes} emotions)"
    else:
        head_text = "L2-normalise\n$z\\,/\\,(\\|z\\|_2+\\epsilon)$"
        out_text = f"{n_filters}-d\nembedding\n(cosine to\nclass centroids)"
    _box(ax, head_cx, fus_cy, head_w, head_h, head_text, _C_HEAD, fontsize=12)
    out_x = head_cx + head_w / 2 + 0.6
    _arrow(ax, (head_cx + head_w / 2, fus_cy), (out_x, fus_cy))
    ax.text(out_x + 0.1, fus_cy, out_text, ha="left", va="center", fontsize=11.5)

    # Legend for the symbols of the middle band.
    sum_note = "+ : forward + backward output of the same block\n" if bi else ""
    ax.text(
        fus_cx - fus_w / 2, fus_cy + fus_h / 2 + 0.3,
        f"{sum_note}GAP: global average pooling over time\n"
        f"$g_j \\in \\mathbb{{R}}^{{{n_filters}}}$: one vector per scale (block j)",
        fontsize=11, ha="left", va="bottom", color="#333333", linespacing=1.4,
    )

    # ---- TAB detail panel -----------------------------------------------------------
    ax.add_patch(
        FancyBboxPatch(
            (-0.1, panel_bottom), fig_w_units - 0.1, panel_h, boxstyle="round,pad=0,rounding_size=0.25",
            fc="#f7f7f7", ec="#999999", lw=1.0, zorder=1,
        )
    )
    ax.text(
        0.2, panel_top - 0.4,
        f"Inside a temporal-aware block (TAB) with dilation d: the same for every scale"
        f"{' and branch' if bi else ''} "
        f"(dilation{'s' if len(timnet.dilations) > 1 else ''} {', '.join(str(d) for d in timnet.dilations)}"
        f"{'' if timnet.stack_size == 1 else f', repeated {timnet.stack_size}×'})",
        fontsize=13, weight="bold", ha="left", va="center",
    )
    row_y = panel_bottom + 1.55
    skip_y = row_y + 1.15
    x = 0.35
    ax.text(x, row_y, "x", fontsize=15, style="italic", ha="center", va="center")
    ax.text(x, row_y - 0.5, f"T × {n_filters}", fontsize=10, ha="center", va="center")
    start = x + 0.25
    _dot(ax, start + 0.15, row_y)
    conv_label = f"Conv1D k = {k}\ndilation d, causal\n{n_filters} filters"
    stages = [
        (conv_label, 2.35, _C_CONV),
        ("Batch\nNorm", 1.25, "white"),
        (act_label, 1.15, "white"),
        (f"Spatial\nDropout {dropout:g}", 1.75, "white"),
    ]
    stages = stages + stages + [("sigmoid\nσ", 1.3, _C_GAP)]
    cursor = start + 0.15
    gap = 0.42
    for text, w, colour in stages:
        _arrow(ax, (cursor, row_y), (cursor + gap, row_y))
        _box(ax, cursor + gap + w / 2, row_y, w, 1.15, text, colour, fontsize=10.5)
        cursor += gap + w
    mul_x = cursor + gap + 0.22
    _arrow(ax, (cursor, row_y), (mul_x - 0.22, row_y))
    _op(ax, mul_x, row_y, "×", r=0.22)
    _arrow(ax, (start + 0.15, row_y), (start + 0.15, skip_y), head=False)
    _arrow(ax, (start + 0.15, skip_y), (mul_x, skip_y), head=False)
    _arrow(ax, (mul_x, skip_y), (mul_x, row_y + 0.22))
    ax.text((start + mul_x) / 2, skip_y + 0.22, "the input, gated element-wise by the sigmoid of two "
            "causal dilated convolution stages", fontsize=10.5, ha="center", va="bottom", color="#444444")
    ax.text(start + 0.15, row_y - 1.05, "Both convolutions use the block's dilation d; every block"
            f"{' and every branch' if bi else ''} has its own weights; dropout acts only while training.", fontsize=10.5, ha="left", va="center",
            color="#444444")
    out_end = mul_x + 0.95
    _arrow(ax, (mul_x + 0.22, row_y), (out_end, row_y))
    ax.text(out_end + 0.1, row_y, f"x ⊙ σ(·)\nT × {n_filters}", fontsize=10.5, ha="left", va="center")

    # Dilated causal convolution: which past frames the last output depends on.
    demo_levels = min(4, max(1, len(timnet.dilations)))
    n_t = 2 ** demo_levels
    dx = 0.36
    demo_w = (n_t - 1) * dx
    demo_left = fig_w_units - 0.2 - max(demo_w / 2 + 0.35, 3.4) - demo_w / 2
    demo_bottom = panel_bottom + 0.45
    dy = (panel_h - 1.55) / demo_levels
    for lvl in range(demo_levels + 1):
        y = demo_bottom + lvl * dy
        for t in range(n_t):
            ax.add_patch(Circle((demo_left + t * dx, y), 0.07, fc="#bbbbbb", ec="none", zorder=3))
        name = "input" if lvl == 0 else f"d = {2 ** (lvl - 1)}"
        ax.text(demo_left - 0.25, y, name, fontsize=9.5, ha="right", va="center")
    active = {n_t - 1}
    for lvl in range(demo_levels, 0, -1):
        d = 2 ** (lvl - 1)
        below: set[int] = set()
        for t in active:
            for tap in range(k):
                s = t - tap * d
                if s >= 0:
                    below.add(s)
                    _arrow(ax, (demo_left + s * dx, demo_bottom + (lvl - 1) * dy),
                           (demo_left + t * dx, demo_bottom + lvl * dy), head=False, lw=1.0, color=_FWD_TEXT)
        for t in active:
            ax.add_patch(Circle((demo_left + t * dx, demo_bottom + lvl * dy), 0.09, fc=_FWD_TEXT, ec="none",
                                zorder=4))
        active = below
    for t in active:
        ax.add_patch(Circle((demo_left + t * dx, demo_bottom), 0.09, fc=_FWD_TEXT, ec="none", zorder=4))
    ax.text(demo_left + demo_w / 2, demo_bottom + demo_levels * dy + 0.35,
            f"causal dilated convolution, k = {k}\n(one conv per level shown; no future frames)",
            fontsize=10, ha="center", va="bottom")
    ax.text(demo_left + demo_w / 2, demo_bottom - 0.3, "time →", fontsize=9.5, ha="center", va="center")

    # ---- caption ------------------------------------------------------------------------
    dil = timnet.dilations
    dil_sum = " + ".join(str(d) for d in dil) if len(dil) <= 4 else f"{dil[0]} + {dil[1]} + … + {dil[-1]}"
    covers = "covers the whole input" if rf >= time_steps else "is SHORTER than the input: raise dilation_size"
    tabs = f"{n_scales} TAB{'s' if n_scales > 1 else ''}"
    branch_note = f"{tabs} × 2 branches" if bi else tabs
    head_note = f"dense head {p_head:,}" if is_softmax else "L2 head 0"
    caption = (
        f"Receptive field: 1 + 2·(k−1)·stack_size·({dil_sum}) = {rf} frames; for an input of "
        f"T = {time_steps} frames it {covers}. "
        f"Parameters: {total:,} in total ({trainable:,} trainable; the {total - trainable:,} others are "
        f"BatchNorm moving statistics): input 1×1 conv {p_input:,}, {branch_note} {p_blocks:,}, "
        f"fusion weights {p_fusion:,}, {head_note}. "
        "Drawn from the model built by TIMNET.build_timnet_model."
    )
    chars = int(fig_w_units * scale * 72 / (12.5 * 0.52))
    ax.text(-0.1, caption_y, textwrap.fill(caption, width=chars), fontsize=12.5, ha="left", va="top",
            linespacing=1.4)
    # Wide chains (many scales) are rendered at a lower resolution to stay ~2150 px wide.
    return _save(fig, path, dpi=min(DPI, 2150 / (fig_w_units * scale)))


# --------------------------------------------------------------------------------------
# Training curves
# --------------------------------------------------------------------------------------

# Colour per (split, metric): train blue, validation orange, UAR green; others cycle.
_CURVE_COLOURS = {
    ("train", "loss"): "#1f77b4", ("val", "loss"): "#ff7f0e",
    ("train", "accuracy"): "#1f77b4", ("val", "accuracy"): "#ff7f0e",
    ("train", "acc"): "#1f77b4", ("val", "acc"): "#ff7f0e",
    ("train", "uar"): "#98df8a", ("val", "uar"): "#2ca02c",
}
_EXTRA_COLOURS = ["#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
_PRETTY = {"uar": "UAR", "war": "WAR", "acc": "accuracy"}
_IGNORED_KEYS = {"lr", "learning_rate", "epoch_time"}  # not a score: seconds per epoch
_BEST_KEYS = ("val_uar", "val_accuracy", "val_acc")


def _series(history: dict[str, Sequence[float]], want_loss: bool) -> list[tuple[str, str, np.ndarray]]:
    """(split, metric, values) for the loss panel or the metric panel."""
    out = []
    for key, values in history.items():
        if key in _IGNORED_KEYS:
            continue
        arr = np.asarray(values, dtype=float).ravel()
        if arr.size == 0:
            continue
        split, base = ("val", key[4:]) if key.startswith("val_") else ("train", key)
        if ("loss" in base) == want_loss:
            out.append((split, base, arr))
    order = {"loss": 0, "accuracy": 1, "acc": 1, "uar": 2, "war": 3}
    return sorted(out, key=lambda s: (order.get(s[1], 9), s[1], s[0] == "val"))


def _plot_panel(ax: Any, series: list[tuple[str, str, np.ndarray]], title: str, ylabel: str,
                best: tuple[str, int, float] | None = None) -> None:
    ax.set_title(title, fontsize=11)
    if not series:
        ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="#777777")
        ax.set_xticks([])
        ax.set_yticks([])
        return
    longest = max(len(v) for _, _, v in series)
    for n_extra, (split, base, values) in enumerate(series):
        colour = _CURVE_COLOURS.get((split, base), _EXTRA_COLOURS[n_extra % len(_EXTRA_COLOURS)])
        ax.plot(
            np.arange(1, len(values) + 1), values, "-", color=colour, lw=1.5,
            marker="o" if longest <= 30 else None, ms=3.5, label=f"{split} {_PRETTY.get(base, base)}",
        )
    if best is not None:
        key, epoch, value = best
        ax.plot([epoch], [value], "*", color="#d62728", ms=13, mec="white", mew=0.8, zorder=5,
                label=f"best {key.replace('val_', 'val ').replace('uar', 'UAR')}")
    if longest <= 3:
        ax.set_xlim(0.5, longest + 0.5)
        ax.set_xticks(range(1, longest + 1))
    else:
        ax.set_xlim(1, longest)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
    ax.grid(alpha=0.3)
    ax.set_xlabel("epoch", fontsize=10)
    ax.set_ylabel(ylabel, fontsize=10)
    ax.tick_params(labelsize=9)


def _best(history: dict[str, Sequence[float]]) -> tuple[str, int, float] | None:
    """(key, 1-based epoch, value) of the best validation UAR, else accuracy."""
    for key in _BEST_KEYS:
        values = np.asarray(history.get(key, []), dtype=float).ravel()
        if values.size and np.isfinite(values).any():
            i = int(np.nanargmax(values))
            return key, i + 1, float(values[i])
    return None


def plot_curves(
    histories: list[dict[str, list[float]]], path: str | Path, titles: list[str] | None = None
) -> Path:
    """Loss and accuracy (and UAR when logged) per epoch, one row of panels per fold;
    more than three folds are laid out two folds per row so ten stay readable."""
    if not histories:
        raise ValueError("plot_curves needs at least one history")
    n = len(histories)
    titles = list(titles) if titles is not None else [f"Fold {i + 1}" for i in range(n)]
    if len(titles) != n:
        raise ValueError(f"{len(titles)} titles for {n} histories")
    per_row = 1 if n <= 3 else 2
    n_rows = math.ceil(n / per_row)
    fig = Figure(figsize=(12.0 if per_row == 1 else 21.0, 3.0 * n_rows + 0.9), layout="constrained")
    axes = fig.subplots(n_rows, 2 * per_row, squeeze=False)
    handles: dict[str, Any] = {}
    for i, history in enumerate(histories):
        r, c = divmod(i, per_row)
        best = _best(history)
        note = f" (best {best[0]} {best[2]:.3f} @ epoch {best[1]})" if best else ""
        ax_loss, ax_metric = axes[r, 2 * c], axes[r, 2 * c + 1]
        _plot_panel(ax_loss, _series(history, True), f"{titles[i]}: loss", "loss")
        _plot_panel(ax_metric, _series(history, False), f"{titles[i]}: accuracy / UAR{note}", "score", best)
        for ax in (ax_loss, ax_metric):
            for handle, label in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(label, handle)
    for j in range(n, n_rows * per_row):
        r, c = divmod(j, per_row)
        axes[r, 2 * c].axis("off")
        axes[r, 2 * c + 1].axis("off")
    if handles:
        fig.legend(list(handles.values()), list(handles.keys()), loc="outside upper center",
                   ncol=min(len(handles), 7), fontsize=10.5, frameon=False)
    return _save(fig, path)


# --------------------------------------------------------------------------------------
# Confusion matrix
# --------------------------------------------------------------------------------------


def _annotate(ax: Any, values: np.ndarray, texts: list[list[str]], image: Any, fontsize: float) -> None:
    norm = image.norm
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            v = values[i, j]
            dark = np.isfinite(v) and norm(v) > 0.55
            ax.text(j, i, texts[i][j], ha="center", va="center", fontsize=fontsize,
                    color="white" if dark else "black")


def plot_confusion_matrix(cm: np.ndarray, class_labels: list[str], path: str | Path, title: str = "",
                          row_labels: list[str] | None = None) -> Path:
    """Counts and row-normalised recall (%) side by side, with the overall
    accuracy and UAR in the title. ``row_labels``: the true classes, when they are only
    some of the predicted ``class_labels`` (a model tested on a corpus with other classes)."""
    return _save(confusion_figure(cm, class_labels, title, row_labels), path)


def confusion_png(cm: np.ndarray, class_labels: list[str], title: str = "", row_labels: list[str] | None = None) -> bytes:
    """The figure of :func:`plot_confusion_matrix` as PNG bytes (for TensorBoard)."""
    fig = confusion_figure(cm, class_labels, title, row_labels)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.15)
    fig.clear()
    return buffer.getvalue()


def confusion_figure(cm: np.ndarray, class_labels: list[str], title: str = "",
                     row_labels: list[str] | None = None) -> Figure:
    """The confusion matrix figure: counts and row-normalised recall (%); columns of
    ``class_labels`` that are not among ``row_labels`` are predicted-only."""
    cm = np.asarray(cm)
    k = len(class_labels)
    row_labels = list(class_labels) if row_labels is None else list(row_labels)
    kr = len(row_labels)
    if cm.ndim != 2 or cm.shape != (kr, k) or not set(row_labels) <= set(class_labels):
        raise ValueError(f"confusion matrix of shape {cm.shape} does not match {kr} true and {k} predicted classes")
    if (cm < 0).any():
        raise ValueError("confusion matrix has negative counts")
    column_of_row = [list(class_labels).index(c) for c in row_labels]
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support[:, None] > 0, 100.0 * cm / support[:, None], np.nan)
    total = cm.sum()
    correct = cm[np.arange(kr), column_of_row]
    acc = 100.0 * correct.sum() / total if total else float("nan")
    diagonal = recall[np.arange(kr), column_of_row]
    uar = float(np.nanmean(diagonal)) if np.isfinite(diagonal).any() else float("nan")

    side = max(4.8, 0.62 * max(k, kr) + 2.6)
    fig = Figure(figsize=(2 * side + 1.8, side + 0.9), layout="constrained")
    ax_c, ax_r = fig.subplots(1, 2)
    fontsize = max(7.0, min(12.0, 15.0 - 0.6 * k))
    is_int = np.issubdtype(cm.dtype, np.integer) or np.allclose(cm, np.round(cm))
    count_text = [[f"{int(round(v))}" if is_int else f"{v:.1f}" for v in row] for row in cm]
    recall_text = [["–" if not np.isfinite(v) else f"{v:.0f}" if v >= 10 or v == 0 else f"{v:.1f}" for v in row]
                   for row in recall]
    y_labels = [f"{name} (n={int(round(s))})" for name, s in zip(row_labels, support)]
    x_labels = [name if name in row_labels else f"{name} (predicted only)" for name in class_labels]
    for ax, values, texts, cmap, label, vmax in (
        (ax_c, cm.astype(float), count_text, "Blues", "count", max(float(cm.max()), 1.0)),
        (ax_r, recall, recall_text, "Greens", "recall per true class (%)", 100.0),
    ):
        image = ax.imshow(np.nan_to_num(values, nan=0.0), cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest")
        _annotate(ax, values, texts, image, fontsize)
        ax.set_xticks(range(k), x_labels, rotation=40, ha="right", rotation_mode="anchor", fontsize=10)
        ax.set_yticks(range(kr), y_labels if ax is ax_c else row_labels, fontsize=10)
        ax.set_xlabel("predicted class", fontsize=11)
        ax.set_ylabel("true class", fontsize=11)
        ax.set_xticks(np.arange(-0.5, k, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, kr, 1), minor=True)
        ax.grid(which="minor", color="white", lw=1)
        ax.tick_params(which="minor", length=0)
        bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
        bar.set_label(label, fontsize=10)
    ax_c.set_title("counts", fontsize=12)
    ax_r.set_title("row-normalised: recall (%)", fontsize=12)
    summary = f"accuracy (WA) {acc:.2f}%,  UAR {uar:.2f}%,  {int(total)} utterances"
    fig.suptitle(f"{title}\n{summary}" if title else summary, fontsize=13)
    return fig


def plot_matrix(values: np.ndarray, row_labels: list[str], col_labels: list[str], path: str | Path,
                title: str = "", texts: list[list[str]] | None = None, xlabel: str = "", ylabel: str = "",
                label: str = "UAR") -> Path:
    """A heatmap of scores in [0, 1] (say, cross-corpus UAR: rows train, columns test);
    NaN cells (a corpus against itself) stay blank. Written atomically."""
    values = np.asarray(values, dtype=float)
    if values.shape != (len(row_labels), len(col_labels)):
        raise ValueError(f"matrix of shape {values.shape} does not match {len(row_labels)} x {len(col_labels)} labels")
    texts = texts or [["" if not np.isfinite(v) else f"{v:.3f}" for v in row] for row in values]
    side = max(4.5, 1.1 * max(values.shape) + 2.5)
    fig = Figure(figsize=(side + 1.2, side), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):  # viridis is dark at the low end: white text there
            dark = np.isfinite(values[i, j]) and values[i, j] < 0.55
            ax.text(j, i, texts[i][j], ha="center", va="center", fontsize=11, color="white" if dark else "black")
    ax.set_xticks(range(len(col_labels)), col_labels, rotation=30, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(len(row_labels)), row_labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03).set_label(label)
    if title:
        ax.set_title("\n".join(textwrap.wrap(title, 60)), fontsize=11)
    return _save(fig, path)


# --------------------------------------------------------------------------------------
# t-SNE
# --------------------------------------------------------------------------------------


def tsne_perplexity(n: int) -> float:
    """sklearn's default 30 is too large for a small test fold: use at most a third
    of the neighbours, at least 2, and always below the sample count."""
    return float(min(max(min(30.0, (n - 1) / 3.0), 2.0), n - 1))


def tsne_embedding(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """The 2-D t-SNE embedding :func:`plot_tsne` draws (it may be computed beforehand, in
    another thread, while other figures are drawn). One thread: scikit-learn's OpenMP
    threads spin while they wait, and on a shared or busy machine that made the embedding
    10 to 40 times slower (36 s instead of 0.8 s for 108 points on 2 loaded cores)."""
    from sklearn.manifold import TSNE  # deferred: sklearn's import is slow
    from threadpoolctl import threadpool_limits

    x = np.asarray(features, dtype=np.float64)
    x = x.reshape(len(x), -1)
    perplexity = tsne_perplexity(len(x))
    init = "pca" if min(x.shape) >= 2 else "random"
    with threadpool_limits(limits=1):
        return TSNE(n_components=2, perplexity=perplexity, init=init, learning_rate="auto",
                    random_state=seed).fit_transform(x)


def plot_tsne(
    features: np.ndarray,
    labels: np.ndarray,
    class_labels: list[str],
    path: str | Path,
    seed: int = 0,
    title: str = "",
    embedding: np.ndarray | None = None,
) -> Path:
    """2-D t-SNE of the fused features coloured by true class. ``labels`` are class
    indices or one-hot rows; ``embedding``: :func:`tsne_embedding` of the same features
    and seed, when already computed."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim < 2:
        raise ValueError(f"features must be (samples, dims), got shape {x.shape}")
    x = x.reshape(len(x), -1)
    y = np.asarray(labels)
    if y.ndim == 2:
        y = y.argmax(axis=1)
    y = y.astype(int).ravel()
    n = len(x)
    if len(y) != n:
        raise ValueError(f"{n} feature rows but {len(y)} labels")
    if n < 3:
        raise ValueError(f"t-SNE needs at least 3 samples, got {n}")
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or infinite values")
    if y.min() < 0 or y.max() >= len(class_labels):
        raise ValueError(f"labels outside 0..{len(class_labels) - 1}")
    perplexity = tsne_perplexity(n)
    emb = tsne_embedding(x, seed) if embedding is None else np.asarray(embedding)

    k = len(class_labels)
    palette = matplotlib.colormaps["tab10" if k <= 10 else "tab20"]
    markers = "os^Dv<>PX*"
    fig = Figure(figsize=(9.5, 7.2), layout="constrained")
    ax = fig.subplots()
    for c, name in enumerate(class_labels):
        sel = y == c
        if not sel.any():
            continue
        ax.scatter(emb[sel, 0], emb[sel, 1], s=36 if n > 300 else 60, color=palette(c % palette.N),
                   marker=markers[c % len(markers)], edgecolor="white", linewidth=0.6, alpha=0.9,
                   label=f"{name} ({int(sel.sum())})")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("t-SNE 1", fontsize=11)
    ax.set_ylabel("t-SNE 2", fontsize=11)
    fig.legend(title="true class", loc="outside right upper", fontsize=10, title_fontsize=10, frameon=False)
    subtitle = f"t-SNE of {n} fused {x.shape[1]}-d features (perplexity {perplexity:.1f}, seed {seed})"
    ax.set_title(f"{title}\n{subtitle}" if title else subtitle, fontsize=12)
    return _save(fig, path)

"""The figures: each function writes a valid, decently sized PNG atomically, for
the edge cases a real run produces (one fold, a one-epoch history, missing
validation keys, a tiny test fold for t-SNE, both TIM-Net variants and heads)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from timnet import cli  # noqa: E402
from timnet.evaluation import figures  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CLASSES = ["angry", "boredom", "disgust", "fear", "happy"]


def check_png(path: Path, min_width: int = 600, min_bytes: int = 10_000) -> np.ndarray:
    assert path.is_file(), path
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert path.stat().st_size > min_bytes, path.stat().st_size
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[1] >= min_width, image.shape
    # Only the finished file: no temporary files left beside it.
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []
    assert plt.get_fignums() == []
    return image


def history(epochs: int, val: bool = True, uar: bool = False) -> dict[str, list[float]]:
    e = np.arange(epochs, dtype=float)
    h = {"loss": list(2.0 * np.exp(-e / 10)), "accuracy": list(1 - 0.8 * np.exp(-e / 8))}
    if val:
        h["val_loss"] = list(2.1 * np.exp(-e / 12))
        h["val_accuracy"] = list(1 - 0.85 * np.exp(-e / 9))
    if uar:
        h["val_uar"] = list(1 - 0.9 * np.exp(-e / 9))
    return h


@pytest.mark.slow
@pytest.mark.parametrize(
    "kwargs",
    [
        {"dilation_size": 3},
        {"dilation_size": 3, "bidirection": False, "head": "embedding"},
        {"dilation_size": 6, "stack_size": 2, "num_classes": 4},  # 12 blocks: the chain is elided
    ],
)
def test_architecture(tmp_path: Path, kwargs: dict) -> None:
    out = tmp_path / "fig" / "architecture.png"
    assert figures.draw_architecture(out, **kwargs) == out
    image = check_png(out, min_width=1400)
    assert image.shape[1] <= 2300  # readable at its native size


def test_shown_blocks_keeps_both_ends() -> None:
    assert figures._shown_blocks(8) == list(range(8))
    shown = figures._shown_blocks(16)
    assert len(shown) == 10 and shown[0] == 0 and shown[-1] == 15 and None in shown


@pytest.mark.parametrize("n_folds", [1, 3, 10])
def test_curves(tmp_path: Path, n_folds: int) -> None:
    histories = [history(40, uar=True), history(1), history(15, val=False)] * 4
    histories = histories[:n_folds]
    out = tmp_path / "curves.png"
    assert figures.plot_curves(histories, out) == out
    check_png(out)


def test_curves_titles_and_empty_history(tmp_path: Path) -> None:
    out = tmp_path / "curves.png"
    figures.plot_curves([history(5), {}], out, titles=["speaker 03", "speaker 08"])
    check_png(out)
    with pytest.raises(ValueError):
        figures.plot_curves([history(5)], out, titles=["a", "b"])
    with pytest.raises(ValueError):
        figures.plot_curves([], out)


def test_confusion_matrix(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    cm = rng.integers(0, 6, (5, 5)) + np.diag([20, 15, 30, 0, 12])
    cm[3] = 0  # a class absent from the test fold: recall undefined, not a crash
    out = tmp_path / "sub" / "cm.png"
    assert figures.plot_confusion_matrix(cm, CLASSES, out, title="EMODB fold 1") == out
    check_png(out)
    with pytest.raises(ValueError):
        figures.plot_confusion_matrix(cm, CLASSES[:4], out)


@pytest.mark.parametrize("n", [8, 12])
def test_tsne_small(tmp_path: Path, n: int) -> None:
    rng = np.random.default_rng(1)
    labels = np.arange(n) % 4
    features = rng.normal(size=(n, 39)) + 3 * labels[:, None]
    out = tmp_path / "tsne.png"
    assert figures.plot_tsne(features, labels, CLASSES[:4], out, seed=0, title="fold 1") == out
    check_png(out)


def test_tsne_one_hot_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    labels = np.eye(5)[np.arange(12) % 5]
    out = tmp_path / "tsne.png"
    figures.plot_tsne(rng.normal(size=(12, 39)), labels, CLASSES, out)
    check_png(out)
    with pytest.raises(ValueError):
        figures.plot_tsne(rng.normal(size=(12, 39)), np.arange(12) % 7, CLASSES, out)


def test_tsne_perplexity() -> None:
    assert figures.tsne_perplexity(1000) == 30.0
    assert figures.tsne_perplexity(12) == pytest.approx(11 / 3)
    assert figures.tsne_perplexity(8) == pytest.approx(7 / 3)
    assert figures.tsne_perplexity(6) == 2.0
    assert figures.tsne_perplexity(3) == 2.0
    for n in range(3, 100):
        assert 2.0 <= figures.tsne_perplexity(n) < n


@pytest.mark.slow
def test_cli_architecture(tmp_path: Path) -> None:
    out = tmp_path / "a.png"
    assert cli.main(["figures", "architecture", "--output", str(out), "--dilation_size", "3", "--no_bidirection"]) == 0
    check_png(out)

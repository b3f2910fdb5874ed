"""Training recipes: the hyper-parameters of the seed (fork) and of the paper.

Kept out of the training code (SpeechBrain style). A flag given on the command
line always wins over the recipe's value.
"""

from __future__ import annotations

from typing import Any

RECIPES: dict[str, dict[str, Any]] = {
    # The fork this project was created from: N-pair loss, 90/10 hold-out,
    # checkpoint on the best validation loss.
    "seed": {
        "loss": "npair",
        "protocol": "holdout",
        "dropout": 0.5,
        "epoch": 60,
        "batch_size": 64,
        "label_smoothing": 0.0,
    },
    # The ICASSP 2023 paper: softmax head, label smoothing 0.1, 10-fold CV,
    # last-epoch weights of every fold.
    "paper": {
        "loss": "ce",
        "protocol": "kfold",
        "dropout": 0.1,
        "epoch": 500,
        "batch_size": 64,
        "label_smoothing": 0.1,
    },
}
DEFAULT_RECIPE = "seed"


def recipe_defaults(name: str, loss: str | None = None) -> dict[str, Any]:
    """Defaults of a recipe. ``loss`` picks label smoothing when it differs from the
    recipe's (cross-entropy is always smoothed by 0.1, as in the paper)."""
    values = dict(RECIPES[name])
    if loss is not None and loss != values["loss"]:
        values["label_smoothing"] = 0.1 if loss == "ce" else 0.0
    return values

"""Workarounds for private Keras/TensorFlow APIs: the only module that touches them.

Each workaround names the versions it was checked on. On an unchecked version it is
still applied when the private names it needs exist (with one warning), and raises a
clear error when they do not, instead of failing somewhere inside Keras.
"""

from __future__ import annotations

import warnings
from typing import Any

import keras

from timnet.errors import UserError

# Keras releases on which the workarounds below were run and tested (with TensorFlow 2.21).
CHECKED_KERAS = ("3.15",)
_warned: set[str] = set()


def _keras_minor() -> str:
    return ".".join(keras.__version__.split(".")[:2])


def _check_version(what: str) -> None:
    if _keras_minor() not in CHECKED_KERAS and what not in _warned:
        _warned.add(what)
        warnings.warn(f"{what}: a workaround for Keras {', '.join(CHECKED_KERAS)} applied to Keras "
                      f"{keras.__version__}; report a failure with both versions", RuntimeWarning, stacklevel=3)


def _missing(what: str, name: str) -> UserError:
    return UserError(f"{what} needs Keras {' or '.join(CHECKED_KERAS)} (this is Keras {keras.__version__}, which "
                     f"lacks {name}): install keras=={CHECKED_KERAS[-1]}.*")


def patch_multi_worker_reduce() -> None:
    """Keras 3's fit/evaluate average the per-step logs of a multi-worker run with
    ``strategy.reduce("MEAN", v, axis=0)``, which fails on the scalar loss and metrics
    ("Invalid reduction dimension 0 for input with 0 dimensions", tensorflow#72388).
    Scalars are averaged over the workers without an axis; everything else goes to
    Keras unchanged. Applied once, only when a multi-worker strategy is made.
    Private names: ``keras.src.backend.tensorflow.trainer.reduce_per_replica`` and
    ``_collective_all_reduce_multi_worker``; ``keras.src.tree.map_structure``."""
    what = "multi-worker training"
    try:
        from keras.src import tree
        from keras.src.backend.tensorflow import trainer
    except ImportError as exc:
        raise _missing(what, exc.name or "keras.src.backend.tensorflow.trainer") from None
    for name in ("reduce_per_replica", "_collective_all_reduce_multi_worker"):
        if not hasattr(trainer, name):
            raise _missing(what, f"trainer.{name}")
    original = trainer.reduce_per_replica
    if getattr(original, "timnet_patched", False):
        return
    _check_version(what)

    def reduce_per_replica(values: Any, strategy: Any, reduction: str) -> Any:  # Keras' signature
        if reduction not in ("auto", "mean") or not trainer._collective_all_reduce_multi_worker(strategy):
            return original(values, strategy, reduction)

        def one(v: Any) -> Any:
            if getattr(v, "shape", None) is not None and v.shape.rank == 0:
                return strategy.reduce("MEAN", v, axis=None)
            return original(v, strategy, reduction)

        return tree.map_structure(one, values)

    reduce_per_replica.timnet_patched = True  # type: ignore[attr-defined]
    trainer.reduce_per_replica = reduce_per_replica


def prebuild_for_multi_worker(model: keras.Model, batch: tuple[Any, Any]) -> None:
    """Keras 3 builds optimizer and metrics on a batch it first reduces across replicas,
    a reduction MultiWorkerMirroredStrategy cannot do on an (x, y) pair. Build them
    here on a local batch instead and skip that step in fit/evaluate.
    Private name: ``Model._maybe_symbolic_build``."""
    what = "multi-worker training"
    if not hasattr(model, "_maybe_symbolic_build"):
        raise _missing(what, "Model._maybe_symbolic_build")
    _check_version(what)
    model._maybe_symbolic_build(data_batch=(batch[0], batch[1], None))
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None

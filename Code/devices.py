"""Device selection (``--gpu``) and the distribution strategy that follows from it."""

from __future__ import annotations

import json
import logging
import os

import tensorflow as tf

from errors import UserError

logger = logging.getLogger(__name__)


def parse_gpu_list(gpu: str | None) -> list[int] | None:
    """``"0"`` -> [0]; ``"0,1"`` -> [0, 1]; ``"-1"``/``"cpu"``/``""`` -> [] (CPU only)."""
    if gpu is None:
        return None
    text = str(gpu).strip().lower()
    if text in ("", "-1", "cpu", "none"):
        return []
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--gpu '{gpu}': expected a device index or a comma-separated list such as 0,1") from None


def configure_devices(gpu: str | None = "0", quiet: bool = False) -> tf.distribute.Strategy:
    """Make the requested GPUs visible (with memory growth) and return the strategy:
    multi-worker mirrored when ``TF_CONFIG`` names a cluster, mirrored for several
    GPUs, else the default (one device). With no GPU, say once that the CPU is used."""
    wanted = parse_gpu_list(gpu)
    gpus = tf.config.list_physical_devices("GPU")
    selected = []
    if wanted is None:
        selected = gpus
    else:
        for i in wanted:
            if i < len(gpus):
                selected.append(gpus[i])
            elif gpus:
                raise UserError(f"--gpu {gpu}: GPU {i} does not exist (found {len(gpus)} GPU(s))")
    try:
        tf.config.set_visible_devices(selected, "GPU")
        for device in selected:
            tf.config.experimental.set_memory_growth(device, True)
    except RuntimeError:
        pass  # devices already initialised (tests that build several models in one process)
    if not selected and not quiet:
        print("No GPU in use: running on the CPU.")
    if _multi_worker_cluster():
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(selected) > 1:
        return tf.distribute.MirroredStrategy([f"/gpu:{i}" for i in range(len(selected))])
    return tf.distribute.get_strategy()


def _multi_worker_cluster() -> bool:
    config = os.environ.get("TF_CONFIG")
    if not config:
        return False
    try:
        cluster = json.loads(config).get("cluster", {})
    except json.JSONDecodeError:
        raise UserError("TF_CONFIG is not valid JSON (see README, 'Several machines')") from None
    return sum(len(v) for v in cluster.values()) > 1


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Only the chief writes checkpoints, logs and reports in a multi-worker run."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "chief" or (not has_chief and task_type == "worker" and task_id == 0)

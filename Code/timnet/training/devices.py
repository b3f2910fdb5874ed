"""Device selection (``--gpu``) and the distribution strategy that follows from it."""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import tensorflow as tf

from timnet import keras_compat
from timnet.config import parse_gpu_list
from timnet.errors import UserError

logger = logging.getLogger(__name__)


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
    if wanted and not gpus:
        print(f"warning: --gpu {gpu}: this machine has no GPU that TensorFlow can use; running on the CPU "
              "(--gpu -1 chooses the CPU without this warning)", file=sys.stderr)
    elif not selected and not quiet:
        print("No GPU in use: running on the CPU.")
    if _multi_worker_cluster():
        keras_compat.patch_multi_worker_reduce()
        return tf.distribute.MultiWorkerMirroredStrategy()
    return strategy_for_devices([f"/gpu:{i}" for i in range(len(selected))])


def strategy_for_devices(devices: Sequence[str]) -> tf.distribute.Strategy:
    """Mirrored over several devices (one replica each; every global batch is split
    between them, gradients and batch-norm statistics are summed over all), else the
    default strategy. ``devices`` are TensorFlow device names: the visible GPUs for
    ``--gpu 0,1``; logical CPUs (``/cpu:0``, ``/cpu:1``) run the same path without a GPU."""
    if len(devices) > 1:
        return tf.distribute.MirroredStrategy(list(devices))
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


WORKER_DIR_ENV = "TIMNET_WORKER_DIR"


def worker_scratch_dir(strategy: tf.distribute.Strategy) -> Path:
    """Where a non-chief worker writes its copies of the checkpoints: every worker must
    save (Keras and our best-epoch reload need the file) but only the chief's files
    count. ``$TIMNET_WORKER_DIR/<task>_<id>`` when set (kept, e.g. to compare the
    workers' weights), else a temporary folder deleted at exit."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task = f"{getattr(resolver, 'task_type', None) or 'worker'}_{getattr(resolver, 'task_id', None) or 0}"
    root = os.environ.get(WORKER_DIR_ENV)
    if root:
        path = Path(root) / task
        path.mkdir(parents=True, exist_ok=True)
        return path
    path = Path(tempfile.mkdtemp(prefix=f"timnet_{task}_"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path

"""Two CLI workers on 127.0.0.1 train one model with MultiWorkerMirroredStrategy: both end
with the same weights, and only the chief writes the run folder and reports."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from timnet.features.files import write_npy_dict
from timnet.modelfiles.keras2 import read_weight_file

TIMEOUT_S = 240


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _tiny_features(path: Path) -> None:
    rng = np.random.default_rng(0)
    n, classes = 48, 4
    labels = np.arange(n) % classes
    x = rng.standard_normal((n, 20, 39)).astype(np.float32) + labels[:, None, None] * 0.5
    write_npy_dict(path, {"x": x, "y": np.eye(classes, dtype=np.float32)[labels],
                          "class_labels": np.array(["a", "b", "c", "d"])})


def _weights(path: Path) -> list[np.ndarray]:
    return [np.asarray(w) for layer in read_weight_file(path).layer_order for w in layer.weights]


def test_two_workers_train_identically(tmp_path: Path, repo_root: Path) -> None:
    data = tmp_path / "tiny.npy"
    _tiny_features(data)
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for i in range(2):
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2",
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
               "TIMNET_WORKER_DIR": str(tmp_path / "scratch")}
        cmd = [sys.executable, str(repo_root / "Code" / "main.py"), "--mode", "train", "--data", str(data),
               "--gpu", "-1", "--epoch", "1", "--batch_size", "16", "--dilation_size", "2", "--dropout", "0.1",
               "--histogram_freq", "0", "--no_figures",
               "--model_path", str(tmp_path / f"models_{i}"), "--result_path", str(tmp_path / f"results_{i}")]
        log = open(tmp_path / f"worker_{i}.log", "w")
        procs.append((subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT), log))
    deadline = time.monotonic() + TIMEOUT_S
    try:
        for proc, _ in procs:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        for proc, log in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
    logs = [(tmp_path / f"worker_{i}.log").read_text() for i in range(2)]
    for i, (proc, _) in enumerate(procs):
        assert proc.returncode == 0, f"worker {i} failed (rc {proc.returncode}):\n{logs[i][-3000:]}"

    chief_runs = list((tmp_path / "models_0").glob("*/weights_best.hdf5"))
    assert len(chief_runs) == 1, logs[0][-2000:]
    assert list((tmp_path / "results_0").glob("*/metrics.json")), "the chief wrote no report"
    # The non-chief wrote nothing where a run's outputs go, only its scratch copy.
    assert not (tmp_path / "models_1").exists() or not any((tmp_path / "models_1").iterdir())
    assert not (tmp_path / "results_1").exists() or not any((tmp_path / "results_1").iterdir())
    other = tmp_path / "scratch" / "worker_1" / "weights_best.hdf5"
    assert other.is_file(), logs[1][-2000:]

    chief_w, other_w = _weights(chief_runs[0]), _weights(other)
    assert len(chief_w) == len(other_w) > 0
    for a, b in zip(chief_w, other_w, strict=True):
        np.testing.assert_array_equal(a, b)
    # The run trained: the weights moved away from a fresh initialisation's BN statistics.
    assert any(not np.allclose(a, 0) and not np.allclose(a, 1) for a in chief_w)

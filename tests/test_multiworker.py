"""Two CLI workers on 127.0.0.1 train one model with MultiWorkerMirroredStrategy: both end
with the same weights, and only the chief writes the run folder and reports."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from timnet.features.files import write_npy_dict
from timnet.modelfiles.keras2 import read_weight_file

TIMEOUT_S = 240


def _free_ports(n: int, rng: random.Random) -> list[int]:
    """Ports that are free now, below the kernel's ephemeral range (32768-60999), where no
    outgoing connection of another test or job can take them between this check and the bind."""
    ports: list[int] = []
    while len(ports) < n:
        port = rng.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        if port not in ports:
            ports.append(port)
    return ports


def _port_taken(log: str) -> bool:
    """A worker failed because another process took its port after the check (a race, not a fault)."""
    text = log.lower()
    return "address already in use" in text or "could not start grpc server" in text or "failed to bind" in text


def _tiny_features(path: Path) -> None:
    rng = np.random.default_rng(0)
    n, classes = 48, 4
    labels = np.arange(n) % classes
    x = rng.standard_normal((n, 20, 39)).astype(np.float32) + labels[:, None, None] * 0.5
    write_npy_dict(path, {"x": x, "y": np.eye(classes, dtype=np.float32)[labels],
                          "class_labels": np.array(["a", "b", "c", "d"])})


def _weights(path: Path) -> list[np.ndarray]:
    return [np.asarray(w) for layer in read_weight_file(path).layer_order for w in layer.weights]


def _train_two_workers(folder: Path, data: Path, repo_root: Path, ports: list[int]) -> tuple[list[str], list[int]]:
    """Both workers' logs and exit codes (a worker still running at the time-out is killed)."""
    folder.mkdir(parents=True)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for i in range(2):
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2",
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
               "TIMNET_WORKER_DIR": str(folder / "scratch")}
        cmd = [sys.executable, str(repo_root / "Code" / "main.py"), "--mode", "train", "--data", str(data),
               "--gpu", "-1", "--epoch", "1", "--batch_size", "16", "--dilation_size", "2", "--dropout", "0.1",
               "--histogram_freq", "0", "--no_figures",
               "--model_path", str(folder / f"models_{i}"), "--result_path", str(folder / f"results_{i}")]
        log = open(folder / f"worker_{i}.log", "w")
        procs.append((subprocess.Popen(cmd, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT), log))
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
    return [(folder / f"worker_{i}.log").read_text() for i in range(2)], [proc.returncode for proc, _ in procs]


def test_two_workers_train_identically(tmp_path: Path, repo_root: Path) -> None:
    data = tmp_path / "tiny.npy"
    _tiny_features(data)
    rng = random.Random(os.getpid())
    for attempt in range(3):  # new ports when one was taken in between: a race with other jobs
        logs, codes = _train_two_workers(tmp_path / f"attempt_{attempt}", data, repo_root, _free_ports(2, rng))
        if not any(code != 0 and _port_taken(log) for code, log in zip(codes, logs)):
            break
    for i, code in enumerate(codes):
        assert code == 0, f"worker {i} failed (rc {code}):\n{logs[i][-3000:]}"
    folder = tmp_path / f"attempt_{attempt}"  # the attempt that ran
    chief_runs = list((folder / "models_0").glob("*/weights_best.hdf5"))
    assert len(chief_runs) == 1, logs[0][-2000:]
    assert list((folder / "results_0").glob("*/metrics.json")), "the chief wrote no report"
    # The non-chief wrote nothing where a run's outputs go, only its scratch copy.
    assert not (folder / "models_1").exists() or not any((folder / "models_1").iterdir())
    assert not (folder / "results_1").exists() or not any((folder / "results_1").iterdir())
    other = folder / "scratch" / "worker_1" / "weights_best.hdf5"
    assert other.is_file(), logs[1][-2000:]

    chief_w, other_w = _weights(chief_runs[0]), _weights(other)
    assert len(chief_w) == len(other_w) > 0
    for a, b in zip(chief_w, other_w, strict=True):
        np.testing.assert_array_equal(a, b)
    # The run trained: the weights moved away from a fresh initialisation's BN statistics.
    assert any(not np.allclose(a, 0) and not np.allclose(a, 1) for a in chief_w)

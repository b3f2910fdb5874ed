"""Several devices without a GPU: the mirrored path of ``--gpu 0,1`` on two logical CPU
devices ends with the same weights as one device, so CI exercises it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from helpers import cli_env, write_tiny

# Runs in a fresh interpreter: logical devices must be configured before TensorFlow starts.
SCRIPT = r"""
import json, sys
from pathlib import Path

import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from timnet.config import make_config
from timnet.features.files import load_features
from timnet.modelfiles.keras2 import read_weight_file
from timnet.training.devices import configure_devices, strategy_for_devices
from timnet.training.loop import train

data, out = Path(sys.argv[1]), Path(sys.argv[2])
features = load_features(data)
no_gpu = configure_devices("0,1", quiet=True)  # no GPU here: one device
mirrored = strategy_for_devices([d.name for d in tf.config.list_logical_devices("CPU")])
weights, replicas, losses = {}, {}, {}
for name, strategy in (("one", no_gpu), ("two", mirrored)):
    config = make_config({"data": str(data), "recipe": "paper", "epoch": 3, "batch_size": 12, "dropout": 0.0,
                          "dilation_size": 3, "histogram_freq": 0, "max_folds": 1, "gpu": "0,1",
                          "model_path": out / name / "models", "result_path": out / name / "results",
                          "log_dir": out / name / "log"})
    outcome = train(config, features, strategy, verbose=0)
    layers = read_weight_file(outcome.weights[0]).layer_order
    weights[name] = [np.asarray(w).tolist() for layer in layers for w in layer.weights]
    replicas[name] = strategy.num_replicas_in_sync
    losses[name] = outcome.histories[0]["loss"]
print("@@" + json.dumps({"replicas": replicas, "weights": weights, "losses": losses}))
"""


def test_two_logical_devices_train_like_one(tmp_path: Path, repo_root: Path) -> None:
    # 40 utterances, 10 folds: 36 training utterances in three batches per epoch, half of each
    # per replica; dropout 0 (each replica draws its own masks).
    data = write_tiny(tmp_path / "tiny.npy", n=40, frames=24)
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(data), str(tmp_path)], cwd=tmp_path, env=cli_env(),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    line = [ln for ln in result.stdout.splitlines() if ln.startswith("@@")][-1]
    found = json.loads(line[2:])
    assert found["replicas"] == {"one": 1, "two": 2}
    # Both trained (the loss moved over the epochs), along the same path.
    losses = found["losses"]
    assert len(losses["one"]) == 3 and losses["one"][0] != losses["one"][-1]
    np.testing.assert_allclose(losses["two"], losses["one"], rtol=1e-4)
    one, two = found["weights"]["one"], found["weights"]["two"]
    assert len(one) == len(two) > 20
    for a, b in zip(one, two):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=2e-5)

"""One Run for the command line and the Python API: same weights, same outputs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from helpers import cli_env, only_run_folder, read_metrics, write_tiny


def _arrays(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def test_python_api_and_command_line_train_the_same_weights_and_write_the_same_outputs(tmp_path: Path) -> None:
    data = write_tiny(tmp_path / "tiny.npy", n=40, frames=12)
    settings = {"data": str(data), "loss": "ce", "protocol": "kfold", "split_fold": 2, "epoch": 2,
                "dilation_size": 2, "filter_size": 8, "batch_size": 16, "histogram_freq": 0, "gpu": "-1"}
    argv = [item for k, v in settings.items() for item in (f"--{k}", str(v))]
    env = {**cli_env(), "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "Code")}
    cli = tmp_path / "cli"
    done = subprocess.run([sys.executable, "-m", "timnet", "train", *argv, "--model_path", str(cli / "models"),
                           "--result_path", str(cli / "results"), "--log_dir", str(cli / "log")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    api = tmp_path / "api"
    script = textwrap.dedent(f"""
        import timnet
        config = timnet.make_config({{**{settings!r}, "model_path": {str(api / "models")!r},
                                      "result_path": {str(api / "results")!r}, "log_dir": {str(api / "log")!r}}})
        outcome = timnet.train(config)
        print("written", sorted(outcome.written))
    """)
    ran = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert ran.returncode == 0, ran.stderr
    cli_run, api_run = only_run_folder(cli / "models"), only_run_folder(api / "models")
    names = sorted(p.name for p in cli_run.glob("*.hdf5"))
    assert names == sorted(p.name for p in api_run.glob("*.hdf5")) == ["2-fold_weights_best_1.hdf5",
                                                                      "2-fold_weights_best_2.hdf5"]
    for name in names:
        a, b = _arrays(cli_run / name), _arrays(api_run / name)
        assert sorted(a) == sorted(b)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}:{key}")
    # The same reports: metrics.json with provenance, the workbook, history and summary.
    cli_files = {p.suffix for p in only_run_folder(cli / "results").iterdir()}
    api_files = {p.suffix for p in only_run_folder(api / "results").iterdir()}
    assert cli_files == api_files and {".json", ".xlsx", ".md"} <= api_files
    cli_metrics, api_metrics = read_metrics(only_run_folder(cli / "results")), read_metrics(
        only_run_folder(api / "results"))
    assert api_metrics["provenance"]["timnet_version"] == cli_metrics["provenance"]["timnet_version"]
    assert (api_metrics["WAR"], api_metrics["UAR"]) == (cli_metrics["WAR"], cli_metrics["UAR"])
    assert "metrics" in ran.stdout


def test_a_bare_config_with_a_recipe_is_refused_and_make_config_applies_it() -> None:
    import timnet

    with pytest.raises(timnet.UserError, match=r"--recipe paper.*make_config"):
        timnet.TrainingConfig(recipe="paper")
    paper = timnet.make_config({"recipe": "paper"})
    assert (paper.loss, paper.protocol, paper.epoch) == ("ce", "kfold", 500)
    assert timnet.TrainingConfig(**{**{f: getattr(paper, f) for f in ("loss", "protocol", "epoch")},
                                    "recipe": "paper"}).loss == "ce"


def test_train_without_outputs_writes_only_model_files(tmp_path: Path) -> None:
    import timnet

    data = write_tiny(tmp_path / "tiny.npy", n=40, frames=12)
    config = timnet.make_config({"data": str(data), "loss": "ce", "epoch": 1, "dilation_size": 2, "filter_size": 4,
                                 "batch_size": 16, "histogram_freq": 0, "gpu": "-1", "model_path": tmp_path / "m",
                                 "result_path": tmp_path / "r", "log_dir": tmp_path / "l"})
    outcome = timnet.train(config, outputs=False)
    assert outcome.written == {} and not (outcome.result_dir.exists() and any(outcome.result_dir.iterdir()))
    assert [p.name for p in outcome.weights] == ["weights_best.hdf5"]

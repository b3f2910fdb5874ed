"""The package as a library: layering, one source of defaults, and a real install.

- no module below ``timnet.cli`` imports the command line, and no module imports
  itself back through others (lazy imports inside functions count too);
- every default is defined once: the command lines, the recipes, the configuration
  dataclasses and the layers agree;
- ``pip install --no-deps --target`` of the project, then from ``/``: ``timnet --help``,
  ``import timnet`` and the README's Python API lines on a model that ``timnet train``
  trained on a small corpus that ``timnet extract`` made from generated recordings.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from helpers import FAST, REPO_ROOT, cli_env

PACKAGE = REPO_ROOT / "Code" / "timnet"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The project modules ``path`` imports anywhere (top level or inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "timnet":
            subs = {f"{node.module}.{a.name}" for a in node.names} & modules
            found |= subs
            if len(subs) < len(node.names):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "timnet"}
    return found & modules


def _import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(files)
    # Importing a parent package from inside it is no cycle: Python imports it first anyway.
    return {m: {d for d in _imports(p, modules) if not (m + ".").startswith(d + ".")} for m, p in files.items()}


def test_lower_layers_never_import_the_command_line() -> None:
    offenders = {m: sorted(d for d in deps if d.startswith("timnet.cli"))
                 for m, deps in _import_graph().items() if not m.startswith("timnet.cli") and m != "timnet.__main__"}
    assert not {m: d for m, d in offenders.items() if d}


# The package layers, bottom to top (architecture.md): a module imports only its own rank or below.
RANKS: dict[str, int] = {
    "timnet.errors": 1, "timnet.paths": 1, "timnet.jsonable": 1, "timnet.keras_compat": 1, "timnet.version": 1,
    "timnet.timings": 1, "timnet.faults": 1,
    "timnet.features": 2,
    "timnet.config": 3, "timnet.protocols": 3,
    "timnet.network": 4,
    "timnet.modelfiles": 5,
    "timnet.evaluation": 6,
    "timnet.training": 7,
    "timnet.inference": 8, "timnet.serving": 8,
    "timnet.model": 9, "timnet": 9,
    "timnet.cli": 10, "timnet.__main__": 10,
}


def _rank(module: str) -> int:
    """The rank of the longest sub-package (or module) of :data:`RANKS` that holds ``module``."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if name in RANKS:
            return RANKS[name]
    raise AssertionError(f"{module} has no rank: add its sub-package to RANKS")


def test_every_import_points_down_the_layers() -> None:
    """evaluation and modelfiles never import training, nothing imports the API package, ..."""
    upward = sorted(f"{m} (rank {_rank(m)}) imports {d} (rank {_rank(d)})"
                    for m, deps in _import_graph().items() for d in deps if _rank(d) > _rank(m))
    assert not upward, "\n".join(upward)


def test_sub_packages_have_no_cycle() -> None:
    """Sub-packages of one rank may import each other's modules, but not both ways."""
    def package(module: str) -> str:
        parts = module.split(".")
        return ".".join(parts[:2]) if len(parts) > 1 else module

    edges = {(package(m), package(d)) for m, deps in _import_graph().items() for d in deps if package(m) != package(d)}
    both_ways = sorted(f"{a} <-> {b}" for a, b in edges if (b, a) in edges and a < b)
    assert not both_ways


def test_no_import_cycle() -> None:
    graph = _import_graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(graph[module]):
            if state.get(dep) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(dep):] + [dep]))
            if dep not in state:
                visit(dep, path + [dep])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_every_default_is_defined_once() -> None:
    import argparse

    from timnet import config as cfg
    from timnet.cli import build_parser, legacy
    from timnet.cli.options import config_from_args
    from timnet.network.layers import TemporalAwareBlock, TIMNet

    # Configuration flags carry no argparse default of their own (the dataclasses hold them).
    parsers = [legacy.build_parser()]
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parsers += list(sub.choices.values())
    for parser in parsers:
        for action in parser._actions:
            if action.dest in cfg.FLAG_BY_NAME:
                assert action.default is argparse.SUPPRESS, f"{parser.prog} --{action.dest}"
    # No flags: the command lines, make_config and the dataclass give the same configuration.
    defaults = cfg.TrainingConfig()
    assert config_from_args(legacy.build_parser().parse_args([])) == defaults
    assert config_from_args(build_parser().parse_args(["train"])) == defaults
    assert cfg.make_config({}) == defaults
    # The default recipe is the dataclass' defaults; every recipe's values reach the configuration.
    for name, recipe in cfg.RECIPES.items():
        made = cfg.make_config({"recipe": name})
        for key, value in dataclasses.asdict(recipe).items():
            actual = made.architecture.dropout if key == "dropout" else getattr(made, key)
            assert actual == value, (name, key)
            if name == cfg.DEFAULT_RECIPE:
                default = defaults.architecture.dropout if key == "dropout" else getattr(defaults, key)
                assert default == value, key
    # The layers' constructor defaults are the architecture's.
    arch = cfg.ArchitectureConfig().as_dict()
    assert {k: v for k, v in TIMNet().get_config().items() if k in arch} == arch
    tab = TemporalAwareBlock().get_config()
    assert (tab["filters"], tab["kernel_size"], tab["dropout"], tab["activation"]) == (
        arch["filters"], arch["kernel_size"], arch["dropout"], arch["activation"])


def _tone_corpus(root: Path, classes: dict[str, float], per_class: int = 14) -> None:
    """Short recordings whose class is their pitch, in the generic ``<class>/*.wav`` layout."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    t = np.arange(8192) / 22050
    for name, freq in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            f = freq * (1 + 0.03 * rng.standard_normal())
            wave = 0.3 * np.sin(2 * np.pi * f * t) + 0.01 * rng.standard_normal(t.size)
            sf.write(root / name / f"{i}.wav", wave.astype(np.float32), 22050)


@pytest.mark.slow
def test_installed_package_from_anywhere(tmp_path: Path) -> None:
    # Install a copy of the project's sources (a build in the checkout would leave build/ there).
    source = tmp_path / "src"
    shutil.copytree(PACKAGE, source / "Code" / "timnet", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(source)], check=True, timeout=300)
    env = {**cli_env(), "PYTHONPATH": str(site)}

    def run(*argv: str, timeout: float = 300) -> str:
        done = subprocess.run(list(argv), cwd="/", env=env, capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"{argv}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    assert "train" in run(str(site / "bin" / "timnet"), "--help")
    assert "--recipe" in run(sys.executable, "-m", "timnet", "train", "--help")
    where = run(sys.executable, "-c", "import timnet; print(timnet.__file__)")
    assert Path(where.strip()).is_relative_to(site), where

    corpus, work = tmp_path / "tones", tmp_path / "work"
    _tone_corpus(corpus, {"low": 220.0, "mid": 440.0, "high": 880.0})
    timnet = str(site / "bin" / "timnet")
    run(timnet, "extract", "--corpus", "generic", "--input", str(corpus), "--name", "TONES",
        "--mean_signal_length", "8192", "--output", str(work / "MFCC"), "--jobs", "1", "--no_progress")
    run(timnet, "train", "--data", str(work / "MFCC" / "TONES.npy"), "--loss", "ce", "--epoch", "3",
        "--dilation_size", "4", *FAST, "--model_path", str(work / "models"), "--result_path",
        str(work / "results"), "--log_dir", str(work / "log"), "--no_figures")
    (run_dir,) = (work / "models").iterdir()
    api = textwrap.dedent(f"""
        import numpy as np
        import timnet
        model = timnet.load({str(run_dir / "weights_best.keras")!r})
        result = model.classify_file({str(corpus / "high" / "0.wav")!r})
        assert result.label in ("low", "mid", "high") and set(result.scores) == {{"low", "mid", "high"}}
        results = model.classify_files([{str(corpus / "low" / "0.wav")!r}, {str(corpus / "mid" / "1.wav")!r}])
        assert [r.ok for r in results] == [True, True]
        probs = model.predict(np.zeros((2, 17, 39), np.float32))
        assert probs.shape == (2, 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
        again = timnet.load({str(run_dir)!r})
        assert again.class_labels == model.class_labels, (again.class_labels, model.class_labels)
        assert set(model.class_labels) == {{"low", "mid", "high"}}, model.class_labels
        print("api", result.label, timnet.__file__)
    """)
    out = run(sys.executable, "-c", api)
    assert out.startswith("api ") and str(site) in out
    assert os.listdir(work / "results")  # the run's reports


def test_every_project_import_resolves() -> None:
    """Lazy imports inside functions are not checked by the linter: each must name a real module or name."""
    import importlib

    broken = []
    for folder in ("Code", "tests", "benchmarks", "MFCC"):
        for path in (REPO_ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if not (isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "timnet"):
                    continue
                module = importlib.import_module(node.module)
                for alias in node.names:
                    if not hasattr(module, alias.name):
                        try:
                            importlib.import_module(f"{node.module}.{alias.name}")
                        except ImportError:
                            broken.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno} {node.module}.{alias.name}")
    assert not broken

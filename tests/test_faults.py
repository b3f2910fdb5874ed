"""The fault matrix (issue 23): every command meets a full disk, a folder turned read-only,
a SIGKILL at a named point, and damaged files, and ends in one of three ways:

- one ``error:`` line naming the file and what to do, exit 2;
- a ``--resume`` that continues exactly (the same metrics and predictions as an
  uninterrupted run);
- for commands without ``--resume``, a rerun that succeeds.

In no cell is a partial file left under a final name, or an earlier good file damaged
(TensorBoard's event files are exempt: they are appended to). Faults are placed at the
named points of :mod:`timnet.faults` (``TIMNET_FAULT``), chosen with a seed from the
points a clean run of the command reached (``TIMNET_FAULT_TRACE``), never by timing.
A full disk is a small tmpfs the test mounts (as root; skipped where mounting is refused):
the command pauses at the point (``SIGSTOP``), the test fills the disk or remounts it
read-only, and lets the command go on (``SIGCONT``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from helpers import MAIN, REPO_ROOT, cli_env, write_tiny

SEED = 23
SMALL_NET = ["--dilation_size", "2", "--filter_size", "8", "--no_figures", "--histogram_freq", "0", "--gpu", "-1",
             "--batch_size", "16", "--random_seed", "46"]
TRAIN = {"kfold": ["--loss", "ce", "--protocol", "kfold", "--split_fold", "2", "--epoch", "2"],
         "holdout": ["--loss", "ce", "--protocol", "holdout", "--epoch", "3"]}
EMODB_CLASSES = ("angry", "boredom", "disgust", "fear", "happy", "neutral", "sad")
_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}(\.[A-Za-z0-9]+)?$")
DAMAGES = ("truncated", "zeroed", "random")
STAMP = re.compile(r"\d{8}-\d{6}(_\d+)?")


# --- running commands ---------------------------------------------------------------------


def _env(fault: str | None = None, trace: Path | None = None) -> dict[str, str]:
    env = {**cli_env(), "PYTHONPATH": str(REPO_ROOT / "Code")}
    env.pop("TIMNET_FAULT", None)
    env.pop("TIMNET_FAULT_TRACE", None)
    if fault:
        env["TIMNET_FAULT"] = fault
    if trace:
        env["TIMNET_FAULT_TRACE"] = str(trace)
    return env


def _argv(args: list[str]) -> list[str]:
    """``main ...``: the seed's entry point (train, test); else ``python -m timnet ...``."""
    if args[0] == "main":
        return [sys.executable, str(MAIN), *args[1:]]
    return [sys.executable, "-m", "timnet", *args]


def run(args: list[str], cwd: Path, fault: str | None = None, trace: Path | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(_argv(args), cwd=cwd, env=_env(fault, trace), capture_output=True, text=True,
                          timeout=timeout)


def one_error_line(proc: subprocess.CompletedProcess, *expected: str) -> str:
    """Exit 2 and a single ``error:`` line, no traceback, naming what ``expected`` lists."""
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr[-3000:]
    for part in expected:
        assert part in lines[0], (part, lines[0])
    return lines[0]


def succeeded(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]


# --- what a folder may hold after a fault -------------------------------------------------


def _readable(path: Path) -> str | None:
    """Why ``path`` is not a complete file of its kind (None: it is)."""
    from timnet.features.files import read_npy
    from timnet.training.resume import weights_intact

    try:
        suffix = path.suffix.lower()
        if suffix == ".npy":
            read_npy(path)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                [z[k] for k in z.files]
        elif suffix in (".hdf5", ".h5"):
            return None if weights_intact(path) else "unreadable HDF5"
        elif suffix in (".keras", ".xlsx", ".zip"):
            with zipfile.ZipFile(path) as z:
                bad = z.testzip()
            return f"bad member {bad}" if bad else None
        elif suffix == ".json":
            json.loads(path.read_text())
        elif suffix in (".csv", ".md", ".txt"):
            path.read_text(encoding="utf8")
        elif suffix == ".onnx":
            import onnx

            onnx.checker.check_model(onnx.load(str(path)))
        elif suffix == ".tflite":
            from ai_edge_litert.interpreter import Interpreter

            Interpreter(model_path=str(path)).allocate_tensors()
        elif suffix == ".png":
            data = path.read_bytes()
            return None if data.startswith(b"\x89PNG") and data.rstrip(b"\0").endswith(b"IEND\xaeB`\x82") \
                else "truncated PNG"
    except Exception as exc:  # noqa: BLE001 - any failure to read is what the test reports
        return f"{type(exc).__name__}: {exc}"
    return None


def check_files(root: Path, temporaries: bool = False, exempt: tuple[str, ...] = ("log",)) -> None:
    """Every file under ``root`` (outside ``exempt`` folders) is complete; hidden temporaries
    only where a killed writer may leave them (``temporaries``)."""
    problems = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or any(part in exempt for part in path.relative_to(root).parts[:-1]):
            continue
        if _TEMPORARY.match(path.name):
            if not temporaries:
                problems.append(f"{path}: a temporary left behind")
            continue
        why = _readable(path)
        if why:
            problems.append(f"{path}: partial or damaged ({why})")
    assert not problems, "\n".join(problems)


def digest(paths: list[Path]) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.is_file()}


def damage(path: Path, how: str, seed: int = SEED) -> None:
    """Truncate a file to half, zero it (same size), or overwrite it with random bytes."""
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "zeroed":
        path.write_bytes(bytes(len(data)))
    else:
        path.write_bytes(random.Random(seed).randbytes(max(len(data), 64)))


# --- fault points ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """The ``nth`` hit of a named point with its context (the path left out: it names the run)."""

    name: str
    context: tuple[tuple[str, str], ...]
    nth: int

    def spec(self, action: str) -> str:
        keys = "".join(f":{k}={v}" for k, v in self.context)
        return f"{self.name}{keys}@{self.nth}:{action}"

    def __str__(self) -> str:
        return self.spec("").rstrip(":")


def read_trace(trace: Path) -> list[Point]:
    seen: dict[tuple, int] = {}
    points = []
    for line in trace.read_text().splitlines():
        name, *pairs = line.split(" ")
        # A run's time stamp in a file name (the workbook's) differs from run to run: a wildcard.
        context = tuple((k, STAMP.sub("*", v)) for k, v in (p.split("=", 1) for p in pairs) if k != "path")
        key = (name, context)
        seen[key] = seen.get(key, 0) + 1
        points.append(Point(name, context, seen[key]))  # type: ignore[arg-type]
    return points


def choose(points: list[Point], k: int, salt: str) -> list[Point]:
    """``k`` points picked with the seed (the same every run), spread over the command."""
    rng = random.Random(f"{SEED}-{salt}")
    return sorted(rng.sample(points, min(k, len(points))), key=points.index)


# --- tmpfs ---------------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(folder: Path, size: str = "64m") -> Iterator[Path]:
    """A small tmpfs at ``folder`` (root only; the test is skipped where mounting is refused)."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"mounting a tmpfs was refused: {proc.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def remount(folder: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(folder)], check=True, capture_output=True)


def fill(folder: Path) -> Path:
    """Fill the file system of ``folder`` to the last byte; returns the filler file."""
    filler = folder / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 16, 1 << 10, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, bytes(size))
    finally:
        os.close(fd)
    return filler


def run_paused(args: list[str], cwd: Path, point: Point, during: Callable[[], object], timeout: float = 600) -> \
        subprocess.CompletedProcess:
    """Run ``args`` until it reaches ``point`` (it stops itself there), call ``during()``,
    let it continue, and return how it ended (``during`` is not called when the command
    ended without reaching the point)."""
    log_out, log_err = cwd / "paused.out", cwd / "paused.err"
    with open(log_out, "w") as out, open(log_err, "w") as err:
        proc = subprocess.Popen(_argv(args), cwd=cwd, env=_env(point.spec("SIGSTOP")), stdout=out, stderr=err,
                                text=True)
    deadline = time.time() + timeout
    try:
        while proc.poll() is None and time.time() < deadline:
            state = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state == "T":
                during()
                proc.send_signal(signal.SIGCONT)
                break
            time.sleep(0.05)
        proc.wait(timeout=max(1.0, deadline - time.time()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, log_out.read_text(), log_err.read_text())


# --- the world every cell starts from -------------------------------------------------------


def _wavs(folder: Path, n: int = 14) -> Path:
    """An EMO-DB-layout corpus of short noise recordings (wav/03a01Wa.wav, ...)."""
    import soundfile as sf

    rng = np.random.default_rng(SEED)
    emotions = "WLEAFTN"
    (folder / "wav").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sf.write(folder / "wav" / f"{3 + i % 4:02d}a{i:02d}{emotions[i % 7]}a.wav",
                 (0.1 * rng.standard_normal(8000)).astype(np.float32), 16000)
    return folder


@dataclass
class Reference:
    """A clean run of a training protocol: its folders, metrics, predictions, and the points it reached."""

    base: Path
    run: str
    points: list[Point]


def outputs(base: Path) -> list[str]:
    return ["--model_path", str(base / "models"), "--result_path", str(base / "results"),
            "--log_dir", str(base / "log")]


def train_args(data: Path, protocol: str, base: Path) -> list[str]:
    return ["main", "--mode", "train", "--data", str(data), *TRAIN[protocol], *SMALL_NET, *outputs(base)]


class World:
    """Inputs and clean reference runs, made once per module and copied by the cells."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = write_tiny(root / "inputs" / "tiny.npy", n=40, frames=20)
        self.corpus = _wavs(root / "inputs" / "emodb")
        self.mfcc = root / "inputs" / "MFCC"
        self.mfcc.mkdir()
        write_tiny(self.mfcc / "EMODB.npy", class_labels=EMODB_CLASSES, n=14, n_classes=7, frames=20)
        self._references: dict[str, Reference] = {}
        self._exports: dict[str, Path] = {}

    def reference(self, protocol: str) -> Reference:
        if protocol not in self._references:
            base = self.root / f"reference_{protocol}"
            trace = self.root / f"trace_{protocol}.txt"
            succeeded(run(train_args(self.data, protocol, base), self.root, trace=trace))
            run_name = next((base / "models").iterdir()).name
            self._references[protocol] = Reference(base, run_name, read_trace(trace))
        return self._references[protocol]

    def weights(self) -> Path:
        ref = self.reference("kfold")
        return ref.base / "models" / ref.run / "2-fold_weights_best_1.hdf5"

    def exported(self, fmt: str) -> Path:
        """The reference weights exported (MFCC input) as ``onnx`` or ``litert`` (with its sidecar), once."""
        if fmt not in self._exports:
            path = self.root / "inputs" / "exported" / f"model{'.onnx' if fmt == 'onnx' else '.tflite'}"
            path.parent.mkdir(exist_ok=True)
            succeeded(run(["export", "--format", fmt, "--test_path", str(self.weights()), "--output", str(path)],
                          self.root))
            self._exports[fmt] = path
        return self._exports[fmt]

    def inputs(self) -> list[Path]:
        return [p for p in (self.root / "inputs").rglob("*") if p.is_file()]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(tmp_path_factory.mktemp("faults"))


def same_results(a: Path, b: Path) -> None:
    """The same per-fold metrics and predictions (a resumed run against the uninterrupted one)."""
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    for m in (ma, mb):
        for entry in m.get("folds", []):
            entry.pop("weights")
    for key in ("WAR", "UAR", "folds", "confusion_matrix"):
        assert json.dumps(ma.get(key)) == json.dumps(mb.get(key)), key
    with np.load(a / "predictions.npz") as pa, np.load(b / "predictions.npz") as pb:
        for key in pa.files:
            if pa[key].dtype.kind == "f":
                np.testing.assert_allclose(pa[key], pb[key], atol=1e-6, err_msg=key)
            else:
                np.testing.assert_array_equal(pa[key], pb[key], err_msg=key)


def only_run(models: Path) -> Path:
    runs = [p for p in models.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


# --- SIGKILL at a named point, then --resume -------------------------------------------------


def kill_then_resume(world: World, protocol: str, point: Point, cell: Path) -> None:
    """Kill a training at ``point``; ``--resume`` continues it to the reference's results (or,
    killed before its first resume state, ``--resume`` is one error and a new run succeeds)."""
    ref = world.reference(protocol)
    before = digest(world.inputs())
    killed = run(train_args(world.data, protocol, cell), cell.parent, fault=point.spec("SIGKILL"))
    assert killed.returncode == -signal.SIGKILL, (point, killed.stdout[-2000:], killed.stderr[-2000:])
    check_files(cell, temporaries=True)
    run_dir = only_run(cell / "models")
    if not (run_dir / ".resume" / "state.npz").is_file():
        one_error_line(run(["main", "--mode", "train", "--resume", str(run_dir)], cell.parent), str(run_dir))
        shutil.rmtree(cell)
        succeeded(run(train_args(world.data, protocol, cell), cell.parent))
    else:
        resumed = run(["main", "--mode", "train", "--resume", str(run_dir)], cell.parent)
        succeeded(resumed)
        assert not (run_dir / ".resume").exists()
    check_files(cell)
    same_results(ref.base / "results" / ref.run, only_run(cell / "results"))
    assert digest(world.inputs()) == before


@pytest.mark.slow
@pytest.mark.parametrize("protocol,index", [("kfold", i) for i in range(14)] + [("holdout", i) for i in range(10)])
def test_sigkill_then_resume_matrix(world: World, tmp_path: Path, protocol: str, index: int) -> None:
    ref = world.reference(protocol)
    points = choose(ref.points, 14 if protocol == "kfold" else 10, f"slow-{protocol}")
    if index >= len(points):
        pytest.skip(f"the {protocol} run reaches only {len(points)} points")
    kill_then_resume(world, protocol, points[index], tmp_path / "cell")


# --- a damaged resume state -----------------------------------------------------------------


def kill_at_fold_2(world: World, base: Path) -> Path:
    """A k-fold run killed after fold 2's first epoch (fold 1 complete): its run folder."""
    proc = run(train_args(world.data, "kfold", base), world.root, fault="epoch_end:fold=2:epoch=1:SIGKILL")
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    check_files(base, temporaries=True)
    return only_run(base / "models")


@pytest.fixture(scope="module")
def killed_run(world: World) -> Path:
    """The default suite's killed run; the last test that uses it resumes it."""
    return kill_at_fold_2(world, world.root / "killed")


def _copy_killed(killed_run: Path, cell: Path) -> Path:
    """A copy of the killed run's weights folder, for cells that only read it (its settings
    name the original's result and log folders)."""
    shutil.copytree(killed_run.parent.parent, cell, symlinks=True)
    return only_run(cell / "models")


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_resume_state_gives_the_choices(killed_run: Path, tmp_path: Path, how: str) -> None:
    run_dir = _copy_killed(killed_run, tmp_path / "cell")
    state = run_dir / ".resume" / "state.npz"
    damage(state, how)
    line = one_error_line(run(["main", "--mode", "train", "--resume", "last", "--model_path",
                               str(tmp_path / "cell" / "models")], tmp_path), run_dir.name, str(state))
    assert f"--resume {run_dir} --from_completed_folds" in line and "intact completed folds (1;" in line
    assert "start it again with the same settings: timnet train" in line and "--split_fold 2" in line


def test_from_completed_folds_continues_exactly(world: World, killed_run: Path, tmp_path: Path) -> None:
    """SIGKILL at a named point, the resume state then damaged: --from_completed_folds keeps
    fold 1, trains fold 2 again, and ends with the uninterrupted run's results."""
    damage(killed_run / ".resume" / "state.npz", "random")
    succeeded(run(["main", "--mode", "train", "--resume", str(killed_run), "--from_completed_folds"], tmp_path))
    check_files(killed_run.parent.parent)
    ref = world.reference("kfold")
    same_results(ref.base / "results" / ref.run, only_run(killed_run.parent.parent / "results"))


@pytest.mark.slow
@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("what", ["fold_1.npz", "settings.json", "weights"])
def test_damaged_resume_files(world: World, tmp_path: Path, what: str, how: str) -> None:
    """A completed fold's record or weights, or the settings: one error with the choices, and
    --from_completed_folds (where offered) continues exactly."""
    run_dir = kill_at_fold_2(world, tmp_path / "cell")
    target = run_dir / "2-fold_weights_best_1.hdf5" if what == "weights" else run_dir / ".resume" / what
    damage(target, how)
    resume = ["main", "--mode", "train", "--resume", str(run_dir)]
    if what == "settings.json":  # not read while state.npz is intact: the run continues
        succeeded(run(resume, tmp_path))
    else:
        line = one_error_line(run(resume, tmp_path), run_dir.name, str(target))
        assert "start it again with the same settings" in line
        succeeded(run([*resume, "--from_completed_folds"], tmp_path))
    check_files(tmp_path / "cell")
    ref = world.reference("kfold")
    same_results(ref.base / "results" / ref.run, only_run(tmp_path / "cell" / "results"))


# --- damaged inputs: every command that reads the file ---------------------------------------


def _reader_commands(world: World, cell: Path, damaged: Path, kind: str) -> list[list[str]]:
    out = ["--result_path", str(cell / "out")]
    if kind == "features":
        return [train_args(damaged, "kfold", cell),
                ["main", "--mode", "test", "--data", str(damaged), "--test_path", str(world.weights()), *out,
                 "--no_figures", "--gpu", "-1"],
                ["mix", "--mfcc_dir", str(damaged.parent), "--output", str(cell / "mixed.npy")]]
    model = ["--test_path", str(damaged)]
    return [["main", "--mode", "test", "--data", str(world.data), *model, *out, "--no_figures", "--gpu", "-1"],
            ["export", *model, "--output", str(cell / "exported.keras")],
            ["export", *model, "--format", "onnx", "--input", "waveform", "--output", str(cell / "exported.onnx")],
            ["predict", *model, "--wav", str(world.corpus / "wav"), *out]]


@pytest.mark.parametrize("kind,how", [("features", "truncated")] + [
    pytest.param(k, h, marks=pytest.mark.slow) for k in ("features", "weights", "keras") for h in DAMAGES
    if (k, h) != ("features", "truncated")])
def test_damaged_file_read_by_every_command(world: World, tmp_path: Path, kind: str, how: str) -> None:
    """Each reader of a damaged features, weights or .keras file: one error naming it, exit 2, nothing written."""
    cell = tmp_path / "cell"
    cell.mkdir()
    if kind == "features":
        source = world.mfcc / "EMODB.npy"
    elif kind == "weights":
        source = world.weights()
    else:
        source = cell / "model.keras"
        succeeded(run(["export", "--test_path", str(world.weights()), "--output", str(source)], tmp_path))
    damaged = cell / "damaged" / source.name
    damaged.parent.mkdir()
    shutil.copy(source, damaged)
    damage(damaged, how)
    for command in _reader_commands(world, cell, damaged, kind):
        one_error_line(run(command, tmp_path), str(damaged))
        assert not (cell / "out").exists() or not any((cell / "out").iterdir()), command
        assert not (cell / "models").exists() or not any((cell / "models").rglob("*.hdf5")), command
        assert not (cell / "exported.keras").exists() and not (cell / "mixed.npy").exists(), command
        assert not (cell / "exported.onnx").exists(), command
        assert not [p for p in cell.iterdir() if p.name.startswith(".")], command  # no export work folder


# --- a full disk and a read-only folder, at named points --------------------------------------


def _commands(world: World, out: Path, log: Path | None = None) -> dict[str, list[str]]:
    """The commands of the matrix, writing under ``out`` (TensorBoard: under ``log``, when given)."""
    train = {protocol: train_args(world.data, protocol, out) + (["--log_dir", str(log)] if log else [])
             for protocol in TRAIN}
    return {
        "train-kfold": train["kfold"],
        "train-holdout": train["holdout"],
        "extract": ["extract", "--corpus", "EMODB", "--input", str(world.corpus), "--output", str(out / "MFCC"),
                    "--jobs", "1", "--no_progress"],
        "export": ["export", "--test_path", str(world.weights()), "--output", str(out / "model.keras")],
        "export-onnx": ["export", "--format", "onnx", "--input", "waveform", "--test_path", str(world.weights()),
                        "--output", str(out / "model.onnx")],
        "export-litert": ["export", "--format", "litert", "--test_path", str(world.weights()), "--output",
                          str(out / "model.tflite")],
        "predict": ["predict", "--test_path", str(world.weights()), "--wav", str(world.corpus / "wav"),
                    "--result_path", str(out / "predict")],
        "mix": ["mix", "--mfcc_dir", str(world.mfcc), "--output", str(out / "INTERSECT.npy")],
        "test": ["main", "--mode", "test", "--data", str(world.data), "--test_path", str(world.weights()),
                 "--result_path", str(out / "results"), "--no_figures", "--gpu", "-1"],
    }


_POINTS: dict[str, list[Point]] = {}


def _points(world: World, command: str) -> list[Point]:
    """The points a clean run of ``command`` reaches (once per module)."""
    if command not in _POINTS:
        if command.startswith("train-"):
            points = world.reference(command.removeprefix("train-")).points
        else:
            scratch = world.root / f"clean_{command}"
            trace = world.root / f"trace_{command}.txt"
            succeeded(run(_commands(world, scratch)[command], world.root, trace=trace))
            points = read_trace(trace)
        _POINTS[command] = [p for p in points if p.name != "extracted"]
    return _POINTS[command]


def write_fault(world: World, tmp_path: Path, command: str, fault: str, index: int, k: int,
                only: str | None = None) -> None:
    """``command`` writing into a tmpfs that fills up (``full``) or turns read-only (``readonly``)
    at a seeded point (of the points named ``only``, when given): one error line naming a file
    there, no partial file, the inputs intact; then, with space again, a ``--resume`` (training)
    or a rerun that succeeds."""
    points = [p for p in _points(world, command) if only is None or p.name == only]
    chosen = choose(points, k, f"{fault}-{command}")
    if index >= len(chosen):
        pytest.skip(f"{command} reaches only {len(chosen)} points")
    point = chosen[index]
    before = digest(world.inputs())
    with tmpfs(tmp_path / "disk") as disk:
        # A file open for writing keeps a file system from turning read-only: TensorBoard's
        # event files (appended to all along, exempt) go elsewhere for that fault.
        args = _commands(world, disk, tmp_path / "log" if fault == "readonly" else None)[command]
        filler: list[Path] = []
        if fault == "full":
            proc = run_paused(args, tmp_path, point, lambda: filler.append(fill(disk)))
        else:
            proc = run_paused(args, tmp_path, point, lambda: remount(disk, "ro"))
        if proc.returncode != 0:  # a write after the point failed; else nothing was left to write
            one_error_line(proc, str(disk))
            line = [x for x in proc.stderr.splitlines() if x.startswith("error:")][0]
            assert ("free some space" if fault == "full" else "make the folder writable") in line, line
        if fault == "readonly":
            remount(disk, "rw")
        for f in filler:
            f.unlink()
        check_files(disk, temporaries=fault == "readonly")
        assert digest(world.inputs()) == before
        if proc.returncode == 0:
            return
        if command.startswith("train") and "--resume" in line:
            again = run(["main", "--mode", "train", "--resume", line.split("--resume ")[1].split()[0]], tmp_path)
        else:
            if command.startswith("train"):
                shutil.rmtree(disk / "models", ignore_errors=True)
            again = run(args, tmp_path)
        succeeded(again)
        check_files(disk, temporaries=fault == "readonly")  # a read-only folder kept the hidden temporary


def test_disk_full_during_extraction(world: World, tmp_path: Path) -> None:
    write_fault(world, tmp_path, "extract", "full", 0, 1)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(3))
@pytest.mark.parametrize("fault", ["full", "readonly"])
@pytest.mark.parametrize("command", ["train-kfold", "train-holdout", "extract", "export", "export-onnx", "export-litert",
                                     "predict", "mix", "test"])
def test_write_fault_matrix(world: World, tmp_path: Path, command: str, fault: str, index: int) -> None:
    write_fault(world, tmp_path, command, fault, index, 3)


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["full", "readonly"])
@pytest.mark.parametrize("command", ["export-onnx", "export-litert"])
def test_write_fault_while_the_exporter_writes(world: World, tmp_path: Path, command: str, fault: str) -> None:
    """The disk fills up, or turns read-only, just before tf2onnx or the TFLite converter writes
    (the seeded choice of the matrix may leave that point out)."""
    write_fault(world, tmp_path, command, fault, 0, 1, only="export_write")


@pytest.mark.slow
def test_serve_writes_nothing(world: World, tmp_path: Path) -> None:
    """``timnet serve`` run from a read-only folder with TMPDIR there too: it starts, and
    classifies an upload (decoded in memory, no temporary file)."""
    import http.client

    model = world.exported("onnx")
    wav = next((world.corpus / "wav").iterdir()).read_bytes()
    with tmpfs(tmp_path / "ro", "1m") as folder:
        remount(folder, "ro")
        log = tmp_path / "serve.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(_argv(["serve", "--test_path", str(model), "--port", "0"]), cwd=folder,
                                    env={**_env(), "TMPDIR": str(folder)}, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline, port = time.monotonic() + 120, 0
            while not port and time.monotonic() < deadline and proc.poll() is None:
                text = log.read_text()
                if "Application startup complete" in text and "http://127.0.0.1:" in text:
                    port = int(text.split("http://127.0.0.1:", 1)[1].split("/", 1)[0])
                time.sleep(0.2)
            assert port, log.read_text()[-3000:]
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("POST", "/api/classify", body=wav, headers={"Content-Type": "audio/wav"})
            res = conn.getresponse()
            body = json.loads(res.read())
            conn.close()
            assert res.status == 200 and body["label"] in EMODB_CLASSES, body
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        assert proc.returncode == 0, log.read_text()[-3000:]
        assert "Traceback" not in log.read_text()
        remount(folder, "rw")


# --- injected errors need no mount: the same cells on any machine ----------------------------


@pytest.mark.parametrize("action", ["ENOSPC", "EROFS"])
def test_injected_write_error_in_extraction(world: World, tmp_path: Path, action: str) -> None:
    """The feature file's write fails before its rename: one error naming it; an earlier file stays."""
    out = tmp_path / "MFCC"
    out.mkdir()
    earlier = shutil.copy(world.mfcc / "EMODB.npy", out / "EMODB.npy")
    before = digest([earlier])
    args = ["extract", "--corpus", "EMODB", "--input", str(world.corpus), "--output", str(out), "--jobs", "1",
            "--no_progress", "--overwrite"]
    proc = run(args, tmp_path, fault=f"before_rename:file=EMODB.npy:{action}")
    one_error_line(proc, str(out / "EMODB.npy"), "then run the command again")
    assert digest([earlier]) == before
    check_files(out)
    succeeded(run(args, tmp_path))
    check_files(out)


def test_second_ctrl_c_says_what_was_saved(world: World, tmp_path: Path) -> None:
    """Ctrl-C after fold 2's first epoch, and again while its weights are written: exit 130,
    one line naming the saved run and its --resume command."""
    cell = tmp_path / "cell"
    proc = run(train_args(world.data, "kfold", cell), tmp_path,
               fault="epoch_end:fold=2:epoch=1:SIGINT;before_rename:file=2-fold_weights_best_2.hdf5@2:SIGINT")
    text = proc.stdout + proc.stderr
    assert proc.returncode == 130, text[-3000:]
    assert "Traceback" not in text and "nothing was saved" not in text
    run_dir = only_run(cell / "models")
    line = [x for x in proc.stderr.splitlines() if x.startswith("interrupted:")]
    assert len(line) == 1 and f"--resume {run_dir}" in line[0] and "fold(s) 1 complete" in line[0], line
    check_files(cell, temporaries=True)


# --- exported models: export --format onnx|litert, predict and serve ---------------------------


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "litert"])
@pytest.mark.parametrize("action", ["ENOSPC", "EROFS"])
def test_injected_write_error_in_export(world: World, tmp_path: Path, fmt: str, action: str) -> None:
    """The exporter's write fails (no mount needed): one error naming the output, nothing left
    under its name or its sidecar's, no work folder; an earlier export stays; the rerun succeeds."""
    out = tmp_path / "out"
    out.mkdir()
    earlier = shutil.copy(world.exported(fmt), out / world.exported(fmt).name)
    if fmt == "litert":
        shutil.copy(world.exported(fmt).with_suffix(".json"), out / "model.json")
    before = digest(list(out.iterdir()))
    args = ["export", "--format", fmt, "--test_path", str(world.weights()), "--output", str(earlier), "--overwrite"]
    proc = run(args, tmp_path, fault=f"export_write:{action}")
    one_error_line(proc, str(earlier), "then run the command again")
    assert digest(list(out.iterdir())) == before
    check_files(out)
    succeeded(run(args, tmp_path))
    check_files(out)


def _damaged_exported(world: World, cell: Path, kind: str, how: str) -> Path:
    """A copy of an exported model file (``onnx``, ``tflite``, or the ``.tflite``'s ``sidecar``)
    with the file damaged; returns the model file to give the commands."""
    folder = cell / "damaged"
    folder.mkdir(parents=True)
    if kind == "onnx" and how != "truncated":
        # Zeroed or random bytes replace every byte: a file of an export's size needs no export.
        model = folder / "model.onnx"
        model.write_bytes(bytes(200_000))
        damage(model, how)
        return model
    source = world.exported("onnx" if kind == "onnx" else "litert")
    model = Path(shutil.copy(source, folder / source.name))
    if kind != "onnx":
        shutil.copy(source.with_suffix(".json"), folder / "model.json")
    damage(model if kind != "sidecar" else folder / "model.json", how)
    return model


def _serve(model: Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> \
        subprocess.CompletedProcess:
    """``timnet serve`` on a free port, stopped (SIGINT) as soon as it says it serves."""
    proc = subprocess.Popen(_argv(["serve", "--test_path", str(model), "--port", "0"]), cwd=cwd,
                            env=env or _env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.parametrize("kind,how", [("onnx", "random")] + [
    pytest.param(k, h, marks=pytest.mark.slow) for k in ("onnx", "tflite", "sidecar") for h in DAMAGES
    if (k, h) != ("onnx", "random")])
def test_damaged_exported_model_read_by_predict_and_serve(world: World, tmp_path: Path, kind: str, how: str) -> None:
    """predict and serve given a damaged .onnx / .tflite file (or the .tflite's sidecar): one
    error line naming it and the fix (export again), exit 2; serve ends before it serves."""
    cell = tmp_path / "cell"
    model = _damaged_exported(world, cell, kind, how)
    predicted = run(["predict", "--test_path", str(model), "--wav", str(world.corpus / "wav"), "--result_path",
                     str(cell / "out")], tmp_path)
    line = one_error_line(predicted, str(model))
    assert "timnet export --format" in line, line
    assert not (cell / "out").exists() or not any((cell / "out").iterdir())
    served = _serve(model, tmp_path)
    line = one_error_line(served, str(model))
    assert "timnet export --format" in line and "Serving" not in served.stdout, (line, served.stdout)


# --- Ctrl-C (SIGINT to the process group) while extraction's worker pool runs -----------------

# ``python -m timnet`` with Python's own SIGINT handler: a test runner started in the
# background ignores SIGINT, and its children would inherit that.
CTRL_C_MAIN = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
               "sys.argv[0] = 'timnet'; runpy.run_module('timnet', run_name='__main__', alter_sys=True)")
CTRL_C_FILES = 40


def _ctrl_c_points() -> list[str]:
    """Where the group's SIGINT is sent from: a worker starting (before it ignores SIGINT; the
    pool is forking), a worker about to read file i (the main process waits for results), the
    main process after n files; seeded."""
    rng = random.Random(f"{SEED}-ctrl-c")
    points = ["worker_start:PGSIGINT", "mfcc_task:index=0:PGSIGINT"]
    points += [f"mfcc_task:index={i}:PGSIGINT" for i in rng.sample(range(1, CTRL_C_FILES), 6)]
    points += [f"extracted:n={n}:PGSIGINT" for n in rng.sample(range(1, CTRL_C_FILES), 4)]
    return points


@pytest.fixture(scope="module")
def ctrl_c_corpus(world: World) -> Path:
    return _wavs(world.root / "inputs" / "emodb40", CTRL_C_FILES)


@pytest.mark.parametrize("spec", [pytest.param(p, marks=[] if i < 2 else [pytest.mark.slow])
                                  for i, p in enumerate(_ctrl_c_points())])
def test_ctrl_c_to_the_process_group_during_extraction(world: World, ctrl_c_corpus: Path, tmp_path: Path,
                                                       spec: str) -> None:
    """A real Ctrl-C (SIGINT to the whole process group, workers included) at a seeded point of
    ``timnet extract --jobs 2``: it ends within a minute (it once hung: the signal landed in
    the pool's fork handlers), exit 130, one line, no worker traceback; the earlier feature file
    is intact and nothing else is written."""
    out = tmp_path / "MFCC"
    out.mkdir()
    earlier = shutil.copy(world.mfcc / "EMODB.npy", out / "EMODB.npy")
    before = digest([earlier])
    args = ["extract", "--corpus", "EMODB", "--input", str(ctrl_c_corpus), "--output", str(out), "--jobs", "2",
            "--no_progress", "--overwrite"]
    proc = subprocess.Popen([sys.executable, "-c", CTRL_C_MAIN, *args], cwd=tmp_path, env=_env(spec),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"{spec}: timnet extract still ran 90 s after Ctrl-C:\n{stderr[-3000:]}")
    text = stdout + stderr
    assert proc.returncode == 130, (spec, text[-3000:])
    assert "Traceback" not in text and "KeyboardInterrupt" not in text and "Exception ignored" not in text, text
    assert [line for line in stderr.splitlines() if line.startswith(("interrupted", "error"))] == \
        ["interrupted: nothing was saved"], stderr
    assert digest([earlier]) == before
    assert sorted(p.name for p in out.iterdir()) == ["EMODB.npy"]

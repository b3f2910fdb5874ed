"""TIM-Net command line: ``python Code/main.py --mode train|test|predict|export ...``.

Every flag of the seed's ``main.py`` keeps its name; paths resolve from the
repository root, so the commands work from any folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from timnet import paths  # noqa: E402
from timnet.errors import UserError  # noqa: E402
from timnet.config import DEFAULT_RECIPE, RECIPES, recipe_defaults  # noqa: E402

MODES = ("train", "test", "predict", "export")
SEED_TEST_PATH = "Test_Models/INTERSECT_46_dilation_8_dropout_05_add_esd_npairLoss"
# Flags whose default depends on the recipe or the data: None means "not given".
RECIPE_FLAGS = ("loss", "protocol", "dropout", "epoch", "batch_size", "label_smoothing")
ARCH_FLAGS = {"filter_size": "filters", "kernel_size": "kernel_size", "stack_size": "stack_size",
              "dilation_size": "dilation_size", "activation": "activation", "dropout": "dropout"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="main.py",
        description="TIM-Net for speech emotion recognition: train, test, predict, export.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--mode", choices=MODES, default="train", help="what to do")
    p.add_argument("--model_path", default="Test_Models/", help="where training writes its run folder")
    p.add_argument("--result_path", default="Results/", help="where reports and figures go")
    p.add_argument("--test_path", default=None,
                   help=f"weights file, .keras file or run folder to test (default: {SEED_TEST_PATH} when "
                        "present, else the newest run under --model_path)")
    p.add_argument("--data", default="INTERSECT", help="feature file: a name in MFCC/ or a path to a .npy")
    p.add_argument("--lr", type=float, default=0.001, help="Adam learning rate")
    p.add_argument("--beta1", type=float, default=0.93, help="Adam beta_1")
    p.add_argument("--beta2", type=float, default=0.98, help="Adam beta_2")
    p.add_argument("--batch_size", type=int, default=None, help="global batch size (recipe: 64)")
    p.add_argument("--epoch", type=int, default=None, help="epochs (recipe: seed 60, paper 500); Ctrl-C stops")
    p.add_argument("--dropout", type=float, default=None, help="spatial dropout (recipe: seed 0.5, paper 0.1)")
    p.add_argument("--random_seed", type=int, default=46, help="seeds Python, NumPy, TensorFlow and the splits")
    p.add_argument("--activation", default="relu", help="activation inside the temporal-aware blocks")
    p.add_argument("--filter_size", type=int, default=39, help="channels of every convolution")
    p.add_argument("--dilation_size", type=int, default=None,
                   help="temporal-aware blocks per branch, dilations 1..2^(n-1) (default 8; 10 for IEMOCAP)")
    p.add_argument("--bidirection", action="store_true", default=None,
                   help="use the backward (time-reversed) branch too, as the paper does")
    p.add_argument("--kernel_size", type=int, default=2, help="kernel size of the dilated convolutions")
    p.add_argument("--stack_size", type=int, default=1, help="repetitions of the dilation stack")
    p.add_argument("--split_fold", type=int, default=10, help="folds of the k-fold protocol")
    p.add_argument("--max_folds", type=int, default=None,
                   help="train only N folds of the protocol's splits (the splits stay the same)")
    p.add_argument("--first_fold", type=int, default=1,
                   help="start at this fold (1-based): run a long k-fold or LOSO protocol in parts")
    p.add_argument("--gpu", default="0", help="GPU index or comma-separated list (several: mirrored); -1: CPU")
    # Additions of this project.
    p.add_argument("--recipe", choices=sorted(RECIPES), default=DEFAULT_RECIPE,
                   help="defaults of loss, protocol, dropout, epoch, batch size and label smoothing")
    p.add_argument("--loss", choices=("npair", "ce"), default=None,
                   help="npair: L2-normalised embedding + N-pair loss (seed); ce: softmax + cross-entropy (paper)")
    p.add_argument("--protocol", choices=("holdout", "kfold", "loso"), default=None,
                   help="holdout: stratified 90/10 (seed); kfold: --split_fold CV (paper); loso: leave one "
                        "speaker out")
    p.add_argument("--label_smoothing", type=float, default=None, help="smoothing of the training labels")
    p.add_argument("--histogram_freq", type=int, default=1, help="TensorBoard weight histograms every N epochs")
    p.add_argument("--log_dir", default="log/", help="TensorBoard logs go to <log_dir>/<time>/")
    p.add_argument("--mixed_precision", action="store_true", help="float16 compute on GPU")
    p.add_argument("--no_figures", action="store_true", help="skip the PNG figures after train/test")
    p.add_argument("--wav", default=None, help="predict: an audio file or a folder (searched recursively)")
    p.add_argument("--window_hop", type=float, default=None,
                   help="predict: score overlapping windows this many seconds apart")
    p.add_argument("--output", default=None, help="export: the .keras file to write")
    p.add_argument("--jobs", type=int, default=None, help="worker processes for audio feature extraction")
    p.add_argument("--fold", type=int, default=None,
                   help="predict/export: which fold's model of a k-fold or LOSO run folder (default 1)")
    return p


def explicit_flags(argv: list[str]) -> set[str]:
    """Names of the flags the user typed (to tell a given value from a default)."""
    given = set()
    for token in argv:
        if token.startswith("--"):
            given.add(token[2:].split("=", 1)[0])
    return given


def resolve_settings(args: argparse.Namespace, given: set[str]):
    """Fill recipe- and data-dependent defaults into a :class:`Model.Settings`."""
    from timnet.features import corpora
    from timnet.training.engine import Settings

    recipe = recipe_defaults(args.recipe, args.loss)
    values: dict[str, Any] = {k: getattr(args, k) if getattr(args, k) is not None else recipe[k]
                              for k in RECIPE_FLAGS}
    data_name = Path(args.data).stem if args.data.endswith(".npy") else args.data
    dilation = args.dilation_size if args.dilation_size is not None else corpora.default_dilations(data_name)
    return Settings(
        data=data_name,
        model_path=paths.resolve(args.model_path),
        result_path=paths.resolve(args.result_path),
        lr=args.lr, beta1=args.beta1, beta2=args.beta2,
        random_seed=args.random_seed, activation=args.activation, filter_size=args.filter_size,
        dilation_size=dilation, kernel_size=args.kernel_size, stack_size=args.stack_size,
        bidirection=bool(args.bidirection), split_fold=args.split_fold, max_folds=args.max_folds,
        first_fold=args.first_fold,
        histogram_freq=args.histogram_freq, mixed_precision=args.mixed_precision,
        log_dir=paths.resolve(args.log_dir), **values,
    )


def load_data(data: str):
    """``--data``: a name looked up in MFCC/ or a path to a .npy feature file."""
    from timnet.features import corpora
    from timnet.features.files import load_features

    candidate = Path(data)
    if data.endswith(".npy"):
        path = paths.resolve(candidate)
    else:
        path = paths.MFCC_DIR / f"{data}.npy"
    try:
        labels = corpora.class_labels_for(path.stem)
    except KeyError:
        labels = None
    if not path.is_file():
        hint = "run the feature extraction first (see README)" if labels else "check the name or give a path"
        raise UserError(f"{path}: feature file not found for --data {data}; {hint}")
    return load_features(path, labels)


def default_test_path(model_path: Path) -> Path:
    seed = paths.resolve(SEED_TEST_PATH)
    if seed.exists():
        return seed
    runs = [p for p in model_path.glob("*") if p.is_dir() and any(p.glob("*.hdf5"))] if model_path.is_dir() else []
    if not runs:
        raise UserError(f"no --test_path given and no trained run under {model_path}: train first, or download "
                        f"the published weights to {SEED_TEST_PATH}")
    newest = max(runs, key=lambda p: p.stat().st_mtime)
    print(f"Testing the newest run: {newest}")
    return newest


def architecture_overrides(args: argparse.Namespace, given: set[str]) -> dict[str, Any]:
    """Architecture flags the user typed: a weights file must agree with them."""
    out = {ARCH_FLAGS[k]: getattr(args, k) for k in ARCH_FLAGS if k in given}
    out.pop("dropout", None)  # dropout is not part of the inference network
    if "bidirection" in given:
        out["bidirection"] = True
    if "loss" in given:
        out["head"] = "softmax" if args.loss == "ce" else "embedding"
    return out


def seed_everything(seed: int) -> None:
    """Python, NumPy and TensorFlow seeds, and deterministic kernels on the CPU."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if not tf.config.list_logical_devices("GPU"):
        tf.config.experimental.enable_op_determinism()


def run_train(args: argparse.Namespace, given: set[str]) -> int:
    start = time.time()
    features = load_data(args.data)  # bad data fails at once, before TensorFlow loads

    from timnet.training import engine as Model
    from timnet.training.devices import configure_devices, is_chief
    from timnet.evaluation.run_outputs import write_test_outputs, write_train_outputs

    settings = resolve_settings(args, given)
    strategy = configure_devices(args.gpu)
    if settings.mixed_precision:
        _enable_mixed_precision()
    seed_everything(settings.random_seed)
    print(f"Data {features.path}: {features.x.shape[0]} utterances x {features.x.shape[1]} frames x "
          f"{features.x.shape[2]} MFCCs, classes {', '.join(features.class_labels)}")
    print(f"Recipe: {settings.loss} loss, {settings.protocol} protocol, dropout {settings.dropout}, "
          f"{settings.epoch} epochs, batch {settings.batch_size}, seed {settings.random_seed}")
    outcome = Model.train(settings, features, strategy)
    if not is_chief(strategy):
        return 0
    print(f"\nTraining finished in {Model.elapsed(start)}; weights in {outcome.model_dir}")
    outcome.report.print()
    written = write_train_outputs(outcome, figures=not args.no_figures)
    written = write_test_outputs(outcome.report, outcome.result_dir, excel_name=_excel_name(settings, outcome),
                                 figures=not args.no_figures, already=written)
    print_written(outcome.result_dir, written)
    return 0


def print_written(folder: Path, written: dict[str, Path]) -> None:
    """Where the reports and figures of a run are."""
    print(f"Reports in {folder}:")
    for path in sorted(set(written.values())):
        print(f"  {path}")


def _excel_name(settings, outcome) -> str:
    report = outcome.report.summary()
    kind = {"kfold": f"{settings.split_fold}fold", "holdout": "holdout", "loso": "loso"}[settings.protocol]
    return f"{settings.data}_{kind}_{report['WAR']:.4f}_{settings.random_seed}_{outcome.result_dir.name[-15:]}.xlsx"


def run_test(args: argparse.Namespace, given: set[str]) -> int:
    features = load_data(args.data)  # bad data fails at once, before TensorFlow loads

    from timnet.training import engine as Model
    from timnet.training.devices import configure_devices
    from timnet.evaluation.run_outputs import write_test_outputs

    settings = resolve_settings(args, given)
    configure_devices(args.gpu)
    seed_everything(settings.random_seed)
    test_path = paths.resolve(args.test_path) if args.test_path else default_test_path(settings.model_path)
    report = Model.test(settings, features, test_path, architecture_overrides(args, given),
                        with_fused=not args.no_figures)
    result_dir = settings.result_path / f"{settings.data}_test_{Model.timestamp()}"
    print(f"Test of {test_path} on {features.path} ({len(features.x)} utterances)")
    report.print()
    kind = f"{len(report.folds)}fold" if len(report.folds) > 1 else "test"
    if report.folds and report.folds[0].name.startswith("speaker "):
        kind = "loso"
    excel = f"{settings.data}_{kind}_{report.summary()['WAR']:.4f}_{settings.random_seed}_{result_dir.name[-15:]}.xlsx"
    written = write_test_outputs(report, result_dir, excel_name=excel, figures=not args.no_figures)
    print_written(result_dir, written)
    return 0


def _enable_mixed_precision() -> None:
    import keras
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):
        keras.mixed_precision.set_global_policy("mixed_float16")
    else:
        print("--mixed_precision ignored: no GPU in use (float16 is slower on the CPU).")


def run_predict(args: argparse.Namespace, given: set[str]) -> int:
    from timnet.inference import predict

    return predict.run_predict(args, given)


def run_export(args: argparse.Namespace, given: set[str]) -> int:
    from timnet.inference import predict

    return predict.run_export(args, given)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    given = explicit_flags(argv)
    handlers = {"train": run_train, "test": run_test, "predict": run_predict, "export": run_export}
    try:
        return handlers[args.mode](args, given)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""The ``timnet`` command: ``timnet train|cross-corpus|test|predict|export|serve|extract|mix|figures|demo-corpus``.

Each subcommand's ``--help`` lists only its own flags, grouped. The seed's
``python main.py --mode ...`` is the same commands behind one parser
(:mod:`timnet.cli.legacy`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from timnet.cli import features
from timnet.cli.common import run_command
from timnet.cli.options import Parser, add_config_flags, architecture_overrides, epilog, given_settings, groups
from timnet.config import DEFAULT_DATA, EXPORT_FORMATS, EXPORT_INPUTS
from timnet.version import __version__

TEST_CONFIG_FLAGS = ("data", "random_seed", "gpu", "model_path", "result_path", "loss", "filter_size", "kernel_size",
                     "stack_size", "dilation_size", "activation", "bidirection")


def add_train(parser: argparse.ArgumentParser) -> None:
    g = groups(parser, ("data", "architecture", "optimisation", "protocol", "devices", "outputs"))
    add_config_flags(parser, None, g)  # every configuration flag
    g["outputs"].add_argument("--no_figures", action="store_true", help="skip the PNG figures")


# timnet cross-corpus: the pairs set data, test data and protocol; the rest are the usual training flags.
CROSS_CORPUS_EXCLUDED = ("data", "test_data", "protocol", "split_fold", "group", "splits", "max_folds", "first_fold",
                         "from_completed_folds")


def add_cross_corpus(parser: argparse.ArgumentParser) -> None:
    from timnet.config import FLAGS

    g = groups(parser, ("data", "architecture", "optimisation", "protocol", "devices", "outputs"))
    g["data"].add_argument("--corpora", help="two or more corpora, comma-separated (names in MFCC/ or .npy paths, "
                           "extracted with one --mean_signal_length): every ordered pair A -> B is a run that trains "
                           "on A and tests on B over their shared classes")
    add_config_flags(parser, tuple(f.name for f in FLAGS if f.name not in CROSS_CORPUS_EXCLUDED), g)
    g["outputs"].add_argument("--no_figures", action="store_true", help="skip the PNG figures")


def add_test(parser: argparse.ArgumentParser) -> None:
    g = groups(parser, ("data", "model", "architecture", "devices", "outputs"))
    g["model"].add_argument("--test_path", help="weights file, .keras file or run folder (default: the seed's "
                                                "published weights when present, else the newest run)")
    add_config_flags(parser, TEST_CONFIG_FLAGS, {**g, "optimisation": g["model"], "protocol": g["model"]})
    g["outputs"].add_argument("--no_figures", action="store_true", help="skip the PNG figures")


def add_predict(parser: argparse.ArgumentParser) -> None:
    g = groups(parser, ("model", "audio", "architecture", "devices", "outputs"))
    g["model"].add_argument("--test_path", required=True, help="a .keras file, a weights .hdf5 or a run folder")
    g["model"].add_argument("--fold", type=int, default=None, help="which fold's model of a k-fold or LOSO folder")
    g["model"].add_argument("--data", default=argparse.SUPPRESS,
                            help=f"corpus whose class names a model file without labels uses (default: {DEFAULT_DATA})")
    g["audio"].add_argument("--wav", required=True, help="an audio file or a folder (searched recursively)")
    g["audio"].add_argument("--window_hop", type=float, default=None,
                            help="score overlapping windows this many seconds apart")
    g["audio"].add_argument("--jobs", type=int, default=None, help="worker processes for the MFCCs")
    add_config_flags(parser, ("filter_size", "kernel_size", "stack_size", "dilation_size", "activation",
                              "bidirection", "loss", "gpu", "result_path"), {**g, "optimisation": g["model"]})


def add_export(parser: argparse.ArgumentParser) -> None:
    g = groups(parser, ("model", "data", "outputs"))
    g["model"].add_argument("--test_path", required=True, help="a weights .hdf5, a .keras file or a run folder")
    g["model"].add_argument("--fold", type=int, default=None, help="which fold's model of a k-fold or LOSO folder")
    g["outputs"].add_argument("--output", required=True,
                              help="the file to write: .keras, .onnx, .tflite, or a folder for saved_model")
    g["outputs"].add_argument("--format", choices=EXPORT_FORMATS, default="keras",
                              help="keras: the network itself (embedding output for N-pair models); onnx, litert, "
                                   "saved_model: class scores, with the metadata inside or in <stem>.json "
                                   "(default: keras)")
    g["outputs"].add_argument("--input", choices=EXPORT_INPUTS, default="mfcc",
                              help="what the exported model takes: MFCC matrices, or a 22 050 Hz mono waveform "
                                   "(the MFCC front end inside the model) (default: mfcc)")
    g["outputs"].add_argument("--quantize", action="store_true",
                              help="int8 dynamic-range weights (onnx; the MFCC front end stays float)")
    g["outputs"].add_argument("--overwrite", action="store_true", help="replace an existing --output")
    add_config_flags(parser, ("data", "random_seed"), {**g, "optimisation": g["data"]})


def add_serve(parser: argparse.ArgumentParser) -> None:
    from timnet.config import ServeConfig

    d = ServeConfig()
    g = groups(parser, ("model", "server"))
    g["model"].add_argument("--test_path", required=True, help="a .keras file, a weights .hdf5 or a run folder")
    g["model"].add_argument("--fold", type=int, default=None, help="which fold's model of a k-fold or LOSO folder")
    g["model"].add_argument("--data", default=argparse.SUPPRESS,
                            help=f"corpus whose class names a model file without labels uses (default: {DEFAULT_DATA})")
    g["server"].add_argument("--host", default=d.host,
                             help="address to listen on; anything but 127.0.0.1 needs a reverse proxy with "
                                  "authentication in front (see README)")
    g["server"].add_argument("--port", type=int, default=d.port, help="port to listen on (0: a free one)")
    g["server"].add_argument("--workers", type=int, default=d.workers, help="threads that decode and score")
    g["server"].add_argument("--queue", type=int, default=d.queue,
                             help="requests that may wait for a worker; more get 503 with Retry-After")
    g["server"].add_argument("--max_upload_mb", type=float, default=d.max_upload_mb,
                             help="larger uploads are refused (413) while they arrive")
    g["server"].add_argument("--max_duration", type=float, default=d.max_duration,
                             help="longer recordings are refused (422), in seconds")


def run_serve(args: argparse.Namespace) -> int:
    from timnet.cli.common import user_path
    from timnet.config import ServeConfig
    from timnet.serving.server import serve

    settings = ServeConfig(host=args.host, port=args.port, workers=args.workers, queue=args.queue,
                           max_upload_mb=args.max_upload_mb, max_duration=args.max_duration)
    return serve(user_path(args.test_path), settings, args.fold, getattr(args, "data", DEFAULT_DATA))


def run_train(args: argparse.Namespace) -> int:
    from timnet.cli.train_test import run_train as run

    return run(args)


def run_cross_corpus(args: argparse.Namespace) -> int:
    from timnet.cli.train_test import run_cross_corpus as run

    return run(args)


def run_test(args: argparse.Namespace) -> int:
    from timnet.cli.train_test import run_test as run

    return run(args)


def model_file_args(args: argparse.Namespace) -> argparse.Namespace:
    """What predict and export take: their own flags plus the checks and resolved paths."""
    from timnet import paths
    from timnet.config import TrainingConfig

    given = given_settings(args)
    defaults = TrainingConfig()
    return argparse.Namespace(
        test_path=getattr(args, "test_path", None), wav=getattr(args, "wav", None),
        window_hop=getattr(args, "window_hop", None), jobs=getattr(args, "jobs", None),
        fold=getattr(args, "fold", None), output=getattr(args, "output", None),
        data=given.get("data", getattr(args, "data", None) or defaults.data),
        result_path=paths.resolve(given.get("result_path", defaults.result_path)),
        random_seed=given.get("random_seed", defaults.random_seed),
        overwrite=getattr(args, "overwrite", False), overrides=architecture_overrides(args),
        format=getattr(args, "format", "keras"), input=getattr(args, "input", "mfcc"),
        quantize=getattr(args, "quantize", False),
        gpu=given.get("gpu", defaults.gpu),
    )


def run_predict(args: argparse.Namespace) -> int:
    from timnet.cli.predict_export import run_predict as run

    return run(model_file_args(args))


def run_export(args: argparse.Namespace) -> int:
    from timnet.cli.predict_export import run_export as run

    return run(model_file_args(args))


Command = tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str, str]
COMMANDS: dict[str, Command] = {
    "train": (add_train, run_train, "train TIM-Net under a protocol and evaluate every fold",
              "timnet train --recipe paper --data EMODB --bidirection"),
    "cross-corpus": (add_cross_corpus, run_cross_corpus, "train on each corpus, test on each other one: the "
                     "cross-corpus matrix over seeds",
                     "timnet cross-corpus --corpora EMODB,RAVDE --recipe paper --seeds 46,47,48"),
    "test": (add_test, run_test, "test trained or downloaded weights on a feature file",
             "timnet test --data EMODB --test_path Test_Models/EMODB_46"),
    "predict": (add_predict, run_predict, "the emotion of your own recordings",
                "timnet predict --test_path Test_Models/<run>/weights_best.keras --wav my_recordings/"),
    "export": (add_export, run_export, "a model file -> one portable .keras, .onnx, .tflite or SavedModel",
               "timnet export --test_path Test_Models/EMODB_46/10-fold_weights_best_1.hdf5 --data EMODB "
               "--output EMODB_fold1.keras"),
    "serve": (add_serve, run_serve, "a web page and an HTTP API for a trained model",
              "timnet serve --test_path Test_Models/<run> --port 8000"),
    "extract": (features.add_extract, features.run_extract, "a corpus as published -> MFCC/<NAME>.npy",
                "timnet extract --corpus EMODB --input data/EMODB"),
    "mix": (features.add_mix, features.run_mix, "merge the corpora in MFCC/ into MFCC/INTERSECT.npy",
            "timnet mix"),
    "figures": (features.add_figures, features.run_figures, "draw Fig/architecture.png from the model",
                "timnet figures architecture --output Fig/architecture.png"),
    "demo-corpus": (features.add_demo_corpus, features.run_demo_corpus,
                    "write a synthetic corpus in the ESD layout (no download)", "timnet demo-corpus"),
}


def build_parser(argv: list[str] | None = None) -> Parser:
    """The ``timnet`` parser. Given the command line ``argv``, only the subcommand it
    names gets its flags (none for ``timnet --help``): some flags' defaults live in
    modules that are slow to import, and a command should not pay for the others'."""
    parser = Parser(prog="timnet", description="TIM-Net for speech emotion recognition.")
    parser.add_argument("--version", action="version", version=f"timnet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    wanted = None if argv is None else next((a for a in argv if not a.startswith("-")), "")
    for name, (add, _, summary, example) in COMMANDS.items():
        command = sub.add_parser(name, help=summary, description=summary, epilog=epilog(example))
        if wanted is None or wanted == name:
            add(command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The ``timnet`` console command (also ``python -m timnet``)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    return run_command(lambda: COMMANDS[args.command][1](args))


"""The seed's command line: ``python main.py --mode train|test|predict|export`` with every
original flag. One parser for all modes, as the original had; each mode runs the same
handler as the ``timnet`` subcommand of that name."""

from __future__ import annotations

import os
import sys

from timnet.cli import COMMANDS
from timnet.cli.common import run_command
from timnet.cli.options import Parser, add_config_flags, epilog, groups

MODES = ("train", "test", "predict", "export")


def build_parser() -> Parser:
    parser = Parser(prog="main.py", description="TIM-Net for speech emotion recognition: train, test, predict, "
                    "export (the same as timnet train|test|predict|export).",
                    epilog=epilog("python main.py --mode train --data INTERSECT --split_fold 10 --random_seed 46 "
                                  "--epoch 1_000_000 --gpu 0 --bidirection --batch_size 512"))
    parser.add_argument("--mode", choices=MODES, default="train", help="what to do")
    g = groups(parser, ("data", "model", "audio", "architecture", "optimisation", "protocol", "devices", "outputs"))
    add_config_flags(parser, None, g)
    g["model"].add_argument("--test_path", default=None, help="test/predict/export: weights file, .keras file or "
                            "run folder (test default: the seed's published weights, else the newest run)")
    g["model"].add_argument("--fold", type=int, default=None,
                            help="predict/export: which fold's model of a k-fold or LOSO run folder (default 1)")
    g["audio"].add_argument("--wav", default=None, help="predict: an audio file or a folder (searched recursively)")
    g["audio"].add_argument("--window_hop", type=float, default=None,
                            help="predict: score overlapping windows this many seconds apart")
    g["audio"].add_argument("--jobs", type=int, default=None, help="predict: worker processes for the MFCCs")
    g["outputs"].add_argument("--output", default=None, help="export: the .keras file to write")
    g["outputs"].add_argument("--overwrite", action="store_true", help="export: replace an existing --output")
    g["outputs"].add_argument("--no_figures", action="store_true", help="skip the PNG figures after train/test")
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    handler = COMMANDS[args.mode][1]
    if args.mode == "predict" and not args.wav:
        return run_command(lambda: _missing("--mode predict needs --wav <audio file or folder>"))
    if args.mode in ("predict", "export") and not args.test_path:
        return run_command(lambda: _missing(f"--mode {args.mode} needs --test_path <.keras file, weights .hdf5 or "
                                            "run folder>"))
    if args.mode == "export" and not args.output:
        return run_command(lambda: _missing("--mode export needs --output <path.keras>"))
    return run_command(lambda: handler(args))


def _missing(message: str) -> int:
    from timnet.errors import UserError

    raise UserError(message)


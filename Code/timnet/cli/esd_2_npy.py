"""ESD as published (``data/Emotional_Speech_Dataset``) to ``MFCC/ESD_train.npy`` and
``MFCC/ESD_test.npy`` (and ``MFCC/ESD_evaluation.npy`` with ``--evaluation``).

    python Code/esd_2_npy.py            # from any folder
    cd Code; python esd_2_npy.py        # as in the seed's README

Layout: ``<speaker>/<Emotion>/<split>/<file>.wav``. Relative paths are taken from the
current folder when they exist there, else from the repository root.
"""

from __future__ import annotations

import argparse
import sys

from timnet.features.corpora import SEED_SIGNAL_LENGTH
from timnet.features.corpus_prep import esd
from timnet.errors import UserError
from timnet.features.extract import check_output_dir, extract_corpus, positive_int, print_report
from timnet.features.mfcc import default_jobs
from timnet.paths import ESD_DIR, MFCC_DIR, resolve


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", default=str(ESD_DIR), help="ESD folder (default: data/Emotional_Speech_Dataset)")
    parser.add_argument("--output", default=str(MFCC_DIR), help="folder for ESD_<split>.npy (default: MFCC/)")
    parser.add_argument("--mean_signal_length", type=positive_int, default=SEED_SIGNAL_LENGTH,
                        help=f"samples per utterance at 22 050 Hz (default {SEED_SIGNAL_LENGTH}, as the seed)")
    parser.add_argument("--evaluation", action="store_true", help="also write ESD_evaluation.npy")
    parser.add_argument("--jobs", type=positive_int, default=default_jobs(), help="worker processes (default: all cores)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    splits = ["train", "test"] + (["evaluation"] if args.evaluation else [])
    try:
        root = resolve(args.input)
        if not root.is_dir():
            raise UserError(
                f"{args.input}: ESD folder not found (download ESD and extract it as "
                "data/Emotional_Speech_Dataset, or give --input)"
            )
        output = check_output_dir(resolve(args.output))
        specs = [esd.spec(split, args.mean_signal_length) for split in splits]
        for spec in specs:  # every split must be there before anything is written
            spec.list_utterances(root)
        for spec in specs:
            print_report(extract_corpus(spec, root, output, args.jobs, progress=not args.no_progress))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())

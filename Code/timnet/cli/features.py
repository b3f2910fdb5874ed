"""Subcommands that make feature files and data: ``extract``, the seed's ESD script, ``mix``,
``demo-corpus`` and ``figures``."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from timnet import paths
from timnet.cli.common import positive_int, run_command, user_path
from timnet.errors import UserError
from timnet.features import corpus_prep
from timnet.features.corpora import CLASS_LABELS, MEAN_SIGNAL_LENGTH, SEED_SIGNAL_LENGTH, corpus_key
from timnet.features.corpus_prep import CorpusSpec, esd, generic
from timnet.paths import ESD_DIR, FIG_DIR, MFCC_DIR

# --- extract ---------------------------------------------------------------------------


def add_extract(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data")
    data.add_argument("--corpus", required=True, help=f"one of {', '.join(corpus_prep.CHOICES)}")
    data.add_argument("--input", required=True, help="corpus folder as published")
    data.add_argument("--name", help="output name (default: the corpus' name, e.g. RAVDE; generic: the folder name)")
    # No argparse default: "classes" is also a configuration flag (timnet.config.FLAGS, training's subset).
    data.add_argument("--classes", default=argparse.SUPPRESS,
                      help="generic: comma-separated class folders, in column order")
    data.add_argument("--split", default="train", choices=esd.SPLITS, help="ESD: which split")
    prep = parser.add_argument_group("preprocessing")
    prep.add_argument("--mean_signal_length", type=positive_int,
                      help="samples per utterance at 22 050 Hz (default: the paper's value for the corpus)")
    out = parser.add_argument_group("outputs")
    out.add_argument("--output", default=str(MFCC_DIR), help="folder for <NAME>.npy")
    out.add_argument("--overwrite", action="store_true", help="replace an existing <NAME>.npy")
    out.add_argument("--jobs", type=positive_int, default=None, help="worker processes (default: all cores)")
    out.add_argument("--no_progress", action="store_true", help="no progress bar")


def spec_from_args(args: argparse.Namespace, root: Path) -> CorpusSpec:
    """The parser the options ask for, with name and signal length overrides applied."""
    classes_given = getattr(args, "classes", None)
    if args.corpus.lower() == "generic":
        name = args.name or root.name
        try:
            known = corpus_key(name)
        except KeyError:
            known = None
        if classes_given:
            classes = tuple(c.strip() for c in classes_given.split(",") if c.strip())
        elif known is not None:
            classes = CLASS_LABELS[known]
        else:
            classes = generic.class_folders(root)
        if len(set(classes)) != len(classes):
            raise UserError(f"--classes lists a class twice: {classes_given}")
        default_length = MEAN_SIGNAL_LENGTH.get(known or "", SEED_SIGNAL_LENGTH)
        return generic.spec(name, classes, args.mean_signal_length or default_length)
    if classes_given:
        raise UserError("--classes is only for --corpus generic (published layouts fix their classes)")
    spec = corpus_prep.get_spec(args.corpus)
    if spec.name.startswith("ESD"):
        spec = esd.spec(args.split, spec.mean_signal_length)
    return CorpusSpec(args.name or spec.name, spec.classes, args.mean_signal_length or spec.mean_signal_length,
                      spec.list_utterances, spec.layout)


def check_output_dir(output: Path) -> Path:
    """Refuse an output path that is an existing file before any work is done."""
    if output.exists() and not output.is_dir():
        raise UserError(f"{output}: --output must be a folder, not a file")
    return output


def check_name(name: str) -> str:
    """Output names become file names: no folders, no empty names."""
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise UserError(f"--name '{name}' must be a plain file name such as EMODB")
    return name


def run_extract(args: argparse.Namespace) -> int:
    root = user_path(args.input)
    if not root.is_dir():
        raise UserError(f"--input {args.input}: input folder not found (give the corpus folder as published)")
    output = paths.check_writable(check_output_dir(user_path(args.output)), "--output")
    spec = spec_from_args(args, root)
    check_name(spec.name)
    target = output / f"{spec.name}.npy"
    if target.exists() and not args.overwrite:
        raise UserError(f"{target}: the feature file exists; give --overwrite to replace it, or --name for another")
    from timnet.features.extract import extract_corpus, print_report  # librosa: after the checks
    from timnet.features.mfcc import default_jobs

    print_report(extract_corpus(spec, root, output, args.jobs or default_jobs(), progress=not args.no_progress))
    return 0


# --- the seed's ESD script ---------------------------------------------------------------


def add_esd(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", default=str(ESD_DIR), help="ESD folder (default: data/Emotional_Speech_Dataset)")
    parser.add_argument("--output", default=str(MFCC_DIR), help="folder for ESD_<split>.npy (default: MFCC/)")
    parser.add_argument("--mean_signal_length", type=positive_int, default=SEED_SIGNAL_LENGTH,
                        help=f"samples per utterance at 22 050 Hz (default {SEED_SIGNAL_LENGTH}, as the seed)")
    parser.add_argument("--evaluation", action="store_true", help="also write ESD_evaluation.npy")
    parser.add_argument("--jobs", type=positive_int, default=None, help="worker processes (default: all cores)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")


def run_esd(args: argparse.Namespace) -> int:
    """ESD's train and test splits (as the seed did), replacing the seed's own outputs."""
    splits = ["train", "test"] + (["evaluation"] if args.evaluation else [])
    root = user_path(args.input)
    if not root.is_dir():
        raise UserError(f"--input {args.input}: ESD folder not found (download ESD and extract it as "
                        "data/Emotional_Speech_Dataset, or give --input)")
    output = paths.check_writable(check_output_dir(user_path(args.output)), "--output")
    specs = [esd.spec(split, args.mean_signal_length) for split in splits]
    for spec in specs:  # every split must be there before anything is written
        spec.list_utterances(root)
    from timnet.features.extract import extract_corpus, print_report  # librosa: after the checks
    from timnet.features.files import describe_existing
    from timnet.features.mfcc import default_jobs

    for spec in specs:
        previous = describe_existing(output / f"{spec.name}.npy")
        print_report(extract_corpus(spec, root, output, args.jobs or default_jobs(), progress=not args.no_progress))
        if previous:
            print(f"  (replaced the earlier {previous})")
    return 0


def esd_main(argv: list[str] | None = None) -> int:
    """``cd Code; python esd_2_npy.py``: the seed's command."""
    parser = argparse.ArgumentParser(prog="esd_2_npy.py", allow_abbrev=False,
                                     description="ESD as published -> MFCC/ESD_train.npy and MFCC/ESD_test.npy")
    add_esd(parser)
    return run_command(lambda: run_esd(parser.parse_args(argv)))


# --- mix ------------------------------------------------------------------------------


def add_mix(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mfcc_dir", default=str(MFCC_DIR), help="folder of <NAME>.npy files (default: MFCC/)")
    parser.add_argument("--output", help="merged file (default: <mfcc_dir>/INTERSECT.npy, replaced on every run)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")


def run_mix(args: argparse.Namespace) -> int:
    """Merge the corpora of ``--mfcc_dir`` into INTERSECT (replacing the seed's own output, and saying so)."""
    mfcc_dir = user_path(args.mfcc_dir)
    if not mfcc_dir.is_dir():
        raise UserError(f"--mfcc_dir {args.mfcc_dir}: feature folder not found")
    from timnet.features.files import describe_existing, write_npy_dict  # NumPy: after the first check
    from timnet.features.mix import OUTPUT_NAME, class_counts, find_inputs, load_inputs, mix

    output = user_path(args.output) if args.output else mfcc_dir / OUTPUT_NAME
    if output.is_dir():
        raise UserError(f"--output {output}: must be a file name, not a folder")
    if args.output and output.exists() and not args.overwrite:
        raise UserError(f"--output {output}: the file exists; give --overwrite to replace it (only the default "
                        f"{OUTPUT_NAME} is replaced without asking, as the seed's mix_data.py did)")
    paths.check_writable(output.parent, "--output" if args.output else "--mfcc_dir", output)
    inputs = find_inputs(mfcc_dir, output)
    if not inputs:
        raise UserError(f"{mfcc_dir}: no feature file to merge (extract corpora first: timnet extract, "
                        "Code/esd_2_npy.py)")
    sets = load_inputs(inputs)
    data = mix(sets)
    for fs in sets:
        mine = data["corpus"] == fs.name
        print(f"{fs.name}: {len(fs.y)} utterances, {int(mine.sum())} kept, T {fs.x.shape[1]} "
              f"({class_counts(data['y'][mine])})")
    previous = describe_existing(output)
    write_npy_dict(output, data)
    print(f"wrote {output}: x {data['x'].shape}; {class_counts(data['y'])}"
          + (f" (replaced the earlier {previous})" if previous else ""))
    return 0


def mix_main(argv: list[str] | None = None) -> int:
    """``cd MFCC; python mix_data.py``: the seed's command."""
    parser = argparse.ArgumentParser(prog="mix_data.py", allow_abbrev=False,
                                     description="Merge the corpora in MFCC/ into MFCC/INTERSECT.npy")
    add_mix(parser)
    return run_command(lambda: run_mix(parser.parse_args(argv)))


# --- demo corpus ------------------------------------------------------------------------


def add_demo_corpus(parser: argparse.ArgumentParser) -> None:
    from timnet.features.demo_corpus import DEFAULT_PER_SPLIT

    parser.add_argument("--output", default=str(ESD_DIR), help="corpus folder (default: data/Emotional_Speech_Dataset)")
    parser.add_argument("--speakers", type=positive_int, default=5, help="speakers, alternating female/male")
    for split in ("train", "test", "evaluation"):
        parser.add_argument(f"--{split}", type=positive_int, default=DEFAULT_PER_SPLIT[split],
                            help=f"{split} utterances per speaker and emotion")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives identical files")
    parser.add_argument("--sample_rate", type=positive_int, default=16000, help="Hz (ESD's 16000)")
    parser.add_argument("--jobs", type=positive_int, default=None, help="worker processes (default: all cores)")
    parser.add_argument("--force", action="store_true", help="replace a demo corpus made with other settings")


def run_demo_corpus(args: argparse.Namespace) -> int:
    from timnet.features.demo_corpus import generate_corpus

    t0 = time.perf_counter()
    counts = generate_corpus(
        paths.check_writable(user_path(args.output), "--output"), speakers=args.speakers,
        per_split={"train": args.train, "test": args.test, "evaluation": args.evaluation},
        seed=args.seed, sample_rate=args.sample_rate, jobs=args.jobs, force=args.force, progress=True,
    )
    ps = counts["per_split"]
    print(f"demo corpus: {counts['root']}\n"
          f"  {counts['speakers']} speakers x {counts['emotions']} emotions: {counts['files']} files "
          f"(train {ps['train']}, test {ps['test']}, evaluation {ps['evaluation']}), {args.sample_rate} Hz mono int16\n"
          f"  written {counts['written']} ({counts['written_seconds']} s of audio), "
          f"already present {counts['skipped']}, in {time.perf_counter() - t0:.1f} s")
    return 0


# --- figures ----------------------------------------------------------------------------


def add_figures(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="figure", required=True)
    arch = sub.add_parser("architecture", allow_abbrev=False, help="draw the TIM-Net diagram from the model")
    arch.add_argument("--output", default=str(FIG_DIR / "architecture.png"), help="PNG to write")
    arch.add_argument("--filters", type=positive_int, default=39)
    arch.add_argument("--kernel_size", type=positive_int, default=2)
    arch.add_argument("--dilation_size", type=positive_int, default=8)
    arch.add_argument("--stack_size", type=positive_int, default=1)
    arch.add_argument("--no_bidirection", dest="bidirection", action="store_false", help="forward branch only")
    arch.add_argument("--head", choices=("softmax", "embedding"), default="softmax")
    arch.add_argument("--num_classes", type=positive_int, default=7)
    arch.add_argument("--time_steps", type=positive_int, default=188, help="frames of the input MFCC")
    arch.add_argument("--feature_dim", type=positive_int, default=39, help="MFCC coefficients per frame")


def run_figures(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    output = user_path(args.output)
    paths.check_writable(output.parent, "--output", output)
    from timnet.evaluation.figures import draw_architecture

    out = draw_architecture(
        output, filters=args.filters, kernel_size=args.kernel_size,
        dilation_size=args.dilation_size, stack_size=args.stack_size, bidirection=args.bidirection,
        head=args.head, num_classes=args.num_classes, input_shape=(args.time_steps, args.feature_dim),
    )
    print(out)
    return 0

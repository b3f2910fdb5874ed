"""``predict`` and ``export``: score recordings with a model file; write one portable ``.keras`` file.

Both take a namespace already checked by :func:`timnet.cli.model_file_args`
(``result_path`` resolved, ``overrides`` the architecture flags the user typed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from timnet import paths
from timnet.cli.common import user_path
from timnet.errors import UserError

if TYPE_CHECKING:
    from timnet.inference.predictor import PredictionRow, Predictor


def result_folder(result_path: Path) -> Path:
    """``<result_path>/predict_<time>``, or ``..._2``, ``_3`` when another run took it (created here)."""
    (folder,) = paths.create_exclusive([result_path / f"predict_{paths.timestamp()}"])
    return folder


def run_predict(args: argparse.Namespace) -> int:
    """Score ``--wav`` with ``--test_path``; exit 2 when no file could be scored."""
    from timnet.features.audio_formats import suffix_list
    from timnet.modelfiles.naming import resolve_model_file

    if not args.wav:
        raise UserError("--mode predict needs --wav <audio file or folder>")
    if not args.test_path:
        raise UserError("--mode predict needs --test_path <.keras file, weights .hdf5 or run folder>")
    if args.window_hop is not None and not args.window_hop > 0:
        raise UserError(f"--window_hop {args.window_hop}: give a positive number of seconds")
    if args.jobs is not None and args.jobs < 1:
        raise UserError(f"--jobs {args.jobs}: give at least 1")
    paths.check_writable(Path(args.result_path), "--result_path")
    from timnet.inference.featurise import featurise_files, find_audio  # NumPy: after the flags

    wav = user_path(args.wav)
    if not wav.exists():
        raise UserError(f"--wav {wav}: no such file or folder; give an audio file or a folder of them")
    files = find_audio(wav)
    if not files:
        raise UserError(f"--wav {wav}: no audio files in this folder ({suffix_list()})")
    source = resolve_model_file(user_path(args.test_path), args.fold)
    from timnet.inference.exported import is_exported

    if is_exported(source):
        return _predict_exported(args, source, files, wav)

    from timnet.modelfiles.loading import peek_preprocessing  # NumPy: after the checks above
    # Features first, while TensorFlow is not loaded: workers can then be forked (fast).
    peek = peek_preprocessing(source, args.data)
    featurised = featurise_files(files, *peek, args.window_hop, args.jobs) if peek else None

    from timnet.inference.predictor import Predictor
    from timnet.modelfiles.loading import load_model

    loaded = load_model(source, args.data, args.overrides)
    predictor = Predictor(loaded.model, loaded.metadata, source, notes=loaded.notes)
    if featurised is None or (featurised.mean_signal_length, featurised.n_mfcc) != (
            predictor.mean_signal_length, predictor.n_mfcc):
        featurised = featurise_files(files, predictor.mean_signal_length, predictor.n_mfcc, args.window_hop, args.jobs)
    for note in predictor.notes:
        print(f"note: {note}")
    print(f"Model {predictor.source}: {predictor.head} head, classes {', '.join(predictor.class_labels)}; "
          f"{predictor.mean_signal_length} samples at {predictor.sample_rate} Hz, {predictor.n_mfcc} MFCCs")
    rows = predictor.score(featurised)
    return _report(rows, predictor, args, wav)


def _predict_exported(args: argparse.Namespace, source: Path, files: list[Path], wav: Path) -> int:
    """``predict`` with an .onnx or .tflite file: ONNX Runtime or LiteRT, never TensorFlow."""
    from timnet.inference.exported import ExportedPredictor

    if args.overrides:
        from timnet.modelfiles.metadata import flag_text

        flags = ", ".join(flag_text(k, v) for k, v in args.overrides.items())
        raise UserError(f"{flags}: an exported model file records its network; leave these flags out")
    predictor = ExportedPredictor(source)
    print(f"Model {predictor.source}: {predictor.head} head, classes {', '.join(predictor.class_labels)}; "
          f"{predictor.mean_signal_length} samples at {predictor.sample_rate} Hz, {predictor.n_mfcc} MFCCs"
          f" ({'waveform' if predictor.takes_waveform else 'MFCC'} input, {Path(source).suffix[1:]} runtime)")
    rows = predictor.predict_files(files, args.window_hop, args.jobs)
    return _report(rows, predictor, args, wav)


def _report(rows: list[PredictionRow], predictor: Predictor, args: argparse.Namespace, wav: Path) -> int:
    """Write and print the rows; exit 2 when no file could be scored."""
    from timnet.inference.outputs import print_table, write_outputs

    written = write_outputs(rows, result_folder(Path(args.result_path)), predictor, args.window_hop)
    print_table(rows, predictor.class_labels, wav if wav.is_dir() else None)
    scored = sum(r.ok for r in rows)
    print(f"{scored} of {len(rows)} files scored ({predictor.score_kind}); results in {written['csv']} and "
          f"{written['json'].name}" + (f" and {written['windows'].name}" if "windows" in written else ""))
    if not scored:
        print(f"error: no file could be scored (see the status column of {written['csv']})", file=sys.stderr)
        return 2
    return 0


def run_export(args: argparse.Namespace) -> int:
    """A model file -> one self-contained .keras file, or an ONNX / LiteRT / SavedModel artifact."""
    from timnet.modelfiles.naming import resolve_model_file

    fmt, input_kind, quantize = getattr(args, "format", "keras"), getattr(args, "input", "mfcc"), \
        getattr(args, "quantize", False)
    if not args.test_path:
        raise UserError("--mode export needs --test_path <weights .hdf5, .keras file or run folder>")
    if not args.output:
        raise UserError("--mode export needs --output <path.keras>")
    output = user_path(args.output)
    if fmt == "keras" and output.suffix != ".keras":
        raise UserError(f"--output {output}: the portable model file must end in .keras")
    if fmt != "keras":
        from timnet.modelfiles.deploy_export import output_path_for

        output_path_for(output, fmt)
    if output.exists() and not args.overwrite:
        raise UserError(f"--output {output}: the file exists; give --overwrite to replace it")
    paths.check_writable(output.parent, "--output", output)
    source = resolve_model_file(user_path(args.test_path), args.fold)
    from timnet.modelfiles.loading import file_head  # NumPy: after the checks above

    head, has_centroids = file_head(source)
    features = None
    if head == "embedding" and not has_centroids:
        from timnet.features.files import load_data

        try:
            features = load_data(args.data)
        except UserError as exc:
            raise UserError(f"{source}: an embedding model without class centroids; computing them needs the "
                            f"training feature file ({exc})") from None

    if fmt == "keras" and input_kind == "mfcc" and not quantize:
        from timnet.modelfiles.export import export_model

        result = export_model(source, output, args.data, features, args.random_seed, overwrite=args.overwrite,
                              overrides=args.overrides)
    else:
        from timnet.modelfiles.deploy_export import export_artifact

        result = export_artifact(source, output, fmt, input_kind, args.data, features, args.random_seed,
                                 overwrite=args.overwrite, overrides=args.overrides, quantize=quantize)
    for note in result.notes:
        print(f"note: {note}")
    if result.centroids_note:
        print(f"Class centroids computed from {result.centroids_note} (training-set centroids)")
    meta = result.metadata
    what = "" if fmt == "keras" else (f" ({fmt}, {input_kind} in, class scores out"
                                       + (", int8 weights" if quantize else "") + ")")
    print(f"Exported {source} -> {output}{what}: {meta.head} head, classes {', '.join(meta.class_labels)}, "
          f"{meta.mean_signal_length} samples at {meta.sample_rate} Hz"
          + (", with class centroids" if meta.centroids is not None else ""))
    if fmt == "litert":
        from timnet.modelfiles.deploy_export import sidecar_path

        print(f"Metadata in {sidecar_path(output)} (keep it beside the .tflite file)")
    return 0

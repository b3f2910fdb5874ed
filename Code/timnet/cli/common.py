"""What every command shares: path rule, argument types, and the one error policy.

Exit codes: 0 success (an interrupted training that saved and evaluated weights too),
1 an unexpected internal error (the only case with a traceback), 2 a usage or input
error (one ``error:`` line), 130 interrupted (one line: nothing saved, or the run saved and its ``--resume``).
"""

from __future__ import annotations

import _thread
import argparse
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from timnet.errors import WRITE_ERRNOS, UserError, reason, write_fix

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
PATH_RULE = ("Paths you give are taken from the current folder; --data NAME (no .npy) and the default folders "
             "(MFCC/, Test_Models/, Results/, log/, data/) are under the project root: the repository when run "
             "from its checkout, else $TIMNET_HOME or the current folder.")
ISSUES_URL = "https://github.com/ (the project's issue tracker)"


def user_path(text: str | Path) -> Path:
    """A path the user gave: absolute, or relative to the current folder."""
    return Path(text).expanduser().absolute()


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _interrupt_main_later() -> None:
    time.sleep(0.01)  # the main thread leaves the hook (microseconds) before the interrupt trips
    _thread.interrupt_main()


def _interrupt_in_cleanup(unraisable: sys.UnraisableHookArgs) -> None:
    """Ctrl-C that lands inside a library's ``__del__`` (llvmlite's, under librosa) would
    be printed as an ignored exception and lost; raise it again in the main code, where
    the command reports the interruption in one line. A write error in a ``__del__`` (a
    file object closed after its disk filled up) is the failure the command reports."""
    if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
        # interrupt_main() called here trips at once, in this hook, where the interrupt would be
        # lost again (and the command went on, or hung, after a Ctrl-C): call it from a thread,
        # once this hook has returned.
        _thread.start_new_thread(_interrupt_main_later, ())
        return
    if isinstance(unraisable.exc_value, OSError) and unraisable.exc_value.errno in WRITE_ERRNOS:
        return  # a file abandoned by a failed write (full disk, read-only): the command reports that failure
    sys.__unraisablehook__(unraisable)


# Packages of pyproject's "train" extra (TensorFlow, Keras, the exporters, the report writers).
TRAIN_EXTRA_MODULES = frozenset({"tensorflow", "keras", "tf2onnx", "onnx", "sklearn", "pandas", "openpyxl",
                                 "matplotlib", "tensorboard", "h5py"})


def run_command(command: Callable[[], int]) -> int:
    """Run a command under the error policy above."""
    sys.unraisablehook = _interrupt_in_cleanup
    try:
        return command()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        print(f"interrupted: {exc}" if str(exc) else "interrupted: nothing was saved", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit:
        raise
    except ModuleNotFoundError as exc:
        package = (exc.name or "").split(".")[0]
        if package not in TRAIN_EXTRA_MODULES:
            raise
        # The core install (pip install timnet) classifies with .onnx files only.
        print(f"error: this command needs {package}, which the core install leaves out; install the training "
              "extra (pip install \"timnet[train]\", or make setup) or predict with an exported .onnx model",
              file=sys.stderr)
        return UserError.exit_code
    except OSError as exc:
        if exc.errno not in WRITE_ERRNOS:
            return _internal_error()
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{reason(exc)}; {write_fix(exc.errno)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception:  # noqa: BLE001 - the one place that turns a bug into a report
        return _internal_error()


def _internal_error() -> int:
    """A bug: the traceback of the exception being handled and a request to report it."""
    traceback.print_exc()
    print("error: an internal error stopped the command (the traceback above); please report it with the "
          "command line and the versions (python -m pip list)", file=sys.stderr)
    return EXIT_INTERNAL


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples kept as written; a flag's default shown once, and only when it has one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.required or action.default in (None, False, argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"

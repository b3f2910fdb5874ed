"""The seed's mixing step: ``cd MFCC; python mix_data.py`` merges the corpora in ``MFCC/``
into ``MFCC/INTERSECT.npy`` (``timnet.features.mix``; needs the installed package: ``make setup``)."""

import sys

try:
    from timnet.cli.features import mix_main as main
except ModuleNotFoundError as exc:
    if exc.name != "timnet":
        raise
    print("error: the timnet package is not installed in this Python: run `make setup` and use .venv/bin/python, "
          "or `pip install -e .` in the repository", file=sys.stderr)
    sys.exit(2)
except KeyboardInterrupt:  # Ctrl-C while the libraries load: one line, as everywhere
    print("interrupted: nothing was saved", file=sys.stderr)
    sys.exit(130)

if __name__ == "__main__":
    sys.exit(main())

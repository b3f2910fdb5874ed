"""The seed's command line: ``cd Code; python main.py --mode train|test|predict|export ...``.

A thin entry point into the ``timnet`` package (``timnet.cli.legacy``); ``timnet
train|test|...`` is the same with subcommands.
"""

import sys

try:
    from timnet.cli.legacy import main
except KeyboardInterrupt:  # Ctrl-C while the libraries load: one line, as everywhere
    print("interrupted: nothing was saved", file=sys.stderr)
    sys.exit(130)

if __name__ == "__main__":
    sys.exit(main())

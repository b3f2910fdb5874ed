"""The seed's command line: ``cd Code; python main.py --mode train|test|predict|export ...``.

A thin entry point into the ``timnet`` package (``timnet.cli.legacy``); ``timnet
train|test|...`` is the same with subcommands.
"""

import sys

from timnet.cli.legacy import main

if __name__ == "__main__":
    sys.exit(main())

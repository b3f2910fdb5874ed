"""``python -m timnet``: the ``timnet`` command."""

import sys

try:
    from timnet.cli import main
except KeyboardInterrupt:  # Ctrl-C while the libraries load: one line, as everywhere
    print("interrupted: nothing was saved", file=sys.stderr)
    sys.exit(130)

sys.exit(main())

"""``python -m timnet``: the ``timnet`` command."""

import sys

from timnet.cli import main

sys.exit(main())

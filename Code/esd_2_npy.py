"""The seed's ESD extraction: ``cd Code; python esd_2_npy.py`` writes ``MFCC/ESD_train.npy``
and ``MFCC/ESD_test.npy`` from ``data/Emotional_Speech_Dataset`` (``timnet.cli.features``)."""

import sys

try:
    from timnet.cli.features import esd_main
except KeyboardInterrupt:  # Ctrl-C while the libraries load: one line, as everywhere
    print("interrupted: nothing was saved", file=sys.stderr)
    sys.exit(130)

if __name__ == "__main__":
    sys.exit(esd_main())

"""The seed's ESD extraction: ``cd Code; python esd_2_npy.py`` writes ``MFCC/ESD_train.npy``
and ``MFCC/ESD_test.npy`` from ``data/Emotional_Speech_Dataset`` (``timnet.cli.esd_2_npy``)."""

import sys

from timnet.cli.esd_2_npy import main

if __name__ == "__main__":
    sys.exit(main())

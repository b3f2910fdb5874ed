"""Cross-corpus: train on one corpus, test on others, over the classes they share (the
paper's domain-generalisation experiment).

The data is the joined feature set of :func:`timnet.features.cross_corpus.join_corpora`:
every utterance records its corpus. One fold per test corpus: the training part is every
utterance of the training corpus (``--data``), the test part every utterance of that test
corpus (``--test_data``). The checkpoint is the LAST epoch: it is never chosen on the test
corpus. The validation loss and UAR shown every epoch are computed on the test corpus for
display only; they pick nothing.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from timnet.errors import UserError
from timnet.protocols.base import _SUFFIX, Protocol, ProtocolSettings, Split

if TYPE_CHECKING:
    from timnet.features.files import FeatureSet


class CrossCorpusProtocol(Protocol):
    """Train on ``--data``, test on each ``--test_data`` corpus; last epoch of every fold."""

    name = "cross-corpus"
    help = "train on --data, test on each --test_data corpus over their shared classes (last epoch)"
    name_pattern = re.compile(rf"^cross-corpus_weights_(?P<fold>\d+)_(?P<held_out>.+){_SUFFIX}")
    fix = "choose classes the corpora share with --classes"

    def splits(self, features: FeatureSet, settings: ProtocolSettings, source: str = "data") -> list[Split]:
        import numpy as np

        from timnet.features.cross_corpus import CORPUS_KEY, TRAIN_CORPUS_KEY

        corpus = features.extra.get(CORPUS_KEY)
        train_corpus = features.extra.get(TRAIN_CORPUS_KEY)
        if corpus is None or train_corpus is None:
            raise UserError(f"{source}: --protocol cross-corpus trains on --data and tests on --test_data: give the "
                            "test corpora with --test_data B[,C...]")
        corpus = np.asarray(corpus).astype(str)
        train = np.flatnonzero(corpus == str(train_corpus))
        tests = [c for c in dict.fromkeys(corpus.tolist()) if c != str(train_corpus)]
        if not len(train) or not tests:
            raise UserError(f"{source}: cross-corpus needs utterances of the training corpus and of a test corpus")
        return [Split(i, train, np.flatnonzero(corpus == name), f"{train_corpus} -> {name}", name)
                for i, name in enumerate(tests, start=1)]

    def weights_name(self, split: Split, folds: int) -> str:
        return f"cross-corpus_weights_{split.fold}_{split.held_out}.hdf5"

    def keeps_best_epoch(self, split: Split) -> bool:
        return False  # never chosen on the test corpus

    def report_kind(self, folds: int) -> str:
        return "crosscorpus"

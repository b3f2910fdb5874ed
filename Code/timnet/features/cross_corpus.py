"""Several corpora as one feature set, for training on one and testing on the others.

A model has one output per class, so training on corpus A and testing on B needs one
class list: the classes A and every test corpus share, matched by name
(:func:`timnet.features.classes.canonical_class`: RAVDESS "fearful" is EMO-DB's "fear"),
in A's order and under A's names; ``--classes`` narrows it further. Utterances of other
classes are left out and counted per corpus. Every utterance records its corpus (the
``corpus`` key beside ``speaker``); the cross-corpus protocol splits by it.

Frame counts and MFCC counts must agree (the paper extracts every corpus with one
``mean_signal_length``); otherwise one error says how to extract them alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from timnet.errors import UserError
from timnet.features.classes import canonical_class, parse_class_list
from timnet.features.files import FeatureSet

CORPUS_KEY = "corpus"  # per utterance: the corpus it comes from
TRAIN_CORPUS_KEY = "train_corpus"  # the corpus the model trains on (the others are tested)


@dataclass
class JoinedCorpora:
    """The joined feature set and what the join left out (one note per corpus that lost utterances)."""

    features: FeatureSet
    shared: tuple[str, ...]  # the training corpus's names of the shared classes
    left_out: dict[str, dict[str, int]] = field(default_factory=dict)  # corpus -> class -> utterances

    def notes(self) -> list[str]:
        out = [f"cross-corpus: {self.features.extra[TRAIN_CORPUS_KEY]} -> "
               f"{', '.join(c for c in self.corpora if c != self.features.extra[TRAIN_CORPUS_KEY])} on the "
               f"{len(self.shared)} shared classes ({', '.join(self.shared)})"]
        for corpus, counts in self.left_out.items():
            if counts:
                detail = ", ".join(f"{c} {n}" for c, n in counts.items())
                out.append(f"{corpus}: {sum(counts.values())} utterances of classes outside the shared set left "
                           f"out ({detail})")
        return out

    @property
    def corpora(self) -> list[str]:
        return list(dict.fromkeys(self.features.extra[CORPUS_KEY].tolist()))


def check_alike(train: FeatureSet, test: FeatureSet) -> None:
    """The same frames and MFCCs per utterance, else one error naming ``--mean_signal_length``."""
    if train.x.shape[2] != test.x.shape[2]:
        raise UserError(f"{test.path or test.name}: {test.x.shape[2]} MFCCs per frame but {train.path or train.name} "
                        f"has {train.x.shape[2]}: extract both corpora alike with timnet extract")
    if train.x.shape[1] != test.x.shape[1]:
        raise UserError(f"{test.path or test.name} has {test.x.shape[1]} frames per utterance "
                        f"({test.mean_signal_length} samples) but {train.path or train.name} has {train.x.shape[1]} "
                        f"({train.mean_signal_length} samples): extract both corpora alike: timnet extract ... "
                        f"--mean_signal_length {train.mean_signal_length}")


def _present(features: FeatureSet) -> list[str]:
    """Canonical names of the classes that have at least one utterance."""
    counts = np.bincount(features.labels, minlength=len(features.class_labels))
    return [canonical_class(c) for c, n in zip(features.class_labels, counts) if n]


def shared_classes(train: FeatureSet, tests: Sequence[FeatureSet], classes: str | Sequence[str] | None = None,
                   flag: str = "--classes", corpora_flag: str = "--test_data") -> tuple[str, ...]:
    """The training corpus's names of the classes every corpus has (its order), narrowed
    to ``classes`` when given; an error when fewer than two remain."""
    common = set(_present(train))
    for test in tests:
        common &= set(_present(test))
    names = [c for c in train.class_labels if canonical_class(c) in common]
    everyone = f"{train.name} and {', '.join(t.name for t in tests)}"
    if not names:
        listed = "; ".join(f"{f.name}: {', '.join(f.class_labels)}" for f in (train, *tests))
        raise UserError(f"{corpora_flag}: {everyone} share no class ({listed}); classes are matched by name, synonyms "
                        "included (timnet.features.classes.SYNONYMS)")
    if classes is not None:
        wanted = parse_class_list(classes)
        canon = {canonical_class(c): c for c in wanted}
        missing = [c for k, c in canon.items() if k not in common]
        if missing:
            raise UserError(f"{flag}: {', '.join(missing)} not among the classes {everyone} share "
                            f"({', '.join(names)})")
        names = [c for c in names if canonical_class(c) in canon]
    if len(names) < 2:
        raise UserError(f"{corpora_flag}: {everyone} share only {', '.join(names)}; a classifier needs at least two "
                        "classes")
    return tuple(names)


def check_corpus_names(corpora: Sequence[str]) -> None:
    """Two or more corpora with different names (the file stems of ``.npy`` paths)."""
    from pathlib import Path

    names = [Path(c).stem if c.endswith(".npy") else c for c in corpora]
    if len(corpora) < 2 or len(set(names)) != len(names):
        raise UserError(f"--corpora {','.join(corpora)}: give two or more different corpora, comma-separated "
                        "(e.g. EMODB,RAVDE)")


def check_corpora(corpora: Sequence[str], classes: str | Sequence[str] | None = None) -> None:
    """``timnet cross-corpus --corpora``: two or more different corpora that all load, have
    the same frames and MFCCs, and share two classes or more pairwise, before anything trains."""
    from timnet.features.files import load_data

    check_corpus_names(corpora)
    loaded = [load_data(c) for c in corpora]
    for other in loaded[1:]:
        check_alike(loaded[0], other)
    for a in loaded:
        for b in loaded:
            if a is not b:
                shared_classes(a, [b], classes, corpora_flag="--corpora")


def join_corpora(train: FeatureSet, tests: Sequence[FeatureSet], classes: str | Sequence[str] | None = None
                 ) -> JoinedCorpora:
    """``train`` followed by every test corpus, over their shared classes (see the module).

    Corpora are named by their feature set's name (the file's stem); names must differ.
    The result keeps the training corpus's path (its file is the one a resume reads) and
    has a fingerprint of its own: a model trained on it meets any single corpus's file as
    other data, scored whole."""
    names = [train.name, *(t.name for t in tests)]
    if len(set(names)) != len(names):
        raise UserError(f"--test_data: corpora need different names, got {', '.join(names)} (the file stems)")
    for test in tests:
        check_alike(train, test)
    shared = shared_classes(train, tests, classes)
    canon_index = {canonical_class(c): j for j, c in enumerate(shared)}
    parts_x, parts_labels, corpus, speakers, files = [], [], [], [], []
    left_out: dict[str, dict[str, int]] = {}
    for features in (train, *tests):
        to_shared = np.array([canon_index.get(canonical_class(c), -1) for c in features.class_labels])
        labels = to_shared[features.labels]
        keep = np.flatnonzero(labels >= 0)
        counts = np.bincount(features.labels[labels < 0], minlength=len(features.class_labels))
        left_out[features.name] = {c: int(n) for c, n in zip(features.class_labels, counts) if n}
        parts_x.append(features.x[keep])
        parts_labels.append(labels[keep])
        corpus.append(np.full(len(keep), features.name, dtype=object))
        speakers.append(None if features.speakers is None else features.speakers[keep])
        files.append(None if features.files is None else features.files[keep])
    labels = np.concatenate(parts_labels)
    y = np.zeros((len(labels), len(shared)), dtype=np.float32)
    y[np.arange(len(labels)), labels] = 1.0
    extra: dict[str, object] = {CORPUS_KEY: np.concatenate(corpus).astype(str), TRAIN_CORPUS_KEY: train.name}
    if "mean_signal_length" in train.extra:
        extra["mean_signal_length"] = train.extra["mean_signal_length"]
    joined = FeatureSet(
        x=np.concatenate(parts_x), y=y, class_labels=shared, name=f"{train.name} -> {'+'.join(names[1:])}",
        path=train.path,
        speakers=None if any(s is None for s in speakers) else np.concatenate(speakers).astype(str),
        files=None if any(f is None for f in files) else np.concatenate(files).astype(str),
        extra=extra,
    )
    return JoinedCorpora(joined, shared, left_out)


__all__ = ["CORPUS_KEY", "TRAIN_CORPUS_KEY", "JoinedCorpora", "check_alike", "check_corpora", "check_corpus_names", "join_corpora",
           "shared_classes"]

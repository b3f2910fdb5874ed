"""Emotion classes by name: one synonym table, and the mapping between two class lists.

Corpora name the same emotion differently (RAVDESS "fearful", EMO-DB's translations
"fear"; "anger" and "angry"; "happiness"; "surprised"), and a model trained on one
corpus meets feature files of others. Every comparison of class names in the project
goes through :func:`canonical_class`, so that "fearful" and "fear" are one class, and
:func:`map_classes` says which of a feature file's classes a model knows:

- ``--classes angry,happy,neutral,sad`` trains on a subset (:func:`select_classes`);
- test, evaluate and export on a file with other classes keep the utterances of the
  classes the model knows, score them over all of the model's classes, and count
  what was left out (:class:`ClassMapping`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from timnet.errors import UserError
from timnet.features.files import FeatureSet

# Canonical name -> the other names corpora and tools use for it (lower case). The
# canonical names are the project's (features.corpora.CLASS_LABELS).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "angry": ("anger", "ang", "angered", "wut", "rabbia"),
    "boredom": ("bored", "boring", "bor", "langeweile"),
    "calm": ("calmness", "cal"),
    "contempt": ("contemptuous", "con"),
    "disgust": ("disgusted", "dis", "disgusto", "ekel"),
    "fear": ("fearful", "afraid", "fea", "angst", "paura"),
    "happy": ("happiness", "hap", "joy", "joyful", "gioia", "freude"),
    "neutral": ("neu", "neutrality", "neutro"),
    "sad": ("sadness", "sorrow", "trauer", "tristezza"),
    "surprise": ("surprised", "sur", "sorpresa"),
}
_CANONICAL: dict[str, str] = {name: canon for canon, names in SYNONYMS.items() for name in (canon, *names)}


def normalise(name: str) -> str:
    """Lower case, surrounding space dropped, inner spaces and dashes as underscores."""
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


def canonical_class(name: str) -> str:
    """The project's name for a class (``"Fearful"`` -> ``"fear"``); a name the table
    does not know is kept, normalised, and matches only itself."""
    key = normalise(name)
    return _CANONICAL.get(key, key)


def parse_class_list(text: str | Iterable[str]) -> tuple[str, ...]:
    """``"angry, happy,neutral"`` (or a sequence) -> ``("angry", "happy", "neutral")``."""
    parts = text.split(",") if isinstance(text, str) else [str(p) for p in text]
    return tuple(p.strip() for p in parts if p.strip())


def _check_unique(labels: Sequence[str], holder: str) -> None:
    seen: dict[str, str] = {}
    for label in labels:
        canon = canonical_class(label)
        if canon in seen:
            raise UserError(f"{holder}: classes '{seen[canon]}' and '{label}' are the same class ({canon})")
        seen[canon] = label


@dataclass(frozen=True)
class ClassMapping:
    """How a feature file's classes (``data_labels``) meet a model's (``model_labels``).

    ``to_model[i]`` is the model's index of the data's class ``i``, or -1 when the model
    lacks it (its utterances are left out). ``shared`` are the model's indices of the
    classes both have; ``model_only`` the model's classes the data lacks (they can still
    be predicted, and such a prediction is wrong)."""

    model_labels: tuple[str, ...]
    data_labels: tuple[str, ...]
    to_model: np.ndarray

    @property
    def identity(self) -> bool:
        """The same classes in the same order (by name): nothing to map."""
        return len(self.model_labels) == len(self.data_labels) and bool(
            np.array_equal(self.to_model, np.arange(len(self.data_labels))))

    @property
    def shared(self) -> tuple[int, ...]:
        """Model indices of the classes the data has too, in the model's order."""
        return tuple(sorted(int(i) for i in self.to_model if i >= 0))

    @property
    def model_only(self) -> tuple[str, ...]:
        shared = set(self.shared)
        return tuple(c for i, c in enumerate(self.model_labels) if i not in shared)

    @property
    def data_only(self) -> tuple[str, ...]:
        return tuple(c for c, i in zip(self.data_labels, self.to_model) if i < 0)

    def model_labels_of(self, data_labels: np.ndarray) -> np.ndarray:
        """The model's class index of every utterance (data class indices), -1 for a class it lacks."""
        return self.to_model[np.asarray(data_labels, dtype=int)]

    def left_out(self, data_labels: np.ndarray) -> dict[str, int]:
        """Utterances per data class the model lacks (only classes that occur)."""
        counts = np.bincount(np.asarray(data_labels, dtype=int), minlength=len(self.data_labels))
        return {c: int(counts[i]) for i, c in enumerate(self.data_labels) if self.to_model[i] < 0 and counts[i]}

    def describe(self) -> str:
        """One line for a report: which classes matched, by which names."""
        pairs = [d if d == self.model_labels[m] else f"{d} = {self.model_labels[m]}"
                 for d, m in zip(self.data_labels, self.to_model) if m >= 0]
        return f"shared classes {', '.join(pairs)}"

    def to_dict(self) -> dict[str, Any]:
        return {"model_classes": list(self.model_labels), "data_classes": list(self.data_labels),
                "data_to_model": [int(i) for i in self.to_model], "model_only": list(self.model_only),
                "data_only": list(self.data_only)}


def map_classes(model_labels: Sequence[str], data_labels: Sequence[str], model: str = "the model",
                data: str = "the data") -> ClassMapping:
    """Match ``data_labels`` to ``model_labels`` by canonical name (:func:`canonical_class`).

    ``model`` and ``data`` name the two sides in errors: a list that names one class
    twice, or no class in common at all, is a :class:`UserError`."""
    model_labels, data_labels = tuple(map(str, model_labels)), tuple(map(str, data_labels))
    _check_unique(model_labels, model)
    _check_unique(data_labels, data)
    index = {canonical_class(c): i for i, c in enumerate(model_labels)}
    to_model = np.array([index.get(canonical_class(c), -1) for c in data_labels], dtype=int)
    if not (to_model >= 0).any():
        raise UserError(f"{data}: no class in common with {model}: {len(data_labels)} classes "
                        f"({', '.join(data_labels)}) against {len(model_labels)} ({', '.join(model_labels)}); classes "
                        "are matched by name, synonyms included (timnet.features.classes.SYNONYMS)")
    return ClassMapping(model_labels, data_labels, to_model)


@dataclass
class ClassSelection:
    """A feature file restricted to some classes, and what was left out."""

    features: FeatureSet
    left_out: dict[str, int]  # utterances per class not selected

    @property
    def n_left_out(self) -> int:
        return sum(self.left_out.values())

    def note(self) -> str | None:
        """The report line: how many utterances of which classes were left out."""
        if not self.left_out:
            return None
        kept = len(self.features.x)
        detail = ", ".join(f"{c} {n}" for c, n in self.left_out.items())
        return (f"--classes {','.join(self.features.class_labels)}: {kept} of {kept + self.n_left_out} utterances "
                f"of {self.features.path or self.features.name}; {self.n_left_out} left out ({detail})")


def select_classes(features: FeatureSet, classes: str | Sequence[str] | None, flag: str = "--classes") -> ClassSelection:
    """``features`` restricted to ``classes`` (names or synonyms, in any order; the
    file's column order is kept, under the file's names). None: every class.

    The subset keeps the file's fingerprint (``FeatureSet.fingerprint``), so that a model
    trained on it recognises the file it came from when tested."""
    if classes is None:
        return ClassSelection(features, {})
    wanted = parse_class_list(classes)
    source = str(features.path or features.name)
    if not wanted:
        raise UserError(f"{flag}: give the classes to train on, comma-separated (e.g. angry,happy,neutral,sad)")
    _check_unique(wanted, flag)
    mapping = map_classes(wanted, features.class_labels, model=f"{flag} {','.join(wanted)}", data=source)
    missing = [wanted[i] for i in range(len(wanted)) if i not in mapping.shared]
    if missing:
        raise UserError(f"{flag}: {', '.join(missing)} not among {source}'s classes "
                        f"({', '.join(features.class_labels)})")
    if len(wanted) < 2:
        raise UserError(f"{flag} {','.join(wanted)}: a classifier needs at least two classes")
    selected = [i for i, m in enumerate(mapping.to_model) if m >= 0]  # the file's order
    labels = features.labels
    left_out = mapping.left_out(labels)
    if not left_out and len(selected) == len(features.class_labels):
        return ClassSelection(features, {})
    keep = np.flatnonzero(np.isin(labels, selected))
    column = {c: j for j, c in enumerate(selected)}
    y = np.zeros((len(keep), len(selected)), dtype=np.float32)
    y[np.arange(len(keep)), [column[c] for c in labels[keep]]] = 1.0
    subset = replace(
        features, x=features.x[keep], y=y, class_labels=tuple(features.class_labels[i] for i in selected),
        speakers=None if features.speakers is None else features.speakers[keep],
        files=None if features.files is None else features.files[keep],
        # per-utterance keys (a session, say) follow their utterances
        extra={k: (np.asarray(v)[keep] if np.ndim(v) and len(v) == len(labels) else v)
               for k, v in features.extra.items()},
    )
    subset.inherit_fingerprint(features)
    return ClassSelection(subset, left_out)

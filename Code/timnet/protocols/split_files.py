"""Published partitions: a split file (CSV) or EmoBox's per-fold JSONL lists.

- CSV: a file name or path, then a fold number (fold k tests on its rows and trains on
  the others) or ``train``/``valid``/``test`` (one fold; the validation part picks the
  best epoch). A header row is allowed.
- EmoBox: its corpus folder (``data/<corpus>``) with ``fold_<k>/*train*.jsonl`` and
  ``*test*.jsonl`` (``*valid*.jsonl`` too where given); the audio path of a row is its
  ``wav`` (or ``path``/``file``) entry.

Rows are matched to the feature file's utterances by file stem (EmoBox's folders and
extensions differ from ours); labels always come from the feature file.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from timnet.errors import UserError
from timnet.protocols.base import _SUFFIX, FoldIdentity, Protocol, ProtocolSettings, Split, digest_of, file_stem

if TYPE_CHECKING:

    from timnet.features.files import FeatureSet

PARTS = {"train": "train", "training": "train", "valid": "valid", "validation": "valid", "dev": "valid",
         "val": "valid", "test": "test"}
_EMOBOX_PATH_KEYS = ("wav", "path", "file", "audio")


def _read_csv(path: Path) -> list[tuple[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = [[cell.strip() for cell in row] for row in csv.reader(f) if row and any(c.strip() for c in row)]
    if rows and not _is_part(rows[0][1] if len(rows[0]) > 1 else ""):
        rows = rows[1:]  # a header
    bad = next((i for i, row in enumerate(rows, start=1) if len(row) < 2 or not _is_part(row[1])), None)
    if bad is not None:
        raise UserError(f"--splits {path}: row {bad} ({','.join(rows[bad - 1])}) is not 'file,fold' or "
                        "'file,train|valid|test'")
    return [(row[0], row[1].lower()) for row in rows]


def _is_part(text: str) -> bool:
    return text.strip().isdigit() or text.strip().lower() in PARTS


def _jsonl_rows(path: Path) -> list[str]:
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"--splits {path}: line {number} is not JSON ({exc.msg})") from None
        name = next((row[k] for k in _EMOBOX_PATH_KEYS if isinstance(row, dict) and isinstance(row.get(k), str)), None)
        if name is None:
            raise UserError(f"--splits {path}: line {number} has no audio path ({' or '.join(_EMOBOX_PATH_KEYS)})")
        out.append(name)
    return out


def _emobox_folds(folder: Path) -> list[dict[str, list[str]]]:
    """Per fold (``fold_<k>`` in k order): the audio paths of each part."""
    fold_dirs = sorted((p for p in folder.iterdir() if p.is_dir() and re.fullmatch(r"fold_?\d+", p.name)),
                       key=lambda p: int(re.sub(r"\D", "", p.name)))
    if not fold_dirs:
        raise UserError(f"--splits {folder}: no fold_<k> folders (give EmoBox's data/<corpus> folder or a CSV file)")
    folds = []
    for fold_dir in fold_dirs:
        parts: dict[str, list[str]] = {}
        for part, words in (("train", ("train",)), ("valid", ("valid", "dev")), ("test", ("test",))):
            files = sorted(p for p in fold_dir.glob("*.jsonl") if any(w in p.stem.lower() for w in words))
            if len(files) > 1:
                raise UserError(f"--splits {fold_dir}: several {part} lists ({', '.join(p.name for p in files)}); "
                                "keep one")
            if files:
                parts[part] = _jsonl_rows(files[0])
        if "train" not in parts or "test" not in parts:
            raise UserError(f"--splits {fold_dir}: needs a *train*.jsonl and a *test*.jsonl list")
        folds.append(parts)
    return folds


def _csv_folds(rows: list[tuple[str, str]], path: Path) -> list[dict[str, list[str]]]:
    kinds = {"fold" if part.isdigit() else "part" for _, part in rows}
    if len(kinds) > 1:
        raise UserError(f"--splits {path}: mixes fold numbers with train/valid/test; use one or the other")
    if kinds == {"part"}:
        parts: dict[str, list[str]] = {}
        for name, part in rows:
            parts.setdefault(PARTS[part], []).append(name)
        if "train" not in parts or "test" not in parts:
            raise UserError(f"--splits {path}: needs train and test rows")
        return [parts]
    numbers = sorted({int(part) for _, part in rows})
    if len(numbers) < 2:
        raise UserError(f"--splits {path}: needs at least two folds")
    return [{"train": [n for n, p in rows if int(p) != k], "test": [n for n, p in rows if int(p) == k]}
            for k in numbers]


def read_split_file(path: Path) -> list[dict[str, list[str]]]:
    """The folds a split file or EmoBox folder describes, as audio names per part."""
    if not path.exists():
        raise UserError(f"--splits {path}: no such file or folder")
    if path.is_dir():
        return _emobox_folds(path)
    if path.suffix.lower() == ".jsonl":
        raise UserError(f"--splits {path}: give EmoBox's corpus folder (the one holding fold_<k>/), not one list")
    return _csv_folds(_read_csv(path), path)


def match_folds(folds: list[dict[str, list[str]]], features: FeatureSet, source: str, given: str) -> list[Split]:
    """Map every row to an utterance of ``features`` by file stem."""
    import numpy as np
    if features.files is None:
        raise UserError(f"{source}: --protocol splits needs the utterances' file names (a 'path' key; "
                        "re-extract the corpus with timnet extract)")
    stems = [file_stem(p) for p in features.files]
    twice = [s for s, n in Counter(stems).items() if n > 1]
    if twice:
        raise UserError(f"{source}: {len(twice)} file stem(s) occur twice (e.g. {twice[0]}), so split-file rows "
                        "cannot be matched by name")
    index = {s: i for i, s in enumerate(stems)}
    named: set[str] = set()
    splits = []
    for k, parts in enumerate(folds, start=1):
        mapped = {}
        for part, names in parts.items():
            row_stems = [file_stem(n) for n in names]
            missing = [s for s in row_stems if s not in index]
            if missing:
                raise UserError(f"--splits {given}: {len(missing)} row(s) of fold {k} ({part}) match no utterance of "
                                f"{source} by file name (e.g. {missing[0]}); use the split file of this corpus")
            repeated = [s for s, n in Counter(row_stems).items() if n > 1]
            if repeated:
                raise UserError(f"--splits {given}: {repeated[0]} is listed twice in fold {k} ({part})")
            mapped[part] = np.sort(np.asarray([index[s] for s in row_stems], dtype=int))
            named.update(row_stems)
        overlap = set(mapped["train"]) & set(mapped["test"]) | set(mapped["train"]) & set(mapped.get("valid", ()))
        if overlap:
            raise UserError(f"--splits {given}: fold {k} trains and tests on {stems[min(overlap)]}")
        held = f"fold {k}" if len(folds) > 1 else "test"
        splits.append(Split(k, mapped["train"], mapped["test"], f"split {held}", held, mapped.get("valid")))
    unmatched = [s for s in stems if s not in named]
    if unmatched:
        raise UserError(f"{source}: {len(unmatched)} utterance(s) are in no row of --splits {given} (e.g. "
                        f"{unmatched[0]}); use the split file of this feature file")
    return splits


class SplitFileProtocol(Protocol):
    """The folds of a published split file (``--splits``): a CSV or EmoBox's fold lists."""

    name = "splits"
    help = "the folds of --splits (a CSV, or EmoBox's fold lists)"
    name_pattern = re.compile(rf"^splits_weights_(?P<fold>\d+){_SUFFIX}")
    fix = "use a split file whose training parts hold every class"

    def splits(self, features: FeatureSet, settings: ProtocolSettings, source: str = "data") -> list[Split]:
        if not settings.splits:
            raise UserError("--protocol splits needs --splits FILE (a CSV of file,fold or file,train|valid|test, or "
                            "EmoBox's data/<corpus> folder)")
        path = Path(settings.splits).expanduser()
        return match_folds(read_split_file(path), features, source, settings.splits)

    def weights_name(self, split: Split, folds: int) -> str:
        return f"splits_weights_{split.fold}.hdf5"

    def options(self, settings: ProtocolSettings) -> dict:
        path = Path(str(settings.splits)).expanduser().absolute()
        return {"splits": str(path), "digest": split_digest(path)}

    def rebuild(self, identity: FoldIdentity, features: FeatureSet, default_seed: int, source: str) -> Split:
        recorded = identity.options.get("splits")
        if not recorded:
            raise UserError(f"{source}: a 'splits' model file without its split file's record cannot be tested by "
                            "fold; test the .hdf5 written with it")
        path = Path(recorded)
        if not path.exists():
            raise UserError(f"--splits {path}: the split file this model was trained with is gone; put it back there")
        digest = identity.options.get("digest")
        if digest and split_digest(path) != digest:
            raise UserError(f"--splits {path}: the split file changed since this model was trained (digest "
                            f"{split_digest(path)}, recorded {digest})")
        return super().rebuild(identity, features, default_seed, source)


def split_digest(path: Path) -> str:
    """A short digest of a split file (or of an EmoBox folder's lists, in name order)."""
    if path.is_dir():
        import hashlib

        h = hashlib.sha256()
        for file in sorted(path.glob("fold*/*.jsonl")):
            h.update(file.relative_to(path).as_posix().encode())
            h.update(file.read_bytes())
        return h.hexdigest()[:16]
    return digest_of(path)

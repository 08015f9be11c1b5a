"""Toy labeled data: sentences whose label is given by sentiment words, as (texts, labels), (text, label) rows or a CSV."""

from __future__ import annotations

import csv
import random
from pathlib import Path

POSITIVE = ["good", "great", "wonderful", "superb", "fine", "lovely", "brilliant", "moving", "funny", "charming"]
NEGATIVE = ["bad", "awful", "terrible", "boring", "dull", "poor", "weak", "lame", "ugly", "tedious"]
FILLER = ["the", "movie", "film", "story", "plot", "acting", "was", "is", "and", "a", "with", "very", "quite", "really"]
# the engine tests' smaller vocabulary (their CSV rows, and the numbers tuned on them, come from it)
ROW_POSITIVE = ["good", "great", "wonderful", "superb", "lovely", "brilliant", "charming"]
ROW_NEGATIVE = ["bad", "awful", "terrible", "boring", "dull", "poor", "tedious"]
ROW_FILLER = FILLER[:-1]


def _sentences(n: int, seed: int, pos: list[str], neg: list[str], filler: list[str], max_filler: int,
               max_cues: int | None) -> tuple[list[str], list[int]]:
    """Sentence i has label i % 2: 3..max_filler filler words with 1..max_cues sentiment cues inserted
    (``max_cues`` None: exactly one cue, drawn without a count)."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        y = i % 2
        words = [rng.choice(filler) for _ in range(rng.randint(3, max_filler))]
        for _ in range(1 if max_cues is None else rng.randint(1, max_cues)):
            words.insert(rng.randrange(len(words) + 1), rng.choice(pos if y else neg))
        texts.append(" ".join(words))
        labels.append(y)
    return texts, labels


def toy_texts(n: int, seed: int = 0) -> tuple[list[str], list[int]]:
    """Two-class toy sentences (3-10 filler words, 1-3 cues) and their labels 0/1."""
    return _sentences(n, seed, POSITIVE, NEGATIVE, FILLER, 10, 3)


def toy_rows(n: int = 60, seed: int = 0) -> list[tuple[str, str]]:
    """(text, "neg"/"pos") rows for the engine tests' CSVs (3-9 filler words, one cue)."""
    texts, labels = _sentences(n, seed, ROW_POSITIVE, ROW_NEGATIVE, ROW_FILLER, 9, None)
    return [(t, "pos" if y else "neg") for t, y in zip(texts, labels)]


def write_csv(path: Path, rows: list[tuple[str, str]], header: tuple[str, str] = ("text", "label")) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# The calibration split of the int8 tests: seeded toy train texts, and test texts a calibration must never see.
CALIB_TEXTS, CALIB_LABELS = toy_texts(60, seed=1)
HELD_OUT_TEXTS = [f"held-out review number {i}, never to be calibrated on" for i in range(20)]


def calibration_context(seed: int = 0):
    """A technique Context carrying only the calibration train split (as the runner hands handlers)."""
    from compression.registry import Context

    return Context(train_texts=list(CALIB_TEXTS), train_labels=list(CALIB_LABELS), seed=seed)


def record_encoded_texts(monkeypatch) -> list[str]:
    """The list of every text ``TextEncoder.encode`` is given from now on (it fills as the test runs)."""
    from compression.tokenize import TextEncoder

    seen: list[str] = []
    original = TextEncoder.encode

    def spy(self, texts, length=None):
        seen.extend(texts)
        return original(self, texts, length)

    monkeypatch.setattr(TextEncoder, "encode", spy)
    return seen

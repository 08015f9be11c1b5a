"""The offline default classifiers: MiniLM-L6 fine-tuned on the bundled datasets (slow: real training, cached)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from compression.artifact import Artifact
from profiling.inputs import finetune
from profiling.inputs.datasets import LabeledData, load_dataset
from profiling.inputs.finetune import build_default_classifier
from profiling.inputs.models import resolve_model


def accuracy_of(path: Path, texts: list[str], labels: list[int]) -> float:
    from tokenizers import Tokenizer
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    preds = finetune.predict(model, Tokenizer.from_file(str(path / "tokenizer.json")), texts)
    return sum(int(p == y) for p, y in zip(preds, labels)) / len(labels)


@pytest.mark.slow
def test_default_movie_classifier_builds_caches_and_classifies() -> None:
    art = build_default_classifier("movie-reviews")  # built once per data folder, a few minutes
    meta = art.meta
    assert art.format == "hf" and art.path.name == "default-movie-reviews"
    assert meta["id2label"] == {"0": "rotten", "1": "fresh"} and meta["num_labels"] == 2
    assert (meta["model_type"], meta["num_layers"], meta["heads_per_layer"], meta["hidden_size"]) == (
        "bert", 6, [12] * 6, 384)
    assert meta["random_weights"] is False and meta["max_length"] == 64
    assert meta["finetune_test_accuracy"] >= 0.75
    assert meta["finetune_time_s"] > 0 and meta["finetune"]["train_examples"] > 0
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        assert (art.path / name).is_file(), name

    start = time.perf_counter()
    again = resolve_model("default", load_dataset({"kind": "bundled", "name": "movie-reviews"}))
    assert again.path == art.path and time.perf_counter() - start < 5  # cached, not retrained

    # the saved model really classifies the held-out split (checked on a sample, independently of the meta)
    data = load_dataset({"kind": "bundled", "name": "movie-reviews"})
    assert accuracy_of(art.path, data.test_texts[:300], data.test_labels[:300]) >= 0.72


@pytest.mark.slow
def test_default_tweets_classifier_builds() -> None:
    art = resolve_model("default:tweets")
    assert art.path.name == "default-tweets"
    assert art.meta["id2label"] == {"0": "negative", "1": "neutral", "2": "positive"}
    majority = 2345 / 4200  # always answering "positive"
    assert art.meta["finetune_test_accuracy"] > majority + 0.05
    assert Artifact.load(art.path).meta["finetune"]["dataset"] == "tweets"


@pytest.mark.slow
def test_finetune_minilm_on_a_tiny_dataset(tmp_path: Path) -> None:
    texts = [f"{w} movie number {i}" for i in range(40) for w in ("great", "awful")]
    labels = [i % 2 for i in range(80)]
    data = LabeledData("tiny", ["bad", "good"], texts[:64], [1 - y for y in labels[:64]], texts[64:],
                       [1 - y for y in labels[64:]])
    seen = []
    meta = finetune.finetune_minilm(data, tmp_path, progress=lambda f, m: seen.append(f))
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)
    assert meta["finetune"]["train_examples"] == 64 and 0 <= meta["finetune_test_accuracy"] <= 1
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "tokenizer.json").is_file()


def test_unknown_default_dataset() -> None:
    with pytest.raises(ValueError, match="no default classifier for 'imdb'"):
        build_default_classifier("imdb")

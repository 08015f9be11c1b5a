"""Fixtures for the engine tests (store, runner, CLI): a tiny random BERT artifact, a toy CSV, an isolated data folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from compression.artifact import Artifact
from tests.helpers.tiny_architectures import save_artifact, tiny_classifier
from tests.helpers.toy_data import toy_rows, write_csv


def build_tiny_artifact(path: Path, num_labels: int = 2, label_names: list[str] | None = None) -> Artifact:
    """The engine tests' BERT: the one builder's with BERT's default init (0.02) and zero biases, labels neg/pos."""
    names = label_names or ["neg", "pos"][:num_labels]
    model = tiny_classifier("bert", 0, num_labels, random_biases=False, initializer_range=0.02,
                            id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
    return save_artifact(model, path, "tiny-bert", id2label={str(i): n for i, n in enumerate(names)})


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


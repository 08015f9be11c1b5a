"""The artifact cache: a technique that learns from the train split is rebuilt for other data, never reused."""

from __future__ import annotations

from compression import Context, apply, parse_spec
from tests.helpers.tiny_architectures import make_artifact, tiny_model
from tests.helpers.toy_data import toy_texts


def _ctx(seed: int) -> Context:
    texts, labels = toy_texts(24, seed=seed)
    return Context(train_texts=texts, train_labels=labels, label_names=("neg", "pos"))


def test_trained_technique_keyed_by_train_data(tmp_path):
    base = make_artifact(tmp_path / "base", tiny_model("bert", layers=2, heads=4), base="tiny-bert")
    cfg = parse_spec("prune-heads:fraction=0.5,method=importance")
    a = apply(base, cfg, tmp_path / "cache", _ctx(0))
    again = apply(base, cfg, tmp_path / "cache", _ctx(0))
    other = apply(base, cfg, tmp_path / "cache", _ctx(1))
    assert again.path == a.path  # same data: reused
    assert other.path != a.path  # other data: built anew, not served the first dataset's heads


def test_data_free_technique_shared_across_datasets(tmp_path):
    base = make_artifact(tmp_path / "base", tiny_model("bert", layers=2, heads=4), base="tiny-bert")
    cfg = parse_spec("prune-heads:fraction=0.5")  # random heads: the data plays no part
    assert apply(base, cfg, tmp_path / "cache", _ctx(0)).path == apply(base, cfg, tmp_path / "cache", _ctx(1)).path

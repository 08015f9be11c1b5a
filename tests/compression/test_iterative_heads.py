"""prune-heads with steps > 1: Michel et al.'s iterative importance pruning (prune a share, re-score, repeat)."""

from __future__ import annotations

import pytest
import torch

from compression import Context, TechniqueError, apply, hf_io, parse_spec
from compression import head_pruning as hp
from tests.helpers.tiny_architectures import make_artifact, tiny_model
from tests.helpers.toy_data import toy_texts


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return make_artifact(tmp_path_factory.mktemp("h2-iter") / "bert", tiny_model("bert", layers=2, heads=8))


@pytest.fixture(scope="module")
def train():
    texts, labels = toy_texts(40)
    return Context(train_texts=texts, train_labels=labels)


def test_steps_validated():
    with pytest.raises(TechniqueError, match="steps must be at least 1, got 0"):
        parse_spec("prune-heads:fraction=0.5,method=importance,steps=0")
    with pytest.raises(TechniqueError, match=r"steps=3 \(iterative pruning\) needs method=importance, got 'random'"):
        parse_spec("prune-heads:fraction=0.5,steps=3")
    assert parse_spec("prune-heads:fraction=0.5,method=importance").steps == 1  # old specs unchanged


def test_iterative_removes_the_planned_count_and_rescores(base, tmp_path, train, monkeypatch):
    calls = []
    real = hp.head_importance

    def spy(model, *args, **kwargs):
        calls.append(hf_io.heads_per_layer(model))
        return real(model, *args, **kwargs)

    monkeypatch.setattr(hp, "head_importance", spy)
    cfg = parse_spec("prune-heads:fraction=0.5,method=importance,steps=4,importance_batches=2,batch_size=8")
    art = apply(base, cfg, tmp_path, train)
    assert calls == [[8, 8], [7, 7], [6, 6], [5, 5]]  # re-scored on the shrinking model after each round
    assert art.meta["heads_per_layer"] == [4, 4]
    assert art.meta["pruning_method"] == "iterative importance (4 rounds)"
    removed = art.meta["pruned_heads"]
    assert all(len(v) == 4 and len(set(v)) == 4 and all(0 <= h < 8 for h in v) for v in removed.values())
    for layer in ("0", "1"):
        assert sorted(removed[layer] + art.meta["kept_heads"][layer]) == list(range(8))
    # the saved model equals the original with exactly those heads masked out
    orig, pruned = hf_io.load_model(base.path), hf_io.load_model(art.path)
    ids = torch.randint(1000, 5000, (3, 10), generator=torch.Generator().manual_seed(0))
    masks = []
    for layer, h in enumerate(hf_io.attention_layers(orig)):
        m = torch.ones(h.num_heads)
        m[removed[str(layer)]] = 0.0
        masks.append(m)
    with torch.no_grad(), hp.head_mask_hooks(hf_io.attention_layers(orig), masks):
        ref = orig(input_ids=ids).logits
    with torch.no_grad():
        got = pruned(input_ids=ids).logits
    assert torch.allclose(got, ref, atol=1e-5)


def test_first_round_matches_one_shot_scores(base, tmp_path, train):
    one = apply(base, parse_spec("prune-heads:fraction=0.25,method=importance,importance_batches=2,batch_size=8"),
                tmp_path, train)
    it = apply(base, parse_spec(
        "prune-heads:fraction=0.25,method=importance,steps=2,importance_batches=2,batch_size=8"), tmp_path, train)
    assert it.meta["head_importance"] == one.meta["head_importance"]  # same scoring batches, same first scores
    assert it.meta["heads_per_layer"] == one.meta["heads_per_layer"] == [6, 6]

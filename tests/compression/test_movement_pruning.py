"""prune-movement: schedule, straight-through mask, exact final sparsity, learned (not magnitude) choice, refusals."""

from __future__ import annotations

import itertools

import pytest
import torch

from compression import Context, TechniqueError, apply, hf_io, parse_spec, sparse_io
from compression import magnitude_pruning as mp
from compression import movement_pruning as mv
from tests.helpers.tiny_models import folder_hash
from tests.helpers.toy_data import toy_texts


@pytest.fixture(scope="module")
def train():
    texts, labels = toy_texts(48)
    return Context(train_texts=texts, train_labels=labels)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("prune-movement:1.5", "sparsity must be a number above 0 and below 1, got 1.5"),
        ("prune-movement:sparsity=0.5,steps=0", "steps must be at least 1, got 0"),
        ("prune-movement:sparsity=0.5,score_lr=0", "score_lr must be a number above 0, got 0.0"),
        ("prune-movement:sparsity=0.5,exclude_layers=9x", "'9x' is not a module name"),
        ("prune-movement:sparsity=0.5,score_init=random", "score_init must be one of magnitude, zero, got 'random'"),
    ],
)
def test_invalid_configs_refused(spec, message):
    with pytest.raises(TechniqueError, match=message):
        parse_spec(spec)


def test_cubic_schedule():
    vals = [mv.cubic_sparsity(s, 100, 0.9) for s in range(100)]
    assert vals[:10] == [0.0] * 10  # warm-up
    assert all(a <= b for a, b in itertools.pairwise(vals))
    assert vals[70:] == [0.9] * 30  # held after the ramp
    assert 0.5 < vals[40] < 0.9  # cubic: most of the pruning early in the ramp


def test_masks_and_straight_through_gradient():
    s = torch.tensor([[0.3, -1.0, 2.0, 0.1], [0.0, 5.0, -2.0, 1.0]], requires_grad=True)
    assert mv.topk_mask(s, 0.5).sum() == 4 and torch.equal(mv.topk_mask(s, 0.5), mv.fast_topk_mask(s, 0.5))
    w = torch.arange(1.0, 9.0).view(2, 4)
    (w * mv._ste_class().apply(s, 0.5)).sum().backward()
    assert torch.equal(s.grad, w)  # dL/dS = dL/dW' * W, passed straight through the top-k


def test_needs_training_data(tiny_bert, artifact_cache):
    with pytest.raises(TechniqueError, match="movement pruning needs labeled training texts"):
        apply(tiny_bert, parse_spec("prune-movement:sparsity=0.5,steps=2"), artifact_cache, Context())


def test_exact_sparsity_sparse_storage_and_a_learned_choice(tiny_bert, artifact_cache, train):
    before = folder_hash(tiny_bert.path)
    spec = "prune-movement:sparsity=0.7,steps=30,batch_size=8,score_init=zero"
    art = apply(tiny_bert, parse_spec(spec), artifact_cache, train)
    assert folder_hash(tiny_bert.path) == before
    assert (art.path / sparse_io.SPARSE_WEIGHTS_FILE).is_file()
    assert art.disk_bytes() < tiny_bert.disk_bytes()
    model, orig = hf_io.load_model(art.path), hf_io.load_model(tiny_bert.path)
    linears = mp.target_linears(model)
    assert len(linears) == 12
    overlaps = []
    for name, lin in linears:
        w = lin.weight
        assert int((w == 0).sum()) == round(0.7 * w.numel()), name  # exactly as asked, in every matrix
        assert w.shape == orig.get_submodule(name).weight.shape
        by_magnitude = mp.magnitude_masks([orig.get_submodule(name).weight], 0.7, "per-layer")[0]
        overlaps.append(float((by_magnitude & (w != 0)).sum() / by_magnitude.sum()))
    # the kept weights follow the learned scores, not the magnitudes (which a plain magnitude pass would keep)
    assert min(overlaps) < 0.95
    # embeddings are frozen during fine-tuning; the classifier is trained but not pruned
    assert torch.equal(model.get_input_embeddings().weight, orig.get_input_embeddings().weight)
    assert not model.classifier.weight.eq(0).any()
    assert art.meta["pruning_method"] == "movement" and art.meta["train_steps"] == 30


def test_same_seed_same_result(tiny_bert, artifact_cache, train, tmp_path):
    spec = "prune-movement:sparsity=0.5,steps=6,batch_size=8,seed=3"
    a = apply(tiny_bert, parse_spec(spec), artifact_cache, train)
    b = apply(tiny_bert, parse_spec(spec), tmp_path, train)  # a separate cache: built again
    sa, sb = hf_io.load_model(a.path).state_dict(), hf_io.load_model(b.path).state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_magnitude_initialised_scores_refine_magnitude_pruning(tiny_bert, artifact_cache, train):
    art = apply(tiny_bert, parse_spec("prune-movement:sparsity=0.7,steps=30,batch_size=8"), artifact_cache, train)
    model, orig = hf_io.load_model(art.path), hf_io.load_model(tiny_bert.path)
    overlaps = []
    for name, lin in mp.target_linears(model):
        assert int((lin.weight == 0).sum()) == round(0.7 * lin.weight.numel())
        by_magnitude = mp.magnitude_masks([orig.get_submodule(name).weight], 0.7, "per-layer")[0]
        overlaps.append(float((by_magnitude & (lin.weight != 0)).sum() / by_magnitude.sum()))
    # starts from the magnitude ranking (mostly the same weights kept) but the movement changes some choices
    assert min(overlaps) > 0.5 and sum(overlaps) / len(overlaps) < 1.0

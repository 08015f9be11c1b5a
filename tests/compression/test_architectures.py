"""Every claimed architecture as a tiny random classifier: structure found, every applicable technique runs, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from compression import TechniqueError, apply, hf_io, parse_spec, structure
from compression import head_pruning as hp
from compression.layer_names import linear_layers, readable
from compression.magnitude_pruning import target_linears
from compression.registry import REGISTRY, Context, check_chain
from profiling.jobs import sensitivity as sens
from tests.helpers.tiny_architectures import ALL, build, tiny_classifier
from tests.helpers.toy_data import toy_texts

TEXTS, LABELS = toy_texts(16)
SHARED = {"albert"}  # one block serves every layer: no per-layer heads
# no head pruning: shared weights (ALBERT) or a position bias shared by every layer's heads (MPNet)
NO_HEAD_PRUNING = SHARED | {"mpnet"}
ONNX_ATOL = 1e-4


@pytest.fixture(scope="module")
def arts(tmp_path_factory):
    root = tmp_path_factory.mktemp("archs")
    return {arch: build(arch, root / arch) for arch in ALL}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("arch-cache")


def _ctx() -> Context:
    return Context(train_texts=TEXTS, train_labels=LABELS)


def _logits(art, texts=TEXTS[:6]) -> np.ndarray:
    from compression.predictors import load_predictor

    p = load_predictor(art, 1)
    try:
        return p.predict_logits(texts)
    finally:
        p.close()


def _inputs(model) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 5000, (3, 11), generator=g)
    mask = torch.ones_like(ids)
    mask[0, 7:] = 0  # one padded row
    return {"input_ids": ids, "attention_mask": mask}


def _run(model, **kw) -> torch.Tensor:
    with torch.no_grad():
        return model(**_inputs(model), **kw).logits


# ---- structure -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ALL)
def test_structure_is_found(arch):
    model = tiny_classifier(arch)
    s = structure.find(model)
    assert len(s.blocks) == (1 if arch in SHARED else 2) and s.num_layers == 2
    assert s.shared == (arch in SHARED)
    assert s.embeddings and s.embeddings.endswith("embeddings")
    assert s.head, "pooler / classifier Linears"
    for b in s.blocks:
        a = b.attention
        assert a is not None and a.head_size == 8 and a.num_heads == 4
        assert a.fused == (arch == "modernbert")
        assert len(b.feed_forward) == 2  # in and out
        assert a.output.in_features == 32
    summary = s.summary()
    json.dumps(summary)  # stored in the artifact meta
    assert summary["heads_key"] == ("n_heads" if arch == "distilbert" else "num_attention_heads")
    assert summary["relative_parts"] == (["pos_key_proj", "pos_query_proj"] if arch == "deberta-v2" else [])
    assert summary["position"].startswith({"deberta-v2": "relative", "deberta-v3": "relative",
                                           "modernbert": "rotary"}.get(arch, "absolute"))
    if arch in ("electra", "albert"):
        assert summary["embedding_linears"], "the embedding projection is found, outside the blocks"
    # every Linear is exactly one of: in a block, embedding projection, head
    names = [n for n, _ in linear_layers(model)]
    assert sorted(names) == sorted(s.block_linears() + s.embedding_linears + s.head)


@pytest.mark.parametrize("arch", ALL)
def test_readable_names_and_linear_targets(arch, arts):
    model = hf_io.load_model(arts[arch].path)
    s = structure.find(model)
    targets = [n for n, _ in target_linears(model)]
    per_block = {"deberta-v2": 8, "modernbert": 4}.get(arch, 6)  # + 2 relative projections; fused qkv
    assert targets == s.block_linears() and len(targets) == len(s.blocks) * per_block
    prefix = "shared block 0 · " if arch in SHARED else "layer "
    assert all(readable(n).startswith(prefix) for n in targets)
    labels = {readable(n).split(" · ")[1] for n in targets}
    assert {"attention output", "feed-forward in", "feed-forward out"} <= labels
    assert ("attention query/key/value" in labels) == (arch == "modernbert")
    assert [n for n, _ in linear_layers(arts[arch].path)] == [n for n, _ in linear_layers(model)]  # meta device


# ---- head pruning ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", [a for a in ALL if a not in NO_HEAD_PRUNING])
def test_keep_heads_matches_masking_and_zero_heads_is_identity(arch):
    model = tiny_classifier(arch)
    base = _run(model)
    hp.prune_model(model, [[], []])  # pruning zero heads changes nothing
    assert torch.equal(_run(model), base)
    handles = hf_io.attention_layers(model)
    masks = [torch.tensor([1.0, 0.0, 1.0, 0.0]), torch.tensor([0.0, 1.0, 1.0, 1.0])]
    with hp.head_mask_hooks(handles, masks):
        masked = _run(model)
    assert not torch.allclose(masked, base, atol=1e-4), "heads must matter for this test to mean something"
    hp.prune_model(model, [[1, 3], [0]])
    assert hf_io.heads_per_layer(model) == [2, 3]
    h0 = hf_io.attention_layers(model)[0]
    rows = 3 * 16 if h0.fused else 16
    assert (h0.qkv if h0.fused else h0.query).weight.shape[0] == rows and h0.output.weight.shape[1] == 16
    torch.testing.assert_close(_run(model), masked, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", [a for a in ALL if a not in NO_HEAD_PRUNING])
def test_prune_heads_round_trips_through_save_load_and_onnx(arch, arts, cache):
    art = arts[arch]
    pruned = apply(art, parse_spec("prune-heads:0.5"), cache)
    assert pruned.meta["heads_per_layer"] == [2, 2]
    assert hf_io.stored_heads_per_layer(pruned.path) == [2, 2]
    model = hf_io.load_model(pruned.path)
    assert hf_io.heads_per_layer(model) == [2, 2]
    original = hf_io.load_model(art.path)
    handles = hf_io.attention_layers(original)
    masks = []
    for layer, h in enumerate(handles):
        m = torch.ones(h.num_heads)
        m[pruned.meta["pruned_heads"][str(layer)]] = 0.0
        masks.append(m)
    with hp.head_mask_hooks(handles, masks):
        expected = _run(original)
    torch.testing.assert_close(_run(model), expected, atol=1e-5, rtol=1e-5)
    onnx = apply(pruned, parse_spec("onnx"), cache)
    assert np.abs(_logits(onnx) - _logits(pruned)).max() < ONNX_ATOL


@pytest.mark.parametrize("arch", [a for a in ALL if a not in NO_HEAD_PRUNING])
def test_importance_and_iterative_head_pruning(arch, arts, cache):
    spec = "prune-heads:fraction=0.5,method=importance,steps=2,importance_batches=2,batch_size=4"
    pruned = apply(arts[arch], parse_spec(spec), cache, _ctx())
    assert pruned.meta["heads_per_layer"] == [2, 2]
    assert len(pruned.meta["head_importance"]) == 2 and len(pruned.meta["head_importance"][0]) == 4
    assert _logits(pruned).shape == (6, 2)


# ---- Linear-only techniques ------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ALL)
def test_full_rank_factorization_is_exact_and_round_trips(arch, tmp_path):
    from compression.low_rank import factorize

    model = tiny_classifier(arch)
    base = _run(model)
    linears = target_linears(model)
    ranks = {n: min(lin.weight.shape) for n, lin in linears}
    factors = {n: (factorize(lin.weight, ranks[n]), lin.bias) for n, lin in linears}
    hf_io.apply_low_rank_structure(model, ranks)
    with torch.no_grad():
        for n, ((a, b), bias) in factors.items():
            seq = model.get_submodule(n)
            seq[0].weight.copy_(a)
            seq[1].weight.copy_(b)
            if bias is not None:  # ModernBERT's Linears have none
                seq[1].bias.copy_(bias)
    setattr(model.config, hf_io.LOW_RANK_ATTR, ranks)
    torch.testing.assert_close(_run(model), base, atol=1e-4, rtol=1e-4)
    hf_io.save_model(model, tmp_path)
    torch.testing.assert_close(_run(hf_io.load_model(tmp_path)), base, atol=1e-4, rtol=1e-4)


@pytest.mark.slow  # three builds and two ONNX exports per architecture: 20-30 s each on a shared 2-core machine
@pytest.mark.parametrize("arch", ALL)
def test_low_rank_magnitude_movement_run_and_export(arch, arts, cache):
    art = arts[arch]
    low = apply(art, parse_spec("low-rank:value=0.25"), cache)
    assert low.meta["low_rank_ranks"] and all(n in low.meta["low_rank_ranks"] for n in low.meta["low_rank_ranks"])
    onnx = apply(low, parse_spec("onnx"), cache)
    assert np.abs(_logits(onnx) - _logits(low)).max() < ONNX_ATOL
    sparse = apply(art, parse_spec("prune-magnitude:0.5"), cache)
    assert abs(sparse.meta["weight_sparsity"] - 0.5) < 0.01
    model = hf_io.load_model(sparse.path)
    assert all(abs(float((m.weight == 0).float().mean()) - 0.5) < 0.02 for _, m in target_linears(model))
    onnx = apply(sparse, parse_spec("onnx"), cache)
    assert np.abs(_logits(onnx) - _logits(sparse)).max() < ONNX_ATOL
    moved = apply(art, parse_spec("prune-movement:sparsity=0.5,steps=3,batch_size=4"), cache, _ctx())
    assert abs(moved.meta["weight_sparsity"] - 0.5) < 0.01 and _logits(moved).shape == (6, 2)
    first = target_linears(hf_io.load_model(art.path))[0][0]
    kept = apply(art, parse_spec(f"prune-magnitude:sparsity=0.5,exclude_layers={first}"), cache)
    assert kept.meta["prunable_weights"] < sparse.meta["prunable_weights"]  # the excluded layer is left out
    assert not hf_io.load_model(kept.path).get_submodule(first).weight.eq(0).any()


@pytest.mark.parametrize("arch", ALL)
def test_export_and_int8_run(arch, arts, cache):
    art = arts[arch]
    ref = _logits(art)
    onnx = apply(art, parse_spec("onnx"), cache)
    assert np.abs(_logits(onnx) - ref).max() < ONNX_ATOL
    for art8 in (apply(onnx, parse_spec("onnx-int8"), cache), apply(art, parse_spec("torch-int8"), cache)):
        out = _logits(art8)
        assert out.shape == ref.shape and np.isfinite(out).all()


# ---- sensitivity maps ------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ALL)
def test_sensitivity_maps(arch):
    from compression.hf_io import load_tokenizer
    from tests.helpers.tiny_architectures import minilm_dir

    model, tok = tiny_classifier(arch), load_tokenizer(minilm_dir())
    before = _run(model)
    result = sens.compute(model, tok, TEXTS[:8], LABELS[:8], "int8", max_length=32)
    assert len(result["rows"]) == len(target_linears(model))
    assert all(r["layer"] is None for r in result["rows"]) == (arch in SHARED)
    if arch in NO_HEAD_PRUNING:
        with pytest.raises(sens.SensitivityError, match=structure.display_name(arch)):
            sens.compute(model, tok, TEXTS[:8], LABELS[:8], "heads", max_length=32)
    else:
        heads = sens.compute(model, tok, TEXTS[:8], LABELS[:8], "heads", max_length=32)
        assert len(heads["rows"]) == 8
    torch.testing.assert_close(_run(model), before)  # every change was undone


# ---- refusals --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ALL)
def test_every_refusal_names_the_architecture(arch, arts):
    """Every registered technique either passes the chain check for this architecture or says which it is."""
    name = structure.display_name(arch if arch != "deberta-v3" else "deberta-v2")
    refused = []
    for technique, entry in REGISTRY.items():
        cfg = entry.config_cls()
        start = "onnx" if "hf" not in cfg.accepts and "onnx" in cfg.accepts else "hf"
        if start not in cfg.accepts:
            continue
        try:
            check_chain(start, [cfg], arts[arch].meta)
        except TechniqueError as exc:
            refused.append(technique)
            assert name in str(exc), f"{technique} on {arch}: {exc}"
        reason = structure.refusal(technique, arts[arch].meta)
        if reason:
            assert name in reason and technique in refused
    expected = {"albert": {"prune-heads", "distill"}, "modernbert": {"distill"}, "mpnet": {"prune-heads"}}.get(arch,
                                                                                                       set())
    assert set(refused) == expected


def test_shared_heads_refused_before_any_work(arts, tmp_path):
    with pytest.raises(TechniqueError, match="ALBERT.*share") as info:
        apply(arts["albert"], parse_spec("prune-heads:0.5"), tmp_path)
    assert "cross-layer parameter sharing" in str(info.value)
    assert not any(tmp_path.iterdir())


def test_refusal_from_an_older_meta_without_structure():
    # older artifacts carry no "structure": the model type's default config is inspected on the meta device
    assert "ALBERT" in structure.refusal("prune-heads", {"model_type": "albert"})
    assert structure.refusal("prune-heads", {"model_type": "bert"}) is None


# ---- every other technique, on every architecture ----------------------------------------------------------

# chains (from the PyTorch original) of the techniques the tests above do not already run per architecture;
# the lossless ones must reproduce the original's logits, the others must give finite logits of the right shape
# (their accuracy is each technique's own tests' concern, on BERT and RoBERTa)
LOSSLESS_CHAINS = ("torchscript", "torch-export", "onnx>openvino")
LOSSY_CHAINS = (
    "torch-fp16", "torch-bf16", "onnx>onnx-fp16", "onnx>onnx-static-int8:examples=8", "onnx>openvino>openvino-int8",
    "qat:steps=2,batch_size=4", "distill:layers=1,max_steps=2,batch_size=4",
)


@pytest.mark.slow  # ten builds per architecture (two of them train a few steps): ~30-60 s each on 2 cores
@pytest.mark.parametrize("arch", ALL)
def test_every_other_applicable_technique_runs(arch, arts, cache):
    art = arts[arch]
    ref = _logits(art)
    ran = []
    for chain in LOSSLESS_CHAINS + LOSSY_CHAINS:
        configs = [parse_spec(step) for step in chain.split(">")]
        if any(structure.refusal(c.name, art.meta) for c in configs):
            continue  # refused with the architecture's name: test_every_refusal_names_the_architecture
        out = art
        for cfg in configs:
            out = apply(out, cfg, cache, _ctx() if type(cfg).needs_train_data else None)
        got = _logits(out)
        assert got.shape == ref.shape and np.isfinite(got).all(), chain
        if chain in LOSSLESS_CHAINS:
            assert np.abs(got - ref).max() < 1e-3, (chain, np.abs(got - ref).max())
        ran.append(chain)
    refused = {"albert": ["distill:layers=1,max_steps=2,batch_size=4"],
               "modernbert": ["distill:layers=1,max_steps=2,batch_size=4"]}.get(arch, [])
    assert ran == [c for c in LOSSLESS_CHAINS + LOSSY_CHAINS if c not in refused]

"""prune-heads: validation, structural removal equal to masking, importance scoring, save/load and ONNX."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from compression import Context, TechniqueError, apply, hf_io, parse_spec
from compression import head_pruning as hp
from compression.artifact import Artifact
from tests.helpers.tiny_architectures import KINDS, make_artifact, tiny_model
from tests.helpers.tiny_models import folder_hash
from tests.helpers.toy_data import toy_texts


@pytest.fixture(scope="module")
def base_artifacts(tmp_path_factory) -> dict[str, Artifact]:
    root = tmp_path_factory.mktemp("h3-prune-base")
    return {
        kind: make_artifact(root / kind, tiny_model(kind, layers=2, heads=4), base=f"tiny-{kind}") for kind in KINDS
    }


def _inputs(model, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 5000, (4, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    mask[3, 9:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _logits(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


def _masked_logits(model, pruned: dict[str, list[int]], inputs) -> torch.Tensor:
    """Logits of the unpruned model with the given heads' outputs multiplied by zero."""
    handles = hf_io.attention_layers(model)
    masks = []
    for layer, h in enumerate(handles):
        m = torch.ones(h.num_heads)
        m[pruned.get(str(layer), [])] = 0.0
        masks.append(m)
    with hp.head_mask_hooks(handles, masks):
        return _logits(model, inputs)


# --- configuration and refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, 1, -0.1, 1.5, 0.0, 1.0, float("nan"), True, "half"])
def test_fraction_out_of_range_is_refused(bad):
    with pytest.raises(ValueError, match=f"fraction must be .*got {bad!r}".replace("(", r"\(").replace(")", r"\)")):
        hp.PruneHeadsConfig(fraction=bad)


@pytest.mark.parametrize("spec", ["prune-heads:0", "prune-heads:1", "prune-heads:-0.1", "prune-heads:1.5"])
def test_bad_fraction_through_spec_is_a_technique_error(spec):
    with pytest.raises(TechniqueError, match="fraction must be a number strictly between 0 and 1"):
        parse_spec(spec)


def test_other_options_are_validated():
    with pytest.raises(ValueError, match="method must be one of random, importance, got 'magnitude'"):
        hp.PruneHeadsConfig(method="magnitude")
    with pytest.raises(ValueError, match="importance_batches must be at least 1, got 0"):
        hp.PruneHeadsConfig(importance_batches=0)
    with pytest.raises(ValueError, match="batch_size must be at least 1, got -2"):
        hp.PruneHeadsConfig(batch_size=-2)


def test_rounding_per_layer():
    assert [hp.heads_to_prune(f, 12) for f in (0.25, 0.5, 0.9)] == [3, 6, 11]
    assert hp.heads_to_prune(0.125, 4) == 1  # half up, not banker's rounding
    assert hp.plan_counts(0.5, [12, 6, 4]) == [6, 3, 2]


def test_fraction_that_empties_a_layer_is_refused(base_artifacts, tmp_path):
    with pytest.raises(TechniqueError, match="would remove all 12 heads of layer 0.*at most 0.92"):
        hp.PruneHeadsConfig(fraction=0.99).check({"heads_per_layer": [12] * 6})
    hp.PruneHeadsConfig(fraction=0.9).check({"heads_per_layer": [12] * 6})  # 11 of 12: allowed
    art = base_artifacts["bert"]
    with pytest.raises(TechniqueError, match="would remove all 4 heads of layer 0"):
        apply(art, hp.PruneHeadsConfig(fraction=0.9), tmp_path)
    assert not any(tmp_path.iterdir())  # nothing half-written left behind


def test_model_without_head_info_is_refused():
    with pytest.raises(TechniqueError, match="needs a model with known attention heads"):
        hp.PruneHeadsConfig(fraction=0.5).check({"model_type": "gpt2", "heads_per_layer": None})


def test_importance_without_train_data_is_refused(base_artifacts, tmp_path):
    with pytest.raises(TechniqueError, match="needs labeled training texts"):
        apply(base_artifacts["bert"], hp.PruneHeadsConfig(fraction=0.5, method="importance"), tmp_path, Context())


# --- structural pruning -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fraction", [0.25, 0.5, 0.75])
def test_random_pruning_drops_heads_and_params_and_equals_masking(kind, fraction, base_artifacts, tmp_path):
    src = base_artifacts[kind]
    digest = folder_hash(src.path)
    progress: list[float] = []
    cfg = hp.PruneHeadsConfig(fraction=fraction, seed=3)
    out = apply(src, cfg, tmp_path, Context(progress=lambda f, m: progress.append(f)))

    removed = round(4 * fraction)
    assert out.meta["heads_per_layer"] == [4 - removed] * 2
    assert out.lineage == (cfg.spec(),) and out.format == "hf"
    assert all(len(v) == removed for v in out.meta["pruned_heads"].values())
    for layer in ("0", "1"):
        assert sorted(out.meta["pruned_heads"][layer] + out.meta["kept_heads"][layer]) == [0, 1, 2, 3]
    per_head = 3 * (8 * 32 + 8) + 32 * 8  # Q, K, V rows + biases, output columns
    assert out.meta["param_count"] == src.meta["param_count"] - 2 * removed * per_head
    assert (out.path / "tokenizer.json").is_file()
    assert progress and progress[-1] == 1.0
    assert folder_hash(src.path) == digest  # input artifact untouched

    original = hf_io.load_model(src.path)
    pruned = hf_io.load_model(out.path)
    assert hf_io.heads_per_layer(pruned) == out.meta["heads_per_layer"]
    assert hf_io.count_params(pruned) == out.meta["param_count"]
    inputs = _inputs(original)
    expected = _masked_logits(original, out.meta["pruned_heads"], inputs)
    torch.testing.assert_close(_logits(pruned, inputs), expected, rtol=0, atol=1e-5)
    # and masking really changes the output, so the equality above is not vacuous
    assert not torch.allclose(_logits(original, inputs), expected, atol=1e-4)


def test_pruning_equals_zeroing_value_weights(base_artifacts, tmp_path):
    """Independent of the mask hook: a head whose values are zero contributes nothing, like a removed head."""
    src = base_artifacts["roberta"]
    out = apply(src, hp.PruneHeadsConfig(fraction=0.5, seed=7), tmp_path)
    reference = hf_io.load_model(src.path)
    for layer, h in enumerate(hf_io.attention_layers(reference)):
        for head in out.meta["pruned_heads"][str(layer)]:
            rows = slice(head * 8, (head + 1) * 8)
            with torch.no_grad():
                h.value.weight[rows] = 0
                h.value.bias[rows] = 0
    inputs = _inputs(reference, seed=5)
    torch.testing.assert_close(
        _logits(hf_io.load_model(out.path), inputs), _logits(reference, inputs), rtol=0, atol=1e-5
    )


def test_random_choice_is_seeded(base_artifacts, tmp_path):
    src = base_artifacts["bert"]
    runs = [
        apply(src, hp.PruneHeadsConfig(fraction=0.5, seed=s), tmp_path / str(s)).meta["pruned_heads"] for s in range(4)
    ]
    again = apply(src, hp.PruneHeadsConfig(fraction=0.5, seed=0), tmp_path / "again").meta["pruned_heads"]
    assert again == runs[0]
    assert len({str(r) for r in runs}) > 1


def test_chained_pruning_tracks_original_head_indices(base_artifacts, tmp_path):
    src = base_artifacts["distilbert"]
    first = apply(src, hp.PruneHeadsConfig(fraction=0.5, seed=1), tmp_path)
    second = apply(first, hp.PruneHeadsConfig(fraction=0.5, seed=2), tmp_path)
    assert second.meta["heads_per_layer"] == [1, 1]
    for layer in ("0", "1"):
        assert set(first.meta["pruned_heads"][layer]) < set(second.meta["pruned_heads"][layer])
        assert sorted(second.meta["pruned_heads"][layer] + second.meta["kept_heads"][layer]) == [0, 1, 2, 3]
    original = hf_io.load_model(src.path)
    inputs = _inputs(original, seed=2)
    expected = _masked_logits(original, second.meta["pruned_heads"], inputs)
    torch.testing.assert_close(_logits(hf_io.load_model(second.path), inputs), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", ["bert", "distilbert"])
def test_pruned_model_exports_to_onnx(kind, base_artifacts, tmp_path):
    import onnxruntime as ort

    out = apply(base_artifacts[kind], hp.PruneHeadsConfig(fraction=0.75, seed=0), tmp_path / "art")
    model = hf_io.load_model(out.path)

    class Logits(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask):
            return self.m(input_ids=input_ids, attention_mask=attention_mask).logits

    example = _inputs(model, seed=3)
    dims = {0: "batch", 1: "seq"}
    onnx_path = tmp_path / "model.onnx"
    torch.onnx.export(
        Logits(model).eval(),
        (example["input_ids"], example["attention_mask"]),
        str(onnx_path),
        input_names=["input_ids", "attention_mask"],
        output_names=["logits"],
        dynamic_shapes={"input_ids": dims, "attention_mask": dims},
    )
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    other = {k: v[:3, :10].contiguous() for k, v in _inputs(model, seed=9).items()}  # another batch and length
    got = session.run(None, {k: v.numpy() for k, v in other.items()})[0]
    np.testing.assert_allclose(got, _logits(model, other).numpy(), rtol=0, atol=1e-4)


# --- importance ---------------------------------------------------------------------------------------------


def _with_dead_heads(kind: str, dead: dict[int, int], path) -> Artifact:
    """A tiny model where head ``dead[layer]`` of each listed layer has zero value weights (so it does nothing)."""
    model = tiny_model(kind, layers=2, heads=4, seed=11)
    handles = hf_io.attention_layers(model)
    for layer, head in dead.items():
        rows = slice(head * 8, (head + 1) * 8)
        with torch.no_grad():
            handles[layer].value.weight[rows] = 0
            handles[layer].value.bias[rows] = 0
    return make_artifact(path, model)


@pytest.mark.parametrize("kind", KINDS)
def test_importance_prunes_the_useless_head_first(kind, tmp_path):
    src = _with_dead_heads(kind, {0: 2, 1: 1}, tmp_path / "src")
    texts, labels = toy_texts(64)
    cfg = hp.PruneHeadsConfig(fraction=0.25, method="importance", importance_batches=4, batch_size=8)
    out = apply(src, cfg, tmp_path / "cache", Context(train_texts=texts, train_labels=labels))
    assert out.meta["pruned_heads"] == {"0": [2], "1": [1]}
    imp = out.meta["head_importance"]
    assert imp[0][2] == 0.0 and imp[1][1] == 0.0
    assert all(x > 0 for layer, row in enumerate(imp) for h, x in enumerate(row) if (layer, h) not in {(0, 2), (1, 1)})
    assert all(math.isclose(math.sqrt(sum(x * x for x in row)), 1.0, rel_tol=1e-5) for row in imp)  # L2 per layer
    assert out.meta["pruning_method"] == "importance"


def test_importance_reads_only_sampled_train_texts(base_artifacts, tmp_path, monkeypatch):
    seen: list[str] = []
    real = hp.load_tokenizer

    def recording(path):
        tok = real(path)

        class Recorder:
            def __call__(self, texts, **kw):
                seen.extend(texts)
                return tok(texts, **kw)

        return Recorder()

    monkeypatch.setattr(hp, "load_tokenizer", recording)
    texts, labels = toy_texts(100, seed=4)
    cfg = hp.PruneHeadsConfig(fraction=0.5, method="importance", importance_batches=3, batch_size=10)
    progress: list[str] = []
    ctx = Context(train_texts=texts, train_labels=labels, progress=lambda f, m: progress.append(m))
    out = apply(base_artifacts["bert"], cfg, tmp_path, ctx)
    assert len(seen) == 30 and len(set(seen)) <= 30 and set(seen) <= set(texts)
    assert any("scoring heads: batch 3/3" in m for m in progress)
    # the scores depend on the data: other training texts give other scores
    texts2, labels2 = toy_texts(100, seed=5)
    out2 = apply(base_artifacts["bert"], cfg, tmp_path / "other", Context(train_texts=texts2, train_labels=labels2))
    assert out.meta["head_importance"] != out2.meta["head_importance"]


def test_importance_refuses_labels_outside_the_model(base_artifacts, tmp_path):
    cfg = hp.PruneHeadsConfig(fraction=0.5, method="importance")
    with pytest.raises(TechniqueError, match="class indices 0..1"):
        apply(base_artifacts["bert"], cfg, tmp_path, Context(train_texts=["a", "b"], train_labels=[0, 2]))

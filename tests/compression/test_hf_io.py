"""hf_io: attention handles, structural head removal, save/load round trips of pruned and unpruned models."""

from __future__ import annotations

import json

import pytest
import torch

from compression import hf_io
from tests.helpers.tiny_architectures import KINDS, tiny_model


def _inputs(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 5000, (3, 11), generator=g)
    mask = torch.ones_like(ids)
    mask[0, 7:] = 0  # one padded row, so masking is exercised
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("kind", KINDS)
def test_attention_layers_and_head_counts(kind):
    model = tiny_model(kind, layers=3, heads=4)
    handles = hf_io.attention_layers(model)
    assert len(handles) == 3
    assert hf_io.heads_per_layer(model) == [4, 4, 4]
    assert all(h.head_size == 8 for h in handles)
    assert hf_io.count_params(model) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("kind", KINDS)
def test_keep_heads_shrinks_matrices_and_params(kind):
    model = tiny_model(kind)
    before = hf_io.count_params(model)
    h = hf_io.attention_layers(model)[0]
    h.keep_heads([1, 3])
    h = hf_io.attention_layers(model)[0]  # fresh handle sees the new modules
    assert h.num_heads == 2
    assert tuple(h.query.weight.shape) == (16, 32) and tuple(h.value.bias.shape) == (16,)
    assert tuple(h.output.weight.shape) == (32, 16) and tuple(h.output.bias.shape) == (32,)
    # 2 heads x 8 dims removed from Q, K, V (weights + biases) and from the output's input columns
    assert before - hf_io.count_params(model) == 3 * (16 * 32 + 16) + 32 * 16
    with torch.no_grad():
        assert model(**_inputs()).logits.shape == (3, 2)


def test_keep_heads_refuses_empty_or_bad_indices():
    h = hf_io.attention_layers(tiny_model("bert"))[0]
    with pytest.raises(ValueError, match="every attention head"):
        h.keep_heads([])
    with pytest.raises(ValueError, match="invalid heads"):
        h.keep_heads([0, 4])


@pytest.mark.parametrize("kind", KINDS)
def test_unpruned_round_trip(kind, tmp_path):
    model = tiny_model(kind)
    meta = hf_io.save_model(model, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    assert meta["num_layers"] == 2 and meta["heads_per_layer"] == [4, 4] and meta["hidden_size"] == 32
    assert meta["param_count"] == hf_io.count_params(model)
    loaded = hf_io.load_model(tmp_path)
    assert not loaded.training
    with torch.no_grad():
        torch.testing.assert_close(loaded(**_inputs()).logits, model(**_inputs()).logits, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_pruned_round_trip_is_strict_and_exact(kind, tmp_path):
    model = tiny_model(kind, layers=3)
    handles = hf_io.attention_layers(model)
    handles[0].keep_heads([0, 2, 3])
    handles[2].keep_heads([1])
    meta = hf_io.save_model(model, tmp_path)
    assert meta["heads_per_layer"] == [3, 4, 1]
    assert json.loads((tmp_path / "config.json").read_text())[hf_io.HEADS_ATTR] == [3, 4, 1]
    assert hf_io.stored_heads_per_layer(tmp_path) == [3, 4, 1]
    assert model.config.to_dict().get(hf_io.HEADS_ATTR) is None  # saving does not touch the live model

    loaded = hf_io.load_model(tmp_path)
    assert hf_io.heads_per_layer(loaded) == [3, 4, 1]
    assert hf_io.count_params(loaded) == meta["param_count"]
    assert set(loaded.state_dict()) == set(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(loaded(**_inputs()).logits, model(**_inputs()).logits, rtol=0, atol=1e-6)

    eager = hf_io.load_model(tmp_path, attn_implementation="eager")
    assert eager.config._attn_implementation == "eager"
    with torch.no_grad():
        torch.testing.assert_close(eager(**_inputs()).logits, model(**_inputs()).logits, rtol=0, atol=1e-5)


def test_build_empty_model_has_shapes_but_not_weights(tmp_path):
    model = tiny_model("bert")
    hf_io.attention_layers(model)[1].keep_heads([2])
    hf_io.save_model(model, tmp_path)
    empty = hf_io.build_empty_model(tmp_path)
    assert hf_io.heads_per_layer(empty) == [4, 1]
    assert {k: v.shape for k, v in empty.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    w_model = model.bert.encoder.layer[0].attention.self.query.weight
    w_empty = empty.bert.encoder.layer[0].attention.self.query.weight
    assert not torch.equal(w_model, w_empty)
    fast = hf_io.build_empty_model(tmp_path, init=False)  # no random init: for loading a state dict next
    fast.load_state_dict(model.state_dict(), strict=True)
    assert hf_io.heads_per_layer(fast) == [4, 1]


def test_corrupt_state_dict_is_refused(tmp_path):
    """A pruned folder whose weights do not match the stored head counts fails loudly (strict load)."""
    model = tiny_model("bert")
    hf_io.attention_layers(model)[0].keep_heads([0, 1])
    hf_io.save_model(model, tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg[hf_io.HEADS_ATTR] = [3, 4]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RuntimeError, match="size mismatch"):
        hf_io.load_model(tmp_path)


def test_unsupported_architecture_is_a_clear_value_error():
    from transformers import GPT2Config, GPT2ForSequenceClassification

    gpt = GPT2ForSequenceClassification(GPT2Config(n_embd=32, n_layer=1, n_head=4, vocab_size=100, num_labels=2))
    # names the architecture and what was not found (no longer a list of the only supported types)
    with pytest.raises(hf_io.UnsupportedArchitectureError, match=r"gpt2 \(GPT2ForSequenceClassification\): no list of"):
        hf_io.attention_layers(gpt)
    assert issubclass(hf_io.UnsupportedArchitectureError, ValueError)
    assert hf_io.model_meta(gpt)["heads_per_layer"] is None


def test_load_model_without_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        hf_io.load_model(tmp_path)

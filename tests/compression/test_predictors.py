"""The shared tokenizer and the predictors of every artifact format."""

from __future__ import annotations

import json

import numpy as np
import pytest

from compression import Artifact, apply, parse_spec
from compression.predictors import OnnxPredictor, TorchPredictor, load_predictor
from compression.tokenize import TokenizerError, load_encoder
from tests.helpers.tiny_models import ONNX_ATOL, TEXTS, predict_in_child, torch_logits


def test_encoder_pads_dynamically_and_truncates(tiny_bert):
    enc = load_encoder(tiny_bert.path)
    assert enc.max_length == 64  # from the artifact meta
    batch = enc.encode(TEXTS[:2])
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids"}
    assert all(a.dtype == np.int64 for a in batch.values())
    lengths = enc.lengths(TEXTS[:2])
    assert batch["input_ids"].shape == (2, max(lengths))  # padded to the longest text, not to a fixed length
    assert batch["attention_mask"].sum(1).tolist() == lengths
    assert batch["input_ids"][0, 0] == 101 and batch["input_ids"][1, lengths[1] - 1] == 102  # [CLS] ... [SEP]
    assert (batch["input_ids"][1, lengths[1] :] == 0).all()  # [PAD]
    long_batch = enc.encode([" ".join(["word"] * 300)])
    assert long_batch["input_ids"].shape == (1, 64) and long_batch["input_ids"][0, -1] == 102
    assert load_encoder(tiny_bert.path, max_length=8).encode([TEXTS[2]])["input_ids"].shape == (1, 8)
    assert enc.encode([])["input_ids"].shape == (0, 0) and enc.lengths([]) == []


def test_roberta_encoder_has_no_token_types_and_pads_with_its_own_id(tiny_roberta):
    enc = load_encoder(tiny_roberta.path)
    batch = enc.encode(TEXTS[:2])
    assert set(batch) == {"input_ids", "attention_mask"}
    n = enc.lengths(TEXTS[:2])[1]
    assert batch["input_ids"][1, 0] == 0 and batch["input_ids"][1, n - 1] == 2  # <s> ... </s>
    assert (batch["input_ids"][1, n:] == 1).all()  # <pad> is id 1, not 0


def test_model_inputs_meta_decides_token_types(tmp_path, tiny_bert):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_bert.path, copy)
    Artifact(
        path=copy, format="hf", meta={**tiny_bert.meta, "model_inputs": ["input_ids", "attention_mask"]}
    ).write_manifest()
    assert "token_type_ids" not in load_encoder(copy).encode(["hi"])


def test_max_length_is_capped_by_the_position_embeddings(tiny_roberta):
    # 130 position embeddings, RoBERTa offsets positions by pad_token_id + 1 = 2: 128 usable tokens.
    assert load_encoder(tiny_roberta.path, max_length=1000).max_length == 128


def test_missing_tokenizer_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(TokenizerError, match="no tokenizer"):
        load_encoder(tmp_path, max_length=16)


@pytest.mark.parametrize("model", ["tiny_bert", "tiny_roberta"])
def test_hf_predictor_matches_transformers(request, model):
    art = request.getfixturevalue(model)
    pred = load_predictor(art, threads=1)
    assert isinstance(pred, TorchPredictor)
    got = pred.predict_logits(TEXTS)
    np.testing.assert_allclose(got, torch_logits(art.path, TEXTS), atol=1e-5, rtol=0)
    np.testing.assert_allclose(pred.predict_logits(TEXTS, batch_size=2), got, atol=1e-5, rtol=0)
    assert pred.predict_logits([]).shape == (0, art.meta["num_labels"])
    pred.close()


def test_onnx_predictor_configures_the_session(tiny_bert, artifact_cache):
    art = apply(tiny_bert, parse_spec("onnx"), artifact_cache)
    pred = load_predictor(art, threads=2)
    assert isinstance(pred, OnnxPredictor)
    assert pred.inputs == ["input_ids", "attention_mask", "token_type_ids"]
    got = pred.predict_logits(TEXTS)
    np.testing.assert_allclose(pred.predict_logits(TEXTS, batch_size=4), got, atol=ONNX_ATOL, rtol=0)
    # Features the graph does not declare are dropped; missing token types are fed as zeros.
    feats = pred.encoder.encode(TEXTS[:2])
    np.testing.assert_allclose(pred.run({**feats, "extra": feats["input_ids"]}), got[:2], atol=ONNX_ATOL, rtol=0)
    no_types = {k: v for k, v in feats.items() if k != "token_type_ids"}
    np.testing.assert_allclose(pred.run(no_types), got[:2], atol=ONNX_ATOL, rtol=0)
    with pytest.raises(ValueError, match="threads"):
        load_predictor(art, threads=0)


def test_onnx_predictor_never_imports_torch(tiny_bert, artifact_cache):
    art = apply(apply(tiny_bert, parse_spec("onnx"), artifact_cache), parse_spec("onnx-int8"), artifact_cache)
    result = predict_in_child(art.path)
    assert result == {"shape": [2, 2], "torch": False, "transformers": False}


def test_torch_predictor_sets_threads(tiny_bert, artifact_cache):
    import torch

    old = torch.get_num_threads()
    want = 2 if old == 1 else 1  # differs from the current setting, so the assertion can fail
    try:
        art = apply(tiny_bert, parse_spec("torchscript"), artifact_cache)
        load_predictor(art, threads=want)
        assert torch.get_num_threads() == want
    finally:
        torch.set_num_threads(old)

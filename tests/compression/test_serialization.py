"""Serialization techniques (onnx, torchscript, torch-export) on tiny random BERT and RoBERTa artifacts."""

from __future__ import annotations

import numpy as np
import pytest

from compression import Artifact, TechniqueError, apply, apply_chain, check_chain, parse_spec
from compression.predictors import load_predictor
from compression.registry import REGISTRY
from tests.helpers.tiny_architectures import MINILM
from tests.helpers.tiny_models import (
    ONNX_ATOL,
    TEXTS,
    build_tiny_bert,
    chain_builder,
    reference_logits,
)

CHAINS = ["onnx", "onnx:optimize=true", "torchscript", "torch-export"]
FORMATS = {"onnx": "onnx", "torchscript": "torchscript", "torch-export": "pt2"}


@pytest.fixture(scope="module")
def built(artifact_cache, tiny_bert, tiny_roberta):
    """(model, spec) -> (artifact, input hash before, input hash after); each built once."""
    return chain_builder({"bert": tiny_bert, "roberta": tiny_roberta}, artifact_cache)


@pytest.fixture(scope="module")
def reference(tiny_bert, tiny_roberta):
    return reference_logits({"bert": tiny_bert, "roberta": tiny_roberta})


@pytest.mark.parametrize("model", ["bert", "roberta"])
@pytest.mark.parametrize("spec", CHAINS)
def test_technique_writes_new_artifact_without_touching_input(built, model, spec):
    art, before, after = built(model, spec)
    assert before == after
    reloaded = Artifact.load(art.path)
    assert reloaded.format == FORMATS[spec.split(":")[0]]
    assert reloaded.lineage == (parse_spec(spec).spec(),)
    assert (art.path / "tokenizer.json").is_file()
    assert reloaded.meta["model_inputs"] == (
        ["input_ids", "attention_mask", "token_type_ids"] if model == "bert" else ["input_ids", "attention_mask"]
    )


@pytest.mark.parametrize("model", ["bert", "roberta"])
@pytest.mark.parametrize("spec", CHAINS)
def test_outputs_match_torch_and_follow_batch_and_length(built, reference, model, spec):
    art, _, _ = built(model, spec)
    pred = load_predictor(art, threads=1)
    try:
        got = pred.predict_logits(TEXTS)
        assert got.dtype == np.float32
        assert got.shape == reference[model].shape
        np.testing.assert_allclose(got, reference[model], atol=ONNX_ATOL, rtol=0)
        # One text alone (no padding, shorter sequence) gives the same logits as inside the padded batch.
        np.testing.assert_allclose(pred.predict_logits(TEXTS[1:2]), got[1:2], atol=ONNX_ATOL, rtol=0)
        long_text = " ".join(["word"] * 200)  # truncated at max_length=64
        assert pred.encoder.encode([long_text])["input_ids"].shape == (1, 64)
        assert pred.predict_logits([long_text, "short"]).shape == (2, got.shape[1])
    finally:
        pred.close()


def test_onnx_fuses_attention_and_records_exporter(built):
    art, _, _ = built("bert", "onnx:optimize=true")
    assert art.meta["onnx_exporter"] == "dynamo"
    assert art.meta["ort_optimized"] is True
    assert art.meta["ort_fused_ops"]["Attention"] == 2  # one per layer
    assert art.meta["ort_fused_ops"].get("SkipLayerNormalization", 0) >= 2
    assert art.meta["onnx_check_max_abs_diff"] < ONNX_ATOL
    plain, _, _ = built("bert", "onnx")
    assert plain.meta["onnx_exporter"] == "dynamo"
    assert plain.meta["ort_optimized"] is False and "ort_fused_ops" not in plain.meta
    rob, _, _ = built("roberta", "onnx:optimize=true")
    assert rob.meta["ort_fused_ops"]["Attention"] == 2


def test_onnx_graph_declares_only_the_model_inputs(built):
    import onnx

    for model, names in (("bert", 3), ("roberta", 2)):
        art, _, _ = built(model, "onnx")
        graph = onnx.load(str(art.path / "model.onnx")).graph
        assert len(graph.input) == names
        assert [o.name for o in graph.output] == ["logits"]
        assert not list(art.path.glob("*.data"))  # weights inside the single file


def test_torchscript_says_it_is_deprecated_and_follows_torch_int8(built, reference):
    assert "torch.export" in REGISTRY["torchscript"].config_cls.deprecated
    art, before, after = built("bert", "torch-int8 torchscript")
    assert before == after
    assert art.lineage == ("torch-int8", "torchscript") and art.format == "torchscript"
    assert art.meta["load_builds_fp32_copy"] is False and not any("fp32 copy" in n for n in art.meta["notes"])
    got = load_predictor(art, threads=1).predict_logits(TEXTS)
    assert np.abs(got - reference["bert"]).max() < 0.25


def test_serializers_refuse_wrong_inputs(built):
    onnx_art, _, _ = built("bert", "onnx")
    with pytest.raises(
        TechniqueError, match=r"step 2 \(torchscript\) cannot follow step 1 \(onnx\).*PyTorch.*gets an ONNX"
    ):
        check_chain("hf", [parse_spec("onnx"), parse_spec("torchscript")])
    with pytest.raises(TechniqueError, match="cannot follow"):
        check_chain("onnx", [parse_spec("torch-export")])
    with pytest.raises(TechniqueError):
        apply(onnx_art, parse_spec("onnx"), onnx_art.path.parent)
    with pytest.raises(TechniqueError, match="optimize must be true or false"):
        parse_spec("onnx:optimize=maybe")


def test_configs_round_trip_and_carry_help():
    from compression import config_from_json

    for name in ("onnx", "onnx-int8", "torchscript", "torch-export", "torch-int8"):
        cls = REGISTRY[name].config_cls
        assert cls.help and cls.label and cls.group in ("serialization", "quantization")
        cfg = cls()
        assert config_from_json(cfg.to_json()) == cfg
    cfg = parse_spec("onnx-int8:weight_type=quint8,per_channel=true")
    assert config_from_json(cfg.to_json()) == cfg


def _prune_in_memory(model, keep: int) -> None:
    """Keep the first ``keep`` heads of every layer by slicing Q/K/V and the output projection."""
    import torch

    for layer in model.bert.encoder.layer:
        att = layer.attention.self
        d = att.attention_head_size
        rows = torch.arange(keep * d)
        for name in ("query", "key", "value"):
            old = getattr(att, name)
            new = torch.nn.Linear(old.in_features, keep * d)
            new.weight.data, new.bias.data = old.weight.data[rows].clone(), old.bias.data[rows].clone()
            setattr(att, name, new)
        out = layer.attention.output.dense
        new = torch.nn.Linear(keep * d, out.out_features)
        new.weight.data, new.bias.data = out.weight.data[:, rows].clone(), out.bias.data.clone()
        layer.attention.output.dense = new
        att.num_attention_heads, att.all_head_size = keep, keep * d


def test_fusion_uses_the_kept_head_count_of_a_pruned_model(tmp_path):
    """After pruning, attention width (heads x head size) differs from the model width: fusion must still work."""
    import onnxruntime as ort
    import torch

    from compression.onnx_export import _export, _fuse
    from compression.torch_wrap import attention_heads, example_inputs, logits_module

    path = build_tiny_bert(tmp_path / "src", hidden=32, heads=4)
    from transformers import BertForSequenceClassification

    model = BertForSequenceClassification.from_pretrained(str(path), attn_implementation="eager").eval()
    _prune_in_memory(model, keep=2)
    heads, head_size = attention_heads(model)
    assert heads == [2, 2] and head_size == 8
    names = ("input_ids", "attention_mask", "token_type_ids")
    args = example_inputs(path, names)
    with torch.no_grad():
        _export(logits_module(model, names, additive_mask=True), args, names, tmp_path / "raw.onnx", 512, False, True)
    stats, notes = _fuse(tmp_path / "raw.onnx", tmp_path / "fused.onnx", heads, head_size, False)
    assert stats["Attention"] == 2 and not notes
    session = ort.InferenceSession(str(tmp_path / "fused.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {n: a.numpy() for n, a in zip(names, args, strict=True)})[0]
    with torch.inference_mode():
        want = logits_module(model, names)(*args).numpy()
    np.testing.assert_allclose(got, want, atol=ONNX_ATOL, rtol=0)


@pytest.mark.slow
def test_every_technique_on_the_real_minilm(tmp_path):
    """The real 6-layer MiniLM (random 2-class head): full attention fusion, ONNX matches torch, int8 stays close."""
    import shutil

    import torch
    from transformers import BertForSequenceClassification

    base = tmp_path / "minilm"
    torch.manual_seed(0)
    BertForSequenceClassification.from_pretrained(str(MINILM), num_labels=2).save_pretrained(base)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy2(MINILM / name, base / name)
    meta = {"num_labels": 2, "max_length": 64, "model_type": "bert", "num_layers": 6, "heads_per_layer": [12] * 6}
    Artifact(path=base, format="hf", meta=meta).write_manifest()
    src = Artifact.load(base)
    ref = load_predictor(src, threads=2).predict_logits(TEXTS)
    for spec in ("onnx:optimize=true", "onnx onnx-int8", "torchscript", "torch-export", "torch-int8"):
        art = apply_chain(src, [parse_spec(s) for s in spec.split(" ")], tmp_path / "cache")
        got = load_predictor(art, threads=2).predict_logits(TEXTS)
        tol = 0.05 if "int8" in spec else ONNX_ATOL  # int8 moved these logits by ~0.01 when measured
        assert np.abs(got - ref).max() < tol, spec
        if spec == "onnx:optimize=true":
            assert art.meta["ort_fused_ops"]["Attention"] == 6


def test_onnx_falls_back_to_the_torchscript_exporter(monkeypatch, tiny_bert, reference, tmp_path):
    import torch

    real_export = torch.onnx.export

    def dynamo_fails(*args, **kwargs):
        if kwargs.get("dynamo", True):
            raise RuntimeError("simulated dynamo exporter failure")
        return real_export(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", dynamo_fails)
    art = apply(tiny_bert, parse_spec("onnx:optimize=true"), tmp_path)
    assert art.meta["onnx_exporter"] == "torchscript"
    assert art.meta["ort_fused_ops"]["Attention"] == 2
    got = load_predictor(art, threads=1).predict_logits(TEXTS)
    np.testing.assert_allclose(got, reference["bert"], atol=ONNX_ATOL, rtol=0)

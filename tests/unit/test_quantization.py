"""Dynamic int8 quantization (ONNX Runtime and PyTorch) on tiny random BERT and RoBERTa artifacts."""
# ruff: noqa: F811  (pytest fixtures imported from conftest_h2 are redefined as arguments)

from __future__ import annotations

import numpy as np
import pytest
from conftest_h2 import (  # noqa: F401 - fixtures
    INT8_ATOL,
    INT8_MIN_CORR,
    TEXTS,
    build_tiny_bert,
    centered_corr,
    folder_hash,
    h2_cache,
    tiny_bert,
    tiny_roberta,
    torch_logits,
)

from compression import Artifact, TechniqueError, apply, apply_chain, check_chain, parse_spec
from compression.predictors import load_predictor
from compression.registry import REGISTRY

INT8_CHAINS = [
    "onnx onnx-int8",
    "onnx onnx-int8:per_channel=false",
    "onnx onnx-int8:weight_type=quint8",
    "onnx:optimize=true onnx-int8",
    "torch-int8",
]


@pytest.fixture(scope="module")
def built(h2_cache, tiny_bert, tiny_roberta):
    cache: dict = {}
    models = {"bert": tiny_bert, "roberta": tiny_roberta}

    def get(model: str, chain: str):
        if (model, chain) not in cache:
            src = models[model]
            before = folder_hash(src.path)
            art = apply_chain(src, [parse_spec(s) for s in chain.split(" ")], h2_cache)
            cache[model, chain] = (art, before, folder_hash(src.path))
        return cache[model, chain]

    return get


@pytest.fixture(scope="module")
def reference(tiny_bert, tiny_roberta):
    return {"bert": torch_logits(tiny_bert.path, TEXTS), "roberta": torch_logits(tiny_roberta.path, TEXTS)}


@pytest.mark.parametrize("model", ["bert", "roberta"])
@pytest.mark.parametrize("chain", INT8_CHAINS)
def test_int8_close_to_fp32_and_input_untouched(built, reference, model, chain):
    art, before, after = built(model, chain)
    assert before == after
    specs = tuple(parse_spec(s).spec() for s in chain.split(" "))
    assert Artifact.load(art.path).lineage == specs
    pred = load_predictor(art, threads=1)
    got = pred.predict_logits(TEXTS)
    ref = reference[model]
    assert got.shape == ref.shape and got.dtype == np.float32
    assert np.abs(got - ref).max() < INT8_ATOL
    assert centered_corr(got, ref) > INT8_MIN_CORR
    assert not np.allclose(got, ref, atol=1e-6)  # it really is a different (quantized) model
    assert pred.predict_logits(TEXTS[:1]).shape == (1, ref.shape[1])


def test_onnx_int8_lineage_and_int8_operators(built):
    import onnx

    art, _, _ = built("bert", "onnx onnx-int8")
    assert art.lineage == ("onnx", "onnx-int8")
    assert art.format == "onnx" and art.meta["quantized"] == "onnx-int8"
    assert "MatMulInteger" in {n.op_type for n in onnx.load(str(art.path / "model.onnx")).graph.node}
    assert art.meta["onnx_int8"] == {"weight_type": "qint8", "per_channel": True, "reduce_range": False}
    fused, _, _ = built("bert", "onnx:optimize=true onnx-int8")
    assert fused.lineage == ("onnx:optimize=True", "onnx-int8")
    ops = {n.op_type for n in onnx.load(str(fused.path / "model.onnx")).graph.node}
    assert "QAttention" in ops  # the fused attention is quantized too


def test_int8_refused_in_impossible_orders(built, tiny_bert):
    with pytest.raises(
        TechniqueError, match=r"step 1 \(onnx-int8\) cannot follow the original model.*ONNX model.*gets a PyTorch"
    ):
        check_chain("hf", [parse_spec("onnx-int8")])
    with pytest.raises(TechniqueError, match=r"step 2 \(torch-int8\) cannot follow step 1 \(onnx\).*ONNX model"):
        check_chain("hf", [parse_spec("onnx"), parse_spec("torch-int8")])
    with pytest.raises(TechniqueError):
        apply(tiny_bert, parse_spec("onnx-int8"), tiny_bert.path.parent / "never")
    art, _, _ = built("bert", "onnx onnx-int8")
    with pytest.raises(ValueError, match="already quantized"):
        apply(art, parse_spec("onnx-int8"), art.path.parent)
    with pytest.raises(TechniqueError, match="weight_type must be one of qint8, quint8"):
        parse_spec("onnx-int8:weight_type=int4")


def test_torch_int8_state_loads_with_weights_only(built):
    import torch

    art, _, _ = built("bert", "torch-int8")
    state = torch.load(art.path / "model_int8.pt", weights_only=True)
    packed = [k for k in state if k.endswith("_packed_params._packed_params")]
    assert len(packed) == 2 * 6 + 2  # 6 Linear per layer (q, k, v, out, intermediate, output), pooler, classifier
    assert art.meta["load_builds_fp32_copy"] is True
    assert art.meta["torch_int8"]["quantized_linear_layers"] == 14
    assert any("fp32 copy" in n for n in art.meta["notes"])
    assert "torchao" in REGISTRY["torch-int8"].config_cls.deprecated


def test_int8_is_smaller_on_disk(tmp_path, h2_cache):
    """With Linear weights dominating (4 layers, 128 wide), int8 artifacts are clearly smaller than fp32."""
    src = Artifact.load(build_tiny_bert(tmp_path / "wide", layers=4, hidden=128, heads=4, inter=512))
    onnx_fp32 = apply(src, parse_spec("onnx"), h2_cache)
    onnx_int8 = apply(onnx_fp32, parse_spec("onnx-int8"), h2_cache)
    torch_int8 = apply(src, parse_spec("torch-int8"), h2_cache)
    assert onnx_int8.disk_bytes() < 0.35 * onnx_fp32.disk_bytes()  # embeddings are quantized too in ORT
    assert torch_int8.disk_bytes() < src.disk_bytes() - 1_500_000  # Linear layers only: 3.1 MB fp32 -> 0.8 MB

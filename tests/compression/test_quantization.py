"""Dynamic int8 quantization (ONNX Runtime and PyTorch) on tiny random BERT and RoBERTa artifacts."""

from __future__ import annotations

import numpy as np
import pytest

from compression import Artifact, TechniqueError, apply, check_chain, parse_spec
from compression.cpu import detect
from compression.int8_recipe import default_recipe, kernel_path
from compression.int8_reference import exact_tolerance, reference_outputs
from compression.predictors import load_predictor
from compression.registry import REGISTRY
from compression.tokenize import load_encoder
from tests.helpers.tiny_models import (
    INT8_ATOL,
    INT8_MIN_CORR,
    TEXTS,
    build_tiny_bert,
    centered_corr,
    chain_builder,
    reference_logits,
)

INT8_CHAINS = [
    "onnx onnx-int8",
    "onnx onnx-int8:per_channel=false",
    "onnx onnx-int8:weight_type=quint8",
    "onnx:optimize=true onnx-int8",
    "torch-int8",
]
# Graphs of standard ONNX operators, which ONNX's numpy reference evaluates with exact integer arithmetic (the fused
# graph has ORT's QAttention, which it cannot run).
REFERENCE_CHAINS = [c for c in INT8_CHAINS if c.startswith("onnx onnx-int8")]


@pytest.fixture(scope="module")
def built(artifact_cache, tiny_bert, tiny_roberta):
    return chain_builder({"bert": tiny_bert, "roberta": tiny_roberta}, artifact_cache)


@pytest.fixture(scope="module")
def reference(tiny_bert, tiny_roberta):
    return reference_logits({"bert": tiny_bert, "roberta": tiny_roberta})


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


def exact_int8(art) -> np.ndarray:
    """The int8 graph's logits by exact integer arithmetic (numpy, independent of the CPU's kernels)."""
    return reference_outputs(art.path / "model.onnx", load_encoder(art.path).encode(TEXTS))


@pytest.mark.parametrize("model", ["bert", "roberta"])
@pytest.mark.parametrize("chain", REFERENCE_CHAINS)
def test_exact_int8_arithmetic_is_close_to_fp32(built, reference, model, chain):
    """What int8 itself costs, on any CPU: the quantized graph computed exactly stays within the bound of fp32."""
    art, _, _ = built(model, chain)
    exact = exact_int8(art)
    assert np.abs(exact - reference[model]).max() < INT8_ATOL
    assert centered_corr(exact, reference[model]) > INT8_MIN_CORR


@pytest.mark.parametrize("model", ["bert", "roberta"])
@pytest.mark.parametrize("chain", REFERENCE_CHAINS)
def test_ort_int8_on_this_cpu_is_the_exact_integer_result(built, model, chain):
    """The recipe chosen for the detected CPU keeps ONNX Runtime's int8 kernel exact (no int16 saturation)."""
    art, _, _ = built(model, chain)
    exact = exact_int8(art)
    got = load_predictor(art, threads=1).predict_logits(TEXTS)
    assert np.abs(got - exact).max() <= exact_tolerance(art.path / "model.onnx", exact)
    check = art.meta["int8_kernel_check"]
    assert check["exact"] is True and check["saturated"] is False and check["max_abs_diff"] <= check["tolerance"]
    assert art.meta["int8_recipe"]["saturates"] is False


def test_forced_8bit_weights_saturate_exactly_where_the_cpu_lacks_vnni(built):
    """The hardware fact behind the rule, on the detected CPU: full 8-bit signed weights are exact with VNNI and
    leave the exact integer result without it (the build's kernel check records it and the artifact says so)."""
    art, _, _ = built("bert", "onnx onnx-int8:reduce_range=false")
    cpu = detect()
    check = art.meta["int8_kernel_check"]
    if cpu.vnni:
        assert check["exact"] is True and check["saturated"] is False
    else:
        assert check["exact"] is False and check["max_abs_diff"] > 10 * check["tolerance"]
        assert check["saturated"] is True and check["max_abs_diff"] > check["int8_error"] > 0
        assert any("saturat" in note for note in art.meta["notes"])
    assert art.meta["int8_recipe"]["saturates"] is (not cpu.vnni)


def test_the_bound_fails_a_broken_quantizer(built, reference, tmp_path):
    """Weight scales off by 30 % (a quantizer bug) must leave the bound, or the bound proves nothing."""
    import onnx
    from onnx import numpy_helper

    art, _, _ = built("bert", "onnx onnx-int8")
    model = onnx.load(str(art.path / "model.onnx"))
    scaled = 0
    for init in model.graph.initializer:
        if init.name.endswith("_scale") and init.data_type == onnx.TensorProto.FLOAT:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(1.3), init.name))
            scaled += 1
    assert scaled > 0
    onnx.save(model, str(tmp_path / "model.onnx"))
    broken = reference_outputs(tmp_path / "model.onnx", load_encoder(art.path).encode(TEXTS))
    assert np.abs(broken - reference["bert"]).max() > INT8_ATOL


def test_onnx_int8_lineage_and_int8_operators(built):
    import onnx

    art, _, _ = built("bert", "onnx onnx-int8")
    assert art.lineage == ("onnx", "onnx-int8")
    assert art.format == "onnx" and art.meta["quantized"] == "onnx-int8"
    assert "MatMulInteger" in {n.op_type for n in onnx.load(str(art.path / "model.onnx")).graph.node}
    recipe = default_recipe(detect())
    assert art.meta["onnx_int8"] == {"weight_type": "qint8", "per_channel": True, "reduce_range": recipe.reduce_range}
    assert art.meta["int8_recipe"]["kernel"] == kernel_path(detect()) and art.meta["int8_recipe"]["reason"]
    assert art.meta["int8_recipe"]["cpu"]["flags"]["avx2"] == detect().has("avx2")
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
    with pytest.raises(TechniqueError, match="weight_type must be one of auto, qint8, quint8"):
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


def test_int8_is_smaller_on_disk(tmp_path, artifact_cache):
    """With Linear weights dominating (4 layers, 128 wide), int8 artifacts are clearly smaller than fp32."""
    src = Artifact.load(build_tiny_bert(tmp_path / "wide", layers=4, hidden=128, heads=4, inter=512))
    onnx_fp32 = apply(src, parse_spec("onnx"), artifact_cache)
    onnx_int8 = apply(onnx_fp32, parse_spec("onnx-int8"), artifact_cache)
    torch_int8 = apply(src, parse_spec("torch-int8"), artifact_cache)
    assert onnx_int8.disk_bytes() < 0.35 * onnx_fp32.disk_bytes()  # embeddings are quantized too in ORT
    assert torch_int8.disk_bytes() < src.disk_bytes() - 1_500_000  # Linear layers only: 3.1 MB fp32 -> 0.8 MB

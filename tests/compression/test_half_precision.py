"""Half precision (torch fp16/bf16, ONNX fp16) on tiny models: disk halves, dtype kept at load, outputs close."""

from __future__ import annotations

import numpy as np
import pytest

from compression import TechniqueError, apply, apply_chain, check_chain, parse_spec
from compression.half_precision import cpu_flags, native_support
from compression.predictors import load_predictor
from tests.helpers.tiny_models import TEXTS, folder_hash

# Tiny random models have logits of magnitude ~5: fp16 keeps ~3 decimal digits, bf16 ~2.
ATOL = {"torch-fp16": 0.02, "torch-bf16": 0.15, "onnx-fp16": 0.02, "onnx-fp16:keep_layer_norm_fp32=false": 0.02}


@pytest.fixture(scope="module")
def fp32(tiny_bert, tiny_roberta):
    return {m: load_predictor(a, threads=1).predict_logits(TEXTS) for m, a in (("bert", tiny_bert),
                                                                               ("roberta", tiny_roberta))}


@pytest.mark.parametrize("chain", ["torch-fp16", "torch-bf16", "onnx onnx-fp16", "onnx onnx-fp16:keep_layer_norm_fp32=false"])
@pytest.mark.parametrize("model", ["bert", "roberta"])
def test_half_precision_halves_disk_and_stays_close(tiny_bert, tiny_roberta, artifact_cache, fp32, chain, model):
    src = {"bert": tiny_bert, "roberta": tiny_roberta}[model]
    before = folder_hash(src.path)
    steps = [parse_spec(s) for s in chain.split()]
    art = apply_chain(src, steps, artifact_cache)
    assert folder_hash(src.path) == before
    parent = apply_chain(src, steps[:-1], artifact_cache) if len(steps) > 1 else src
    # the 400-token tiny RoBERTa is so small that the ONNX graph's structure weighs as much as its weights
    assert art.disk_bytes() < (0.6 if model == "bert" or chain.startswith("torch") else 0.9) * parent.disk_bytes()
    pred = load_predictor(art, threads=1)
    got = pred.predict_logits(TEXTS)
    assert got.shape == fp32[model].shape and got.dtype == np.float32
    assert np.abs(got - fp32[model]).max() < ATOL[chain.split()[-1]]
    assert not np.array_equal(got, fp32[model])
    assert art.meta["half_precision"] == steps[-1].name
    if chain.startswith("torch"):
        import torch

        want = torch.float16 if chain == "torch-fp16" else torch.bfloat16
        assert {p.dtype for p in pred.model.parameters()} == {want}  # loaded and run in the stored dtype
        from safetensors import safe_open

        with safe_open(str(art.path / "model.safetensors"), "pt") as f:
            dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}  # noqa: SIM118 - safe_open is not iterable
            assert dtypes == {"F16" if want == torch.float16 else "BF16"}
    else:
        import onnx

        graph = onnx.load(str(art.path / "model.onnx")).graph
        assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
        assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # keep_io_types
        assert sum(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.initializer) > 10
        fp32_graph = onnx.load(str(parent.path / "model.onnx")).graph

        def weight_bytes(g, dtypes):
            return sum(len(t.raw_data) for t in g.initializer if t.data_type in dtypes)

        half_bytes = weight_bytes(graph, (onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT))
        assert half_bytes < 0.55 * weight_bytes(fp32_graph, (onnx.TensorProto.FLOAT,))  # the weights halve


def test_chains_refused_with_a_reason(tiny_bert):
    meta = tiny_bert.meta
    with pytest.raises(ValueError, match="already half precision"):
        check_chain("hf", [parse_spec("torch-fp16"), parse_spec("torch-bf16")], {**meta, "half_precision": "torch-fp16"})
    with pytest.raises(ValueError, match="already quantized"):
        check_chain("onnx", [parse_spec("onnx-fp16")], {**meta, "quantized": "onnx-int8"})
    with pytest.raises(ValueError, match="float32"):
        check_chain("onnx", [parse_spec("onnx-int8")], {**meta, "half_precision": "onnx-fp16"})
    with pytest.raises(TechniqueError, match="needs an ONNX model"):
        check_chain("hf", [parse_spec("onnx-fp16")], meta)
    with pytest.raises(TechniqueError, match="needs a PyTorch"):
        check_chain("onnx", [parse_spec("torch-bf16")], meta)
    with pytest.raises(TechniqueError, match="keep_layer_norm_fp32 must be true or false"):
        parse_spec("onnx-fp16:keep_layer_norm_fp32=maybe")


def test_int8_after_torch_fp16_is_refused_when_applied(tiny_bert, artifact_cache):
    half = apply(tiny_bert, parse_spec("torch-fp16"), artifact_cache)
    with pytest.raises(ValueError, match="float32"):
        apply(apply(half, parse_spec("onnx"), artifact_cache), parse_spec("onnx-int8"), artifact_cache)


def test_cpu_flag_detection(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 f16c\n")
    flags = cpu_flags(str(info))
    assert native_support("bf16", flags) == ["avx512_bf16"] and native_support("fp16", flags) == []
    assert cpu_flags(str(tmp_path / "missing")) == set()

"""Quantization-aware fine-tuning on a tiny BERT: weights land on the int8 grid the int8 step reproduces exactly."""

from __future__ import annotations

import numpy as np
import pytest

from compression import TechniqueError, apply, apply_chain, check_chain, parse_spec
from compression.cpu import detect
from compression.int8_recipe import default_recipe
from compression.predictors import load_predictor
from compression.qat import GRIDS, fake_quant_activation, quantize_weight
from compression.registry import Context
from tests.helpers.tiny_models import TEXTS, folder_hash
from tests.helpers.toy_data import toy_texts

TRAIN, TRAIN_Y = toy_texts(48, seed=2)


def _ctx() -> Context:
    return Context(train_texts=TRAIN, train_labels=TRAIN_Y)


@pytest.fixture(scope="module")
def qat_onnx(tiny_bert, artifact_cache):
    before = folder_hash(tiny_bert.path)
    art = apply(tiny_bert, parse_spec("qat:steps=6,batch_size=8,lr=0.001"), artifact_cache, _ctx())
    assert folder_hash(tiny_bert.path) == before
    return art


def _linears(art):
    from torch import nn

    from compression.hf_io import load_model

    return {n: m.weight.detach().numpy() for n, m in load_model(art.path).named_modules() if isinstance(m, nn.Linear)}


def test_weights_changed_and_sit_on_the_per_channel_grid(tiny_bert, qat_onnx):
    before, after = _linears(tiny_bert), _linears(qat_onnx)
    assert before.keys() == after.keys() and len(after) == 14
    assert any(not np.allclose(before[k], after[k], atol=1e-3) for k in after)  # it trained
    info = qat_onnx.meta["qat"]
    # The grid is the one this CPU's onnx-int8 recipe uses: 8-bit (absmax / 127) with VNNI, 7-bit (absmax / 64)
    # where the kernel's int16 pair sums would saturate.
    assert info["reduce_range"] == default_recipe(detect()).reduce_range
    div, _, qmax, _ = GRIDS["onnx-int8", info["reduce_range"]]
    for name, w in after.items():
        scale = np.abs(w).max(axis=1, keepdims=True) / div
        q = w / scale
        assert np.abs(q - np.round(q)).max() < 1e-3, name
        assert np.abs(q).max() <= qmax + 1e-3
    assert info["steps"] == 6 and info["target"] == "onnx-int8" and info["linear_layers"] == 14


def test_onnx_int8_reproduces_the_trained_weights(qat_onnx, artifact_cache):
    import onnx
    from onnx import numpy_helper

    exported = apply(qat_onnx, parse_spec("onnx"), artifact_cache)
    int8 = apply(exported, parse_spec("onnx-int8"), artifact_cache)
    fp32 = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(exported.path / "model.onnx")).graph.initializer}
    q = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(int8.path / "model.onnx")).graph.initializer}
    checked = 0
    for name, arr in q.items():
        base = name.removesuffix("_quantized")
        if name == base or arr.ndim != 2 or base + "_scale" not in q or q[base + "_scale"].ndim != 1:
            continue  # per-channel Linear weights only (the embedding tables are per-tensor Gathers)
        deq = arr.astype(np.float32) * q[base + "_scale"][None, :]
        # Gemm weights (pooler, classifier) are stored [out, in] and transposed by ORT before quantizing
        want = fp32[base.removesuffix("_Transposed")].T if base.endswith("_Transposed") else fp32[base]
        np.testing.assert_allclose(deq, want, rtol=0, atol=1e-6 * np.abs(want).max())
        checked += 1
    assert checked == 14  # 6 Linears per layer x 2 layers (MatMul) + pooler and classifier (Gemm)
    assert np.isfinite(load_predictor(int8, threads=1).predict_logits(TEXTS)).all()


def test_torch_int8_grid_is_not_a_fixed_point():
    """Why qat has no torch-int8 target: torch.ao re-quantizes weights that are already on its own grid."""
    import torch
    from torch import nn

    lin = nn.Linear(16, 4)
    with torch.no_grad():
        scale = lin.weight.abs().max() / 127.5
        lin.weight.copy_(torch.clamp(torch.round(lin.weight / scale), -128, 127) * scale)
    on_grid = lin.weight.detach().clone()
    q = torch.ao.quantization.quantize_dynamic(nn.Sequential(lin), {nn.Linear}, dtype=torch.qint8)
    assert not torch.allclose(q[0].weight().dequantize(), on_grid, rtol=0, atol=1e-7)


def test_fake_quant_helpers():
    import torch

    w = torch.randn(4, 8, requires_grad=True)
    x = torch.randn(3, 8, requires_grad=True)
    wq = w + (quantize_weight(w, "onnx-int8") - w).detach()
    (wq.sum() + fake_quant_activation(x).sum()).backward()
    assert torch.equal(w.grad, torch.ones_like(w)) and torch.equal(x.grad, torch.ones_like(x))  # straight through
    assert (fake_quant_activation(x) - x).abs().max() <= (x.max() - x.min()) / 255


def test_invalid_configs_and_chains_refused(tiny_bert, artifact_cache):
    for spec, match in [("qat:steps=0", "steps must be"), ("qat:target=int4", "target must be"),
                        ("qat:lr=0", "lr must be"), ("qat:batch_size=0", "batch_size must be")]:
        with pytest.raises(TechniqueError, match=match):
            parse_spec(spec)
    meta = tiny_bert.meta
    with pytest.raises(ValueError, match="already quantized"):
        check_chain("hf", [parse_spec("qat")], {**meta, "quantized": "torch-int8"})
    with pytest.raises(TechniqueError, match="needs a PyTorch"):
        check_chain("onnx", [parse_spec("qat")], meta)
    qat_meta = {**meta, "qat": {"target": "onnx-int8"}}
    with pytest.raises(ValueError, match="per_channel=true"):
        check_chain("onnx", [parse_spec("onnx-int8:per_channel=false")], qat_meta)
    with pytest.raises(ValueError, match="target=onnx-int8"):
        check_chain("onnx", [parse_spec("onnx-int8")], {**meta, "qat": {"target": "something-else"}})
    with pytest.raises(ValueError, match="use onnx > onnx-int8 after qat"):
        check_chain("hf", [parse_spec("torch-int8")], qat_meta)
    with pytest.raises(TechniqueError, match="labeled training texts"):
        apply_chain(tiny_bert, [parse_spec("qat:steps=1")], artifact_cache, Context())

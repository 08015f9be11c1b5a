"""Static int8 (ORT QDQ) on tiny models: calibration only on train texts, methods, exclusions, refusals; e2e slow."""

from __future__ import annotations

import numpy as np
import pytest

from compression import TechniqueError, apply, check_chain, parse_spec
from compression.int8_reference import PROBE_TEXTS, exact_tolerance, reference_outputs
from compression.onnx_static_int8 import calibration_sample
from compression.predictors import load_predictor
from compression.registry import Context
from compression.tokenize import load_encoder
from tests.helpers.engine import run_on_default
from tests.helpers.tiny_models import (
    INT8_ATOL,
    INT8_MIN_CORR,
    TEXTS,
    centered_corr,
    folder_hash,
)
from tests.helpers.toy_data import CALIB_TEXTS, HELD_OUT_TEXTS, calibration_context, record_encoded_texts


@pytest.fixture(scope="module")
def onnx_bert(tiny_bert, artifact_cache):
    return apply(tiny_bert, parse_spec("onnx"), artifact_cache)


@pytest.fixture(scope="module")
def onnx_roberta(tiny_roberta, artifact_cache):
    return apply(tiny_roberta, parse_spec("onnx"), artifact_cache)


def _ops(art) -> list[str]:
    import onnx

    return [n.op_type for n in onnx.load(str(art.path / "model.onnx")).graph.node]


def test_calibration_only_tokenizes_a_seeded_sample_of_the_train_texts(onnx_bert, tmp_path, monkeypatch):
    seen = record_encoded_texts(monkeypatch)
    # the Context carries only the train split; the runner never hands handlers the test split
    art = apply(onnx_bert, parse_spec("onnx-static-int8:examples=24,seed=3"), tmp_path, calibration_context())
    # After calibrating, the build's int8 kernel check encodes its fixed probe sentences (never data of the run).
    calibrated = seen[: -len(PROBE_TEXTS)]
    assert seen[-len(PROBE_TEXTS):] == list(PROBE_TEXTS)
    assert len(calibrated) == 24 and set(calibrated) <= set(CALIB_TEXTS) and not set(seen) & set(HELD_OUT_TEXTS)
    assert calibrated == calibration_sample(CALIB_TEXTS, 24, 3)  # exactly the seeded sample, in order
    assert calibration_sample(CALIB_TEXTS, 24, 3) != calibration_sample(CALIB_TEXTS, 24, 4)
    info = art.meta["onnx_static_int8"]
    assert info["calibration_examples"] == 24 and info["calibration_source"] == "train split"
    assert calibration_sample(CALIB_TEXTS, 1000, 0) == CALIB_TEXTS  # asking for more than there are takes them all


def test_no_train_texts_is_refused(onnx_bert, tmp_path):
    with pytest.raises(TechniqueError, match="training texts"):
        apply(onnx_bert, parse_spec("onnx-static-int8"), tmp_path, Context())


@pytest.mark.parametrize(
    ("model", "spec"),
    [
        ("bert", "onnx-static-int8:examples=32"),
        ("bert", "onnx-static-int8:method=entropy,examples=32"),
        ("bert", "onnx-static-int8:method=percentile,examples=32"),
        ("bert", "onnx-static-int8:activation_type=qint8,examples=32"),
        ("bert", "onnx-static-int8:embeddings=false,pre_process=false,examples=32"),
        ("roberta", "onnx-static-int8:examples=32"),
        ("roberta", "onnx-static-int8:activation_type=qint8,method=percentile,examples=32"),
    ],
)
def test_static_int8_close_to_fp32_input_untouched(onnx_bert, onnx_roberta, artifact_cache, spec, model):
    src = {"bert": onnx_bert, "roberta": onnx_roberta}[model]
    before = folder_hash(src.path)
    art = apply(src, parse_spec(spec), artifact_cache, calibration_context())
    assert folder_hash(src.path) == before
    assert art.format == "onnx" and art.meta["quantized"] == "onnx-static-int8"
    assert art.lineage[-1] == parse_spec(spec).spec()
    ops = _ops(art)
    assert ops.count("QuantizeLinear") > 0 and ops.count("DequantizeLinear") >= ops.count("QuantizeLinear")
    ref = load_predictor(src, threads=1).predict_logits(TEXTS)
    got = load_predictor(art, threads=1).predict_logits(TEXTS)
    assert got.shape == ref.shape and got.dtype == np.float32
    # ORT on this CPU computes the QDQ graph's exact integer result (the CPU's recipe avoids int16 saturation) ...
    exact = reference_outputs(art.path / "model.onnx", load_encoder(art.path).encode(TEXTS))
    assert np.abs(got - exact).max() <= exact_tolerance(art.path / "model.onnx", exact)
    check = art.meta["int8_kernel_check"]
    assert check["exact"] is True and check["saturated"] is False and art.meta["int8_recipe"]["saturates"] is False
    # ... and that exact result, the same on every CPU, is what static int8 costs against fp32.
    errors = np.abs(exact - ref).max(axis=1)
    if model == "bert":
        assert errors.max() < INT8_ATOL
    else:
        # Fixed activation ranges are a real weakness: on the tiny RoBERTa (a 400-token BPE vocabulary) the
        # one-word text "Dull." falls outside the calibrated uint8 ranges and moves by ~1.0; the others stay close.
        assert np.median(errors) < INT8_ATOL and errors.max() < 1.5
    assert centered_corr(exact, ref) > (INT8_MIN_CORR if model == "bert" else 0.8)
    assert not np.allclose(got, ref, atol=1e-6)
    if "embeddings=false" not in spec and model == "bert":
        assert art.disk_bytes() < 0.5 * src.disk_bytes()  # the int8 embedding table: it dominates a tiny BERT


def test_excluded_layer_keeps_its_float_matmul(onnx_bert, tmp_path):
    import onnx

    name = "bert.encoder.layer.1.intermediate.dense"
    art = apply(onnx_bert, parse_spec(f"onnx-static-int8:examples=16,exclude_layers={name}"), tmp_path, calibration_context())
    nodes = art.meta["onnx_static_int8"]["excluded_nodes"]
    assert len(nodes) == 1
    graph = onnx.load(str(art.path / "model.onnx")).graph
    producers = {o: n for n in graph.node for o in n.output}
    node = next(n for n in graph.node if n.name == nodes[0])
    weight_inputs = [producers[i].op_type if i in producers else "initializer" for i in node.input]
    assert "DequantizeLinear" not in weight_inputs  # both inputs are float: the layer was not quantized
    quantized = [n for n in graph.node if n.op_type == "MatMul" and n.name != nodes[0]
                 and any(i in producers and producers[i].op_type == "DequantizeLinear" for i in n.input)]
    assert quantized  # the others were


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("onnx-static-int8:method=kl", "method must be one of"),
        ("onnx-static-int8:examples=0", "examples must be between"),
        ("onnx-static-int8:examples=100000", "examples must be between"),
        ("onnx-static-int8:percentile=50", "percentile must be"),
        ("onnx-static-int8:activation_type=int4", "activation_type must be"),
        ("onnx-static-int8:exclude_layers=layer 3", "not a module name"),
    ],
)
def test_invalid_configs_refused(spec, match):
    with pytest.raises(TechniqueError, match=match):
        parse_spec(spec)


def test_unknown_layer_name_refused(onnx_bert, tmp_path):
    with pytest.raises(TechniqueError, match="bert.encoder.layer.7.output.dense"):
        apply(onnx_bert, parse_spec("onnx-static-int8:exclude_layers=bert.encoder.layer.7.output.dense"), tmp_path,
              calibration_context())


def test_impossible_chains_refused(tiny_bert):
    with pytest.raises(TechniqueError, match="needs an ONNX model"):
        check_chain("hf", [parse_spec("onnx-static-int8")], tiny_bert.meta)
    with pytest.raises(ValueError, match="already quantized"):
        check_chain("hf", [parse_spec(s) for s in ("onnx", "onnx-int8")] + [parse_spec("onnx-static-int8")],
                    {**tiny_bert.meta, "quantized": "onnx-int8"})
    with pytest.raises(ValueError, match="float32"):
        check_chain("onnx", [parse_spec("onnx-static-int8")], {**tiny_bert.meta, "half_precision": "onnx-fp16"})


@pytest.mark.slow
def test_static_int8_on_the_default_classifier_through_the_engine(tmp_path, monkeypatch):
    from profiling.jobs.presets import variant

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _, _, v = run_on_default(tmp_path / "runs.sqlite", [variant(["onnx"]), variant(["onnx", "onnx-static-int8:examples=64"])])
    fp32 = v["ONNX Runtime"]["metrics"]
    static = next(x["metrics"] for name, x in v.items() if "static" in name)
    assert static["agreement"] >= 0.85 and static["accuracy"] >= 0.7
    assert static["disk_mib"] < fp32["disk_mib"]
    assert static["imported_torch"] is False


def test_forced_8bit_static_weights_saturate_exactly_where_the_cpu_lacks_vnni(onnx_bert, artifact_cache):
    """The kernel check tells rounding ties (a step or two on a few logits) from saturation, on the detected CPU."""
    from compression.cpu import detect

    art = apply(onnx_bert, parse_spec("onnx-static-int8:examples=32,reduce_range=false"), artifact_cache, calibration_context())
    check = art.meta["int8_kernel_check"]
    assert check["exact"] is detect().vnni and check["saturated"] is (not detect().vnni)
    if not detect().vnni:
        assert check["max_abs_diff"] > 2 * check["tolerance"] and check["max_abs_diff"] > check["int8_error"]
        assert any("saturat" in note for note in art.meta["notes"])

"""OpenVINO on tiny models: fp32 IR from ONNX and hf, NNCF int8 (ptq, weights), chains, refusals, the child."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from compression import TechniqueError, apply, apply_chain, check_chain, parse_spec
from compression.cpu import detect
from compression.onnx_static_int8 import calibration_sample
from compression.openvino_export import ir_stats
from compression.openvino_int8 import overflow_fix_for
from compression.registry import REGISTRY, Context
from tests.helpers.tiny_models import (
    INT8_MIN_CORR,
    ONNX_ATOL,
    TEXTS,
    artifact_logits,
    centered_corr,
    folder_hash,
    predict_in_child,
    torch_logits,
)
from tests.helpers.toy_data import CALIB_TEXTS, HELD_OUT_TEXTS, calibration_context, record_encoded_texts

# What int8 guarantees, on any x86 CPU. Each int8 tensor is within half a quantization step of its float value
# (1/510 of its per-channel or calibrated range), and the CPU does not change those integers: the default
# overflow_fix=auto keeps MatMul weights to 7 bits on CPUs without VNNI, so their 16-bit pair sums cannot saturate,
# and leaves NNCF's 8-bit weights (7-bit in the first layer only) where VNNI / AMX accumulate in int32; either way the
# int32 sums are exact (the 7-bit bound is checked below on the weights themselves). The float parts run in float32
# everywhere (the predictor forces f32 inference precision, so an AMX CPU does not switch them to bf16). The rounding
# errors of a dozen quantized MatMuls in series compound to a few per cent of the logits on these random tiny models:
# 15 % bounds that with room; the centered correlation requires the text-to-text variation (small against the
# logits' common offset) to survive, so a constant output fails. (With 8-bit weights, saturation on an AVX2-only CPU
# moved tiny RoBERTa's logits by about 20 %.)
PTQ_MAX_REL = 0.15
# Weight-only int8 has no activation error and decompresses to float32 on every CPU (its IR turns off the plugin's
# on-the-fly activation quantization): only the weights' half-step rounding remains.
WEIGHTS_MAX_REL = 0.05
WEIGHTS_MIN_CORR = 0.99
ENCODER_LINEARS = 2 * 6  # 2 layers x (query, key, value, attention output, intermediate, output)


def _rel(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(got - ref) / np.linalg.norm(ref))


@pytest.fixture(scope="module")
def models(tiny_bert, tiny_roberta):
    return {"bert": tiny_bert, "roberta": tiny_roberta}


@pytest.fixture(scope="module")
def ov_fp32(models, artifact_cache):
    """model -> the fp32 OpenVINO IR converted from the hf model (the input of the int8 tests)."""
    return {name: apply(art, parse_spec("openvino"), artifact_cache) for name, art in models.items()}


# --- fp32 ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["bert", "roberta"])
@pytest.mark.parametrize("source", ["hf", "onnx"])
def test_fp32_openvino_matches_torch(models, artifact_cache, model, source):
    base = models[model]
    src = base if source == "hf" else apply(base, parse_spec("onnx"), artifact_cache)
    before = folder_hash(src.path)
    art = apply(src, parse_spec("openvino"), artifact_cache)
    assert folder_hash(src.path) == before
    assert art.format == "openvino" and art.lineage == (*src.lineage, "openvino")
    assert (art.path / "model.xml").is_file() and (art.path / "model.bin").is_file()
    assert art.meta["openvino"]["source_format"] == source and art.meta["openvino_check_max_abs_diff"] < 1e-3
    stats = ir_stats(art.path / "model.xml")
    assert not stats["ops"].get("FakeQuantize") and not {"i8", "u8", "f16"} & set(stats["constants"])  # fp32 kept
    ref = torch_logits(base.path, TEXTS)
    got = artifact_logits(art)
    assert got.shape == ref.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, atol=ONNX_ATOL, rtol=0)
    # dynamic batch and sequence: one text at a time (no padding) gives the same logits as the padded batch
    from compression.predictors import load_predictor

    pred = load_predictor(art, threads=2)
    np.testing.assert_allclose(pred.predict_logits(TEXTS, batch_size=1), ref, atol=ONNX_ATOL, rtol=0)
    assert pred.compiled.get_property("INFERENCE_NUM_THREADS") == 2
    assert str(pred.compiled.get_property("INFERENCE_PRECISION_HINT")) == "<Type: 'float32'>"
    pred.close()


def test_openvino_after_pruning_heads(tiny_bert, artifact_cache):
    pruned = apply(tiny_bert, parse_spec("prune-heads:0.5"), artifact_cache)
    art = apply_chain(tiny_bert, [parse_spec("prune-heads:0.5"), parse_spec("openvino")], artifact_cache)
    assert (
        art.lineage == (*pruned.lineage, "openvino") and art.meta["heads_per_layer"] == pruned.meta["heads_per_layer"]
    )
    assert sum(art.meta["heads_per_layer"]) < sum(tiny_bert.meta["heads_per_layer"])
    np.testing.assert_allclose(artifact_logits(art), artifact_logits(pruned), atol=ONNX_ATOL, rtol=0)


def test_openvino_predictor_never_imports_torch(ov_fp32):
    assert predict_in_child(ov_fp32["bert"].path) == {"shape": [2, 2], "torch": False, "transformers": False}


# --- int8 ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["bert", "roberta"])
@pytest.mark.parametrize("spec", ["openvino-int8:examples=32", "openvino-int8:mode=weights"])
def test_int8_on_tiny_models(ov_fp32, artifact_cache, model, spec):
    import nncf
    import openvino as ov

    src = ov_fp32[model]
    before = folder_hash(src.path)
    art = apply(src, parse_spec(spec), artifact_cache, calibration_context())
    assert folder_hash(src.path) == before
    assert art.format == "openvino" and art.lineage == (*src.lineage, spec) and art.meta["quantized"] == "openvino-int8"
    info = art.meta["openvino_int8"]
    ptq = "weights" not in spec
    assert info["mode"] == ("ptq" if ptq else "weights")
    assert info["nncf_version"] == nncf.__version__ and info["openvino_version"] == ov.get_version()

    # int8 really is in the IR, and the weights shrank to about a quarter
    stats = ir_stats(art.path / "model.xml")
    int8 = {t: stats["constants"].get(t, {"count": 0, "bytes": 0}) for t in ("i8", "u8")}
    fp32_bin = (src.path / "model.bin").stat().st_size
    assert (art.path / "model.bin").stat().st_size < 0.4 * fp32_bin
    if ptq:
        assert stats["ops"]["FakeQuantize"] == info["fake_quantize_ops"] >= ENCODER_LINEARS
        assert int8["i8"]["count"] >= ENCODER_LINEARS and int8["i8"]["bytes"] > 0.2 * fp32_bin
        assert info["calibration_examples"] == 32 and info["calibration_source"] == "train split"
        assert info["preset"] == "mixed" and info["model_type"] == "transformer"
        assert info["overflow_fix"] == overflow_fix_for(detect())[0] and info["overflow_fix_chosen"] == "cpu"
    else:
        assert not stats["ops"].get("FakeQuantize") and info["fake_quantize_ops"] == 0
        assert int8["u8"]["count"] >= ENCODER_LINEARS and int8["u8"]["bytes"] > 0.2 * fp32_bin
        assert info["activations"] == "float32"

    ref = artifact_logits(src)
    got = artifact_logits(art)
    assert got.shape == ref.shape == (len(TEXTS), src.meta["num_labels"]) and got.dtype == np.float32
    assert np.isfinite(got).all()
    rel, corr = _rel(got, ref), centered_corr(got, ref)
    if ptq:
        assert rel <= PTQ_MAX_REL and corr >= INT8_MIN_CORR, (rel, corr)
    else:
        assert rel <= WEIGHTS_MAX_REL and corr >= WEIGHTS_MIN_CORR, (rel, corr)
    assert not np.allclose(got, ref, atol=1e-6)  # something was quantized


def _matmul_weights(xml: Path) -> list[np.ndarray]:
    """The int8 constants that feed a MatMul's weight input (through the decompression Convert/Subtract/Multiply)."""
    import openvino as ov

    found = []
    for op in ov.Core().read_model(str(xml)).get_ops():
        if op.get_type_name() != "MatMul":
            continue
        node = op.input_value(1).get_node()
        for _ in range(6):
            if node.get_type_name() == "Constant":
                if node.get_output_element_type(0).get_type_name() == "i8":
                    found.append(node.get_data())
                break
            node = node.input_value(0).get_node()
    return found


@pytest.mark.parametrize("model", ["bert", "roberta"])
def test_overflow_fix_keeps_matmul_weights_to_7_bits(ov_fp32, artifact_cache, model):
    fixed = _matmul_weights(
        apply(ov_fp32[model], parse_spec("openvino-int8:examples=32,overflow_fix=enable"), artifact_cache,
              calibration_context()).path / "model.xml"
    )
    assert len(fixed) >= ENCODER_LINEARS and max(int(np.abs(w.astype(np.int16)).max()) for w in fixed) <= 64
    first = apply(ov_fp32[model], parse_spec("openvino-int8:examples=32,overflow_fix=first_layer"), artifact_cache, calibration_context())
    assert first.meta["openvino_int8"]["overflow_fix"] == "first_layer"
    full = _matmul_weights(first.path / "model.xml")
    assert len(full) == len(fixed) and max(int(np.abs(w.astype(np.int16)).max()) for w in full) > 100  # 8-bit


def test_weight_only_ir_turns_off_on_the_fly_activation_quantization(ov_fp32, artifact_cache):
    from compression.predictors import load_predictor

    art = apply(ov_fp32["bert"], parse_spec("openvino-int8:mode=weights"), artifact_cache, Context())  # no data needed
    pred = load_predictor(art, threads=1)
    assert int(pred.compiled.get_property("DYNAMIC_QUANTIZATION_GROUP_SIZE")) == 0
    pred.close()


def test_ptq_calibrates_only_on_a_seeded_sample_of_the_train_texts(ov_fp32, tmp_path, monkeypatch):
    seen = record_encoded_texts(monkeypatch)
    # the Context carries only the train split; the runner never hands handlers the test split
    art = apply(ov_fp32["bert"], parse_spec("openvino-int8:examples=24,seed=3"), tmp_path, calibration_context())
    assert seen == calibration_sample(CALIB_TEXTS, 24, 3)  # exactly the seeded sample, once, in order
    assert set(seen) <= set(CALIB_TEXTS) and not set(seen) & set(HELD_OUT_TEXTS)
    info = art.meta["openvino_int8"]
    assert info["calibration_examples"] == 24 and info["calibration_source"] == "train split"
    seen.clear()
    apply(ov_fp32["bert"], parse_spec("openvino-int8:mode=weights"), tmp_path, calibration_context())
    assert seen == []  # weight-only reads no text at all


def test_ptq_without_train_texts_is_refused(ov_fp32, tmp_path):
    with pytest.raises(TechniqueError, match="training texts"):
        apply(ov_fp32["bert"], parse_spec("openvino-int8"), tmp_path, Context())


def test_the_weight_only_cache_key_ignores_the_data():
    assert (
        parse_spec("openvino-int8").uses_train_data() and not parse_spec("openvino-int8:mode=weights").uses_train_data()
    )


# --- chains, refusals, registry ------------------------------------------------------------------------------------


def test_chains_that_cannot_work_are_refused(ov_fp32, artifact_cache, tiny_bert):
    with pytest.raises(
        TechniqueError,
        match=r"step 2 \(onnx-int8\) cannot follow step 1 \(openvino\).*ONNX model"
        r".*gets an OpenVINO IR model",
    ):
        check_chain("hf", [parse_spec("openvino"), parse_spec("onnx-int8")])
    with pytest.raises(TechniqueError, match=r"openvino-int8.*needs an OpenVINO IR model.*gets a PyTorch"):
        apply(tiny_bert, parse_spec("openvino-int8"), artifact_cache, calibration_context())
    with pytest.raises(TechniqueError, match=r"cannot follow step 1 \(openvino\).*PyTorch"):
        check_chain("hf", [parse_spec("openvino"), parse_spec("prune-heads:0.5")])
    q = apply(ov_fp32["bert"], parse_spec("openvino-int8:mode=weights"), artifact_cache)
    with pytest.raises(ValueError, match="already quantized"):  # check() refusals are ValueErrors, as elsewhere
        apply(q, parse_spec("openvino-int8:mode=weights"), artifact_cache)
    for bad, match in (
        ("openvino-int8:mode=int4", "mode must be"),
        ("openvino-int8:preset=fast", "preset must be"),
        ("openvino-int8:examples=0", "examples must be"),
    ):
        with pytest.raises(TechniqueError, match=match):
            parse_spec(bad)


def test_registry_entries_help_and_cpu_advice():
    from compression import config_from_json
    from profiling.jobs.presets import complete_chain
    from profiling.measure.child import backend_modules
    from profiling.measure.hardware import CpuInfo, advice_for

    for name, group in (("openvino", "serialization"), ("openvino-int8", "quantization")):
        cls = REGISTRY[name].config_cls
        assert cls.group == group and cls.label and cls.help and cls.warning
        # mechanism, not one machine's measurements
        assert not re.search(r"\d\s*(ms|s\b|%|x\b|×|MiB)", cls.help + cls.warning), name
        cfg = parse_spec("openvino-int8:mode=weights") if name == "openvino-int8" else cls()
        assert config_from_json(cfg.to_json()) == cfg
    assert [c.name for c in complete_chain([parse_spec("openvino-int8")])] == ["openvino", "openvino-int8"]
    assert backend_modules("openvino", "bert") == ["openvino"]
    avx2 = CpuInfo(model="AVX2 only", flags=frozenset({"avx2", "fma", "f16c"}))
    vnni = CpuInfo(model="VNNI", flags=frozenset({"avx2", "avx512f", "avx512_vnni"}))
    assert "VNNI" in advice_for("openvino-int8", avx2) and advice_for("openvino-int8", vnni) is None
    assert advice_for("openvino", avx2) is None and advice_for("openvino", vnni) is None


# --- the engine: a fresh profiling child measures OpenVINO variants ------------------------------------------------


def test_the_profiling_child_measures_openvino_variants(ov_fp32, artifact_cache, monkeypatch):
    from profiling.measure.child import PHASES, TEST_PREDICTOR_ENV
    from profiling.measure.monitor import Workload, profile_in_child

    monkeypatch.delenv(TEST_PREDICTOR_ENV, raising=False)
    work = Workload(eval_texts=TEXTS * 2, latency_texts=TEXTS, batch_size=4, repeats=5, warmup=1, threads=1)
    fp32 = ov_fp32["bert"]
    int8 = apply(fp32, parse_spec("openvino-int8:examples=32"), artifact_cache, calibration_context())
    results = {}
    for art in (fp32, int8):
        res = profile_in_child(art.path, work, timeout_s=300)
        assert res.ok, res.error
        m = res.metrics
        assert [n for n, _ in res.phases] == list(PHASES) and m["format"] == "openvino"
        assert m["imported_torch"] is False and m["threads"] == 1
        assert m["disk_mib"] == pytest.approx(art.disk_bytes() / 2**20)
        for key in ("load_time_s", "first_call_ms", "latency_b1_median_ms", "latency_bN_median_ms", "peak_rss_mib"):
            assert m[key] > 0, key
        assert len(res.preds) == len(TEXTS) * 2 and len(res.probs[0]) == 2
        results[art.lineage[-1]] = res
    want = artifact_logits(fp32).argmax(1).tolist() * 2
    assert results["openvino"].preds == want
    assert results["openvino-int8:examples=32"].metrics["disk_mib"] < 0.4 * results["openvino"].metrics["disk_mib"]

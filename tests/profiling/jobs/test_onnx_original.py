"""An ONNX classifier folder as the original model: imported as an "onnx" artifact, profiled through ONNX Runtime,
the ONNX techniques run on it end to end through the runner, every other technique is refused naming the format."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import compression
from compression import TechniqueError, apply, parse_spec
from compression.artifact import TOKENIZER_FILES, Artifact
from compression.predictors import load_predictor
from compression.registry import REGISTRY, format_refusal
from profiling.jobs import runner
from profiling.jobs.presets import complete_chain, start_refusal
from profiling.jobs.runner import RequestError, normalize_request
from profiling.store.runs import RunStore
from tests.helpers.engine import tiny_request
from tests.helpers.tiny_models import INT8_ATOL, INT8_MIN_CORR, ONNX_ATOL, TEXTS, build_tiny_bert, centered_corr

# The techniques that take an ONNX original (openvino-int8 after the openvino conversion it needs first).
APPLICABLE = {"onnx-int8", "onnx-static-int8", "onnx-fp16", "onnx-optimize", "openvino", "openvino-int8"}
FP16_ATOL = 0.02  # as tests/compression/test_half_precision.py for onnx-fp16
OV_PTQ_MAX_REL = 0.15  # as tests/compression/test_openvino.py for openvino-int8 (ptq)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """(this tool's onnx artifact folder, an Optimum-style folder: model.onnx + config.json + tokenizer files)."""
    root = tmp_path_factory.mktemp("onnx-original")
    hf = Artifact.load(build_tiny_bert(root / "hf"))
    own = apply(hf, parse_spec("onnx"), root / "cache")
    optimum = root / "optimum-export"
    optimum.mkdir()
    shutil.copy2(own.path / "model.onnx", optimum / "model.onnx")
    shutil.copy2(hf.path / "config.json", optimum / "config.json")
    for name in TOKENIZER_FILES:
        if (hf.path / name).is_file():
            shutil.copy2(hf.path / name, optimum / name)
    return own.path, optimum


@pytest.mark.parametrize("which", [0, 1], ids=["own-onnx-artifact", "optimum-layout"])
def test_an_onnx_folder_resolves_to_an_onnx_original(engine_env, folders, which):
    from profiling.inputs.models import resolve_model

    art = resolve_model(f"path:{folders[which]}")
    assert art.format == "onnx" and (art.path / "model.onnx").is_file() and (art.path / "tokenizer.json").is_file()
    assert art.meta["num_labels"] == 2 and art.meta["model_type"] == "bert"
    assert art.meta["model_inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert art.meta["param_count"] > 100_000 and art.meta["source_format"] == "onnx"
    assert "quantized" not in art.meta and "half_precision" not in art.meta
    logits = load_predictor(art, 1).predict_logits(TEXTS)
    assert logits.shape == (len(TEXTS), 2) and np.isfinite(logits).all()


def test_a_broken_onnx_folder_is_refused_with_the_reason(engine_env, folders, tmp_path):
    from profiling.inputs.models import ModelError, resolve_model

    bad = tmp_path / "no-labels"
    shutil.copytree(folders[1], bad)
    (bad / "config.json").unlink()
    with pytest.raises(ModelError, match="no config.json: its labels are unknown"):
        resolve_model(f"path:{bad}")
    (bad / "config.json").write_text(json.dumps({"model_type": "bert", "num_labels": 3}))
    with pytest.raises(ModelError, match="outputs 2 logits per text but its config names 3 labels"):
        resolve_model(f"path:{bad}")
    (bad / "tokenizer.json").unlink()
    with pytest.raises(ModelError, match="no tokenizer.json"):
        resolve_model(f"path:{bad}")


def test_external_data_outside_the_folder_is_refused(engine_env, folders, tmp_path):
    import onnx

    from profiling.inputs.models import ModelError, resolve_model

    bad = tmp_path / "escape"
    shutil.copytree(folders[1], bad)
    model = onnx.load(str(bad / "model.onnx"))
    onnx.save(model, str(bad / "model.onnx"), save_as_external_data=True, location="weights.data",
              size_threshold=0)
    resolve_model(f"path:{bad}")  # weights beside the graph: fine
    model = onnx.load(str(bad / "model.onnx"), load_external_data=False)
    for t in model.graph.initializer:
        for entry in t.external_data:
            if entry.key == "location":
                entry.value = "../elsewhere.data"
    onnx.save(model, str(bad / "model.onnx"))
    with pytest.raises(ModelError, match="not a file in the model's own folder"):
        resolve_model(f"path:{bad}")


def test_exactly_the_onnx_techniques_apply_and_every_refusal_names_the_format():
    applicable = {name for name in REGISTRY if start_refusal(name, "onnx") is None}
    assert applicable == APPLICABLE
    for name in sorted(set(REGISTRY) - APPLICABLE):
        reason = start_refusal(name, "onnx")
        assert "this model is an ONNX graph" in reason and "needs" in reason, (name, reason)
        assert name in reason
        with pytest.raises(TechniqueError) as err:  # the engine refuses the same way before any work
            compression.check_chain("onnx", complete_chain([parse_spec(name)], "onnx"))
        assert str(err.value) == reason
    assert "needs a PyTorch model's weights (it edits the PyTorch modules and weights)" in format_refusal("prune-heads",
                                                                                                     "onnx")
    assert start_refusal("prune-heads", "hf") is None
    assert [c.name for c in complete_chain([parse_spec("openvino-int8")], "onnx")] == ["openvino", "openvino-int8"]
    assert [c.name for c in complete_chain([parse_spec("onnx-int8")], "onnx")] == ["onnx-int8"]


def test_the_runner_refuses_pytorch_techniques_on_an_onnx_original_before_a_run(engine_env, folders, toy_csv):
    for chain in ([{"technique": "prune-heads", "fraction": 0.5}], [{"technique": "onnx"}],
                  [{"technique": "torch-int8"}]):
        with pytest.raises(RequestError, match="this model is an ONNX graph"):
            normalize_request(tiny_request(folders[1], toy_csv, [{"name": "x", "chain": chain}]))
    normalize_request(tiny_request(folders[1], toy_csv, [{"name": "q", "chain": [{"technique": "onnx-int8"}]}]))


def test_the_cli_completes_chains_from_an_onnx_original(folders):
    from profiling.cli import parse_techniques

    variants = parse_techniques("onnx-int8,openvino-int8", "onnx")
    assert [[c["technique"] for c in v["chain"]] for v in variants] == [["onnx-int8"], ["openvino", "openvino-int8"]]


def _rel(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(got - ref) / np.linalg.norm(ref))


@pytest.mark.slow
def test_onnx_techniques_run_end_to_end_on_an_onnx_original(engine_env, folders, toy_csv):
    variants = [
        {"name": "int8", "chain": [{"technique": "onnx-int8"}]},
        {"name": "static int8", "chain": [{"technique": "onnx-static-int8", "examples": 32}]},
        {"name": "fp16", "chain": [{"technique": "onnx-fp16"}]},
        {"name": "fused", "chain": [{"technique": "onnx-optimize"}]},
        {"name": "extended", "chain": [{"technique": "onnx-optimize", "mode": "extended"}]},
        {"name": "openvino", "chain": [{"technique": "openvino"}]},
        {"name": "openvino int8", "chain": [{"technique": "openvino"},
                                            {"technique": "openvino-int8", "examples": 16}]},
    ]
    store = RunStore()
    run_id = store.create_run(normalize_request(tiny_request(folders[1], toy_csv, variants)))
    runner.execute(run_id, store)
    run = store.get_run(run_id)
    assert run["status"] == "done", run["error"]
    v = {x["name"]: x for x in store.variants(run_id)}
    assert all(x["status"] == "done" for x in v.values()), {k: x["error"] for k, x in v.items()}
    original = Artifact.load(v["Original"]["artifact"])
    assert original.format == "onnx" and v["Original"]["metrics"]["format"] == "onnx"
    for x in v.values():  # the same measurements as any ONNX variant
        m = x["metrics"]
        assert m["peak_rss_mib"] > 0 and m["disk_mib"] > 0 and m["latency_b1_median_ms"] > 0 and m["param_count"]
    ref = load_predictor(original, 1).predict_logits(TEXTS)

    def logits(name: str) -> np.ndarray:
        return load_predictor(Artifact.load(v[name]["artifact"]), 1).predict_logits(TEXTS)

    for name in ("fused", "extended", "openvino"):  # same float32 arithmetic
        np.testing.assert_allclose(logits(name), ref, atol=ONNX_ATOL, rtol=0)
    assert Artifact.load(v["fused"]["artifact"]).meta["ort_fused_ops"]
    np.testing.assert_allclose(logits("fp16"), ref, atol=FP16_ATOL, rtol=0)
    for name in ("int8", "static int8"):
        got = logits(name)
        assert np.abs(got - ref).max() < INT8_ATOL and centered_corr(got, ref) >= INT8_MIN_CORR, name
        assert not np.allclose(got, ref, atol=1e-6)  # really quantized
    got = logits("openvino int8")
    assert _rel(got, ref) <= OV_PTQ_MAX_REL and centered_corr(got, ref) >= INT8_MIN_CORR
    assert Path(v["int8"]["artifact"]).name.startswith("onnx-int8-")

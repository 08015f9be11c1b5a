"""The peak-RAM estimate: its formula, the refusal message (with an injected available figure), the runner refusing a
variant before building it, and the big presets' shapes and parameter counts (meta device: no weights built)."""

from __future__ import annotations

import pytest

from compression import ram_estimate
from compression.ram_estimate import BYTES_PER_PARAM, GIB, RUNTIME_BYTES, RamError
from compression.registry import REGISTRY

M = 100_000_000


def test_every_technique_and_the_preset_build_have_measured_copies():
    assert set(REGISTRY) | {"build-preset"} <= set(ram_estimate.COPIES)
    assert set(ram_estimate.PROFILE_COPIES) >= {"hf", "onnx"}
    assert all(0 < c <= 12 for c in ram_estimate.COPIES.values())
    assert ram_estimate.UNKNOWN_COPIES == max(ram_estimate.COPIES.values())
    assert RUNTIME_BYTES > 100 * 2**20  # python + torch + onnxruntime imports


def test_the_formula():
    c = ram_estimate.copies("onnx")
    assert ram_estimate.step_estimate(M, "onnx") == int(RUNTIME_BYTES + c * M * BYTES_PER_PARAM)
    assert ram_estimate.copies("no-such-technique") == ram_estimate.UNKNOWN_COPIES
    # a chain peaks at its largest step (or at profiling the result), not at the sum
    chain = ["onnx", "onnx-int8"]
    want = max(ram_estimate.step_estimate(M, t) for t in chain)
    assert ram_estimate.chain_estimate(M, chain, None) == want
    assert ram_estimate.chain_estimate(M, chain, "onnx") == max(want, ram_estimate.profile_estimate(M, "onnx"))
    assert ram_estimate.chain_estimate(M, [], "hf") == ram_estimate.profile_estimate(M, "hf")
    assert ram_estimate.chain_estimate(2 * M, chain) > ram_estimate.chain_estimate(M, chain)  # grows with size


def test_the_refusal_names_the_estimate_and_the_available_figure():
    need = ram_estimate.chain_estimate(335 * 10**6, ["onnx"], "onnx")
    assert ram_estimate.refusal(335 * 10**6, ["onnx"], "onnx", available=need) is None
    message = ram_estimate.refusal(335 * 10**6, ["onnx"], "onnx", available=2 * GIB)
    assert message is not None
    assert f"about {need / GIB:.1f} GiB" in message and "only 2.0 GiB is available" in message
    assert "335M parameters" in message and "for onnx" in message and "refused before building" in message
    with pytest.raises(RamError, match="only 2.0 GiB is available"):
        ram_estimate.check(335 * 10**6, ["onnx"], "onnx", available=2 * GIB)


def test_available_is_what_psutil_says_minus_the_margin():
    import psutil

    got = ram_estimate.available_bytes()
    now = psutil.virtual_memory().available - ram_estimate.MARGIN_BYTES
    assert abs(got - now) < 512 * 2**20  # the same figure, give or take what other processes did meanwhile


def test_the_runner_refuses_a_variant_that_would_not_fit_before_building_it(engine_env, tiny_artifact, toy_csv,
                                                                             monkeypatch):
    from profiling import paths
    from profiling.jobs import runner
    from profiling.store.runs import RunStore
    from tests.helpers.engine import tiny_request

    params = tiny_artifact.meta["param_count"]
    original = ram_estimate.chain_estimate(params, [], "hf")
    onnx = ram_estimate.chain_estimate(params, ["onnx"], "onnx")
    assert onnx > original
    monkeypatch.setattr(ram_estimate, "available_bytes", lambda: (original + onnx) // 2)  # the injected figure
    store = RunStore()
    request = runner.normalize_request(tiny_request(tiny_artifact.path, toy_csv,
                                                    [{"name": "onnx", "chain": [{"technique": "onnx"}]}]))
    run_id = store.create_run(request)
    runner.execute(run_id, store)
    v = {x["name"]: x for x in store.variants(run_id)}
    assert v["Original"]["status"] == "done"
    assert v["onnx"]["status"] == "failed"
    assert f"about {onnx / GIB:.1f} GiB" in v["onnx"]["error"] and "refused before building" in v["onnx"]["error"]
    assert not list(paths.artifacts_dir().glob("onnx-*"))  # nothing was built


def test_big_presets_have_the_real_shapes_and_are_marked_random():
    from profiling.inputs import models

    large = models.preset_config("bert-large-uncased")
    assert (large.num_hidden_layers, large.hidden_size, large.num_attention_heads, large.intermediate_size) == (
        24, 1024, 16, 4096)
    deberta = models.preset_config("deberta-v3-base")
    assert deberta.model_type == "deberta-v2" and deberta.vocab_size == 128100 and deberta.num_hidden_layers == 12
    assert deberta.relative_attention and deberta.share_att_key and deberta.position_buckets == 256
    assert models.preset_parameters("bert-large-uncased") == pytest.approx(335e6, rel=0.01)
    assert models.preset_parameters("deberta-v3-base") == pytest.approx(184e6, rel=0.01)
    for name in ("bert-large-uncased", "deberta-v3-base"):
        assert "random weights" in models.MODEL_CHOICES[f"preset:{name}"]


def test_a_preset_too_big_for_the_ram_is_refused_before_it_is_built(engine_env, monkeypatch):
    from profiling import paths
    from profiling.inputs import models

    monkeypatch.setattr(ram_estimate, "available_bytes", lambda: 256 * 2**20)
    with pytest.raises(models.ModelError, match=r"the bert-large-uncased preset: .* but only 0\.2 GiB is available"):
        models.build_preset("bert-large-uncased")
    assert not list(paths.models_dir().glob("preset-bert-large-uncased-*"))


def test_the_run_page_estimate_covers_each_variant(monkeypatch):
    from dashboard.ram_view import variant_estimates

    variants = [{"name": "Original", "chain": []}, {"name": "ONNX", "chain": [{"technique": "onnx"}]}]
    monkeypatch.setattr(ram_estimate, "available_bytes", lambda: 3 * GIB)
    available, rows = variant_estimates("preset:bert-large-uncased", variants)
    params = 335_143_938
    assert available == 3 * GIB
    assert rows == [("Original", ram_estimate.chain_estimate(params, [], "hf")),
                    ("ONNX", ram_estimate.chain_estimate(params, ["onnx"], "onnx"))]
    assert variant_estimates("org/some-hub-model", variants)[1] == []  # unknown before download

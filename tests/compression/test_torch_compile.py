"""torch-compile: a marker artifact, compiled at load with the compile time apart from the load time."""

from __future__ import annotations

import numpy as np
import pytest

from compression import apply, parse_spec
from compression.predictors import load_predictor
from compression.registry import TechniqueError
from tests.helpers.tiny_models import TEXTS, folder_hash


def test_compiled_in_a_fresh_child_matches_eager_with_compile_time_apart(tiny_bert, artifact_cache):
    """One compilation (they cost seconds): in the profiling child, over batches of 2, 2 and 1 of different lengths."""
    from profiling.measure.evaluation import softmax
    from profiling.measure.monitor import Workload, profile_in_child

    before = folder_hash(tiny_bert.path)
    art = apply(tiny_bert, parse_spec("torch-compile"), artifact_cache)
    assert folder_hash(tiny_bert.path) == before and art.path != tiny_bert.path
    assert art.format == "hf" and art.lineage[-1] == "torch-compile"
    assert art.meta["torch_compile"] == {"dynamic": True, "mode": "default"}
    assert (art.path / "model.safetensors").is_file()

    texts = TEXTS[:5]
    result = profile_in_child(art.path, Workload(eval_texts=texts, latency_texts=TEXTS, batch_size=2, repeats=2,
                                                 warmup=1, threads=1))
    assert result.ok, result.error
    m = result.metrics
    assert m["compile_time_s"] > 0.5 and m["load_time_s"] > 0  # Inductor compiles for real (seconds)
    eager = load_predictor(tiny_bert, 1)
    assert eager.compile_time_s is None
    want = softmax(eager.predict_logits(texts, batch_size=2))
    np.testing.assert_allclose(np.asarray(result.probs), want, atol=1e-4, rtol=0)


def test_bad_options_and_twice_are_refused(tiny_bert, artifact_cache):
    with pytest.raises(TechniqueError, match="mode must be one of default, reduce-overhead, "):
        parse_spec("torch-compile:mode=fastest")
    with pytest.raises(TechniqueError, match="dynamic must be true or false"):
        parse_spec("torch-compile:dynamic=perhaps")
    art = apply(tiny_bert, parse_spec("torch-compile"), artifact_cache)
    with pytest.raises(TechniqueError, match="already marked for torch.compile"):
        apply(art, parse_spec("torch-compile:dynamic=false"), artifact_cache)
    with pytest.raises(TechniqueError, match="cannot follow"):
        from compression import check_chain

        check_chain("hf", [parse_spec("onnx"), parse_spec("torch-compile")])

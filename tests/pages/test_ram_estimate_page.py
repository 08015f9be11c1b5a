"""The Run page shows each variant's estimated peak RAM before launch, and warns about those that would not fit."""

from __future__ import annotations


def test_the_estimate_is_shown_and_a_variant_too_big_is_named(open_page, app_env, monkeypatch):
    from compression import ram_estimate

    at = open_page()
    at.radio(key="model_source").set_value("Architecture preset").run()
    at.selectbox(key="model_preset").set_value("preset:bert-large-uncased").run()
    at.checkbox(key="tick_onnx").check().run()
    assert not at.exception
    captions = [c.value for c in at.caption if "Estimated peak RAM" in c.value]
    assert len(captions) == 1 and "Original" in captions[0] and "ONNX export (ONNX Runtime)" in captions[0]
    assert not any("would need more RAM" in w.value for w in at.warning)

    original = ram_estimate.chain_estimate(335_143_938, [], "hf")
    monkeypatch.setattr(ram_estimate, "available_bytes", lambda: original + 1)  # the original fits, the export not
    at.run()
    warnings = [w.value for w in at.warning if "would need more RAM" in w.value]
    assert len(warnings) == 1 and warnings[0].startswith("ONNX export (ONNX Runtime) would need more RAM")

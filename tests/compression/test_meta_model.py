"""The meta-device build that counts parameters and names modules before any weight exists."""

from __future__ import annotations

import pytest

from compression.meta_model import meta_classifier, meta_parameters
from tests.helpers.tiny_architectures import tiny_classifier, tiny_config


@pytest.mark.parametrize("arch", ["bert", "distilbert", "roberta"])
def test_meta_build_counts_what_the_real_model_holds(arch, tmp_path):
    real = tiny_classifier(arch)
    expected = sum(p.numel() for p in real.parameters())
    model = meta_classifier(tiny_config(arch))
    assert all(p.device.type == "meta" for p in model.parameters())
    assert meta_parameters(tiny_config(arch)) == expected
    real.config.save_pretrained(tmp_path)
    assert meta_parameters(tmp_path) == expected  # from the folder's config.json
    assert meta_parameters(str(tmp_path)) == expected

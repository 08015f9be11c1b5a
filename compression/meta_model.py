"""A classifier's architecture built on the meta device: its module names, structure and parameter count, with
no weight allocated (so it costs no memory, whatever the model's size)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def meta_classifier(config: Any) -> Any:
    """The sequence classifier transformers builds from ``config`` (a transformers config, or a model folder whose
    config.json is read without remote code), on the meta device. Pruned head counts and low-rank splits recorded in
    the config are not rebuilt: this is the base layout of the architecture."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    if isinstance(config, str | Path):
        config = AutoConfig.from_pretrained(str(config), trust_remote_code=False)
    with torch.device("meta"):
        return AutoModelForSequenceClassification.from_config(config)


def meta_parameters(config: Any) -> int:
    """The parameter count of the classifier built from ``config`` (as for :func:`meta_classifier`)."""
    return int(sum(p.numel() for p in meta_classifier(config).parameters()))

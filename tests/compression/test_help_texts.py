"""Help and warning texts state mechanisms, never one machine's measured figures (they belong to runs and benchmarks)."""

from __future__ import annotations

import dataclasses
import re

import pytest

from compression.registry import REGISTRY

MEASURED = re.compile(
    r"\d\s?ms\b|measured (here|on (this|the default|minilm|roberta))|on this CPU|\bhere\b.*\bMiB\b|\d+(\.\d+)?\s?x (faster|slower)|~\d+(\.\d+)?x\b"
    r"|\d+(\.\d+)?\s?(MiB|GiB) (vs|->)|\bon \d+ (idle |busy )?cores\b|\bfor \d+ steps of\b",
    re.IGNORECASE,
)


def texts_of(cls) -> list[tuple[str, str]]:
    out = [(k, getattr(cls, k) or "") for k in ("help", "warning", "deprecated")]
    out += [(f"option {f.name}", f.metadata.get("help", "")) for f in dataclasses.fields(cls)]
    return out


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_no_measured_figure_in_help(name):
    found = [(where, m.group(0)) for where, text in texts_of(REGISTRY[name].config_cls)
             if (m := MEASURED.search(text))]
    assert not found, f"{name}: {found}"


def test_the_pattern_catches_a_baked_figure():
    assert MEASURED.search("MiniLM batch 8 took 983-1423 ms vs 116-165 ms in float32")
    assert MEASURED.search("measured here, ~8.5x slower")
    assert MEASURED.search("signed int8 weights ran 1.7x faster than unsigned ones")
    assert MEASURED.search("about a minute for 200 steps of MiniLM on 2 idle cores")
    assert not MEASURED.search("prunes 50 % of the heads; the run's latency shows what it does")

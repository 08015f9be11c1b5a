"""Latency protocols: 'quick' fills the latency settings, explicit flags win, no protocol keeps the defaults."""

from __future__ import annotations

import pytest

from profiling.cli import _parser, build_request
from profiling.jobs.runner import DEFAULT_SETTINGS, PROTOCOLS, normalize_request


def settings(*argv: str) -> dict:
    return build_request(_parser().parse_args(["run", *argv]))["settings"]


def test_no_protocol_is_the_default_settings():
    assert settings() == DEFAULT_SETTINGS
    assert settings("--protocol", "thorough") == DEFAULT_SETTINGS


def test_quick_protocol_and_explicit_flags():
    quick = settings("--protocol", "quick")
    assert quick == {**DEFAULT_SETTINGS, **PROTOCOLS["quick"]}
    assert quick["repeats"] < DEFAULT_SETTINGS["repeats"] and quick["ci_target_pct"] > DEFAULT_SETTINGS["ci_target_pct"]
    assert quick["latency_budget_s"] < DEFAULT_SETTINGS["latency_budget_s"]
    assert settings("--protocol", "quick", "--repeats", "7")["repeats"] == 7  # an explicit flag wins
    assert settings("--repeats", "7") == {**DEFAULT_SETTINGS, "repeats": 7}


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_every_protocol_is_valid_settings(name):
    assert normalize_request({"model": "default", "dataset": {"kind": "bundled", "name": "movie-reviews"},
                              "settings": PROTOCOLS[name]}, precheck=False)["settings"] == {**DEFAULT_SETTINGS,
                                                                                           **PROTOCOLS[name]}

"""profiling.settings: one description of the measurement settings (defaults, limits, labels, help) used by the
runner, the CLI and the Run page; validation messages name the setting; stored dicts stay as they were."""

from __future__ import annotations

import dataclasses
import json

import pytest

from compression.errors import UserError
from profiling.settings import DEFAULTS, PROTOCOL_META, PROTOCOLS, Settings, SettingsError

FIELDS = dataclasses.fields(Settings)
# What a run request stored as its settings before Settings existed (runner.DEFAULT_SETTINGS, in this order).
STORED_DEFAULTS = ('{"threads": 2, "batch_size": 8, "repeats": 30, "warmup": 3, "eval_size": 300, "seed": 0, '
                   '"ci_target_pct": 2, "latency_budget_s": 10}')
LIMITS = {"threads": (1, 64), "batch_size": (1, 256), "repeats": (1, 10_000), "warmup": (0, 1_000),
          "eval_size": (1, 100_000), "seed": (0, 2**31 - 1), "ci_target_pct": (0, 50), "latency_budget_s": (0, 3_600)}


def _bundled_request(settings: object) -> dict:
    from profiling.inputs.datasets import BUNDLED

    return {"model": "default", "dataset": {"kind": "bundled", "name": next(iter(BUNDLED))}, "settings": settings}


@pytest.mark.parametrize("f", FIELDS, ids=lambda f: f.name)
def test_every_field_has_help_a_label_and_integer_limits_around_its_default(f):
    meta = f.metadata
    assert meta["help"].strip() and meta["label"].strip()
    assert "%" not in meta["help"]  # argparse %-formats help strings (the CLI builds --options from them)
    assert isinstance(meta["min"], int) and isinstance(meta["max"], int)
    assert meta["min"] <= f.default <= meta["max"]
    assert Settings.meta(f.name) == dict(meta)


def test_the_limits_are_the_ones_the_runner_enforced_before():
    assert Settings.limits() == LIMITS


def test_defaults_pass_validation_and_round_trip_byte_identical():
    assert DEFAULTS == Settings.defaults() == Settings()
    assert Settings.from_dict(DEFAULTS.to_dict()) == DEFAULTS
    assert Settings.from_dict(None) == Settings.from_dict({}) == DEFAULTS
    assert json.dumps(DEFAULTS.to_dict()) == STORED_DEFAULTS
    stored = json.loads(STORED_DEFAULTS)
    assert json.dumps(Settings.from_dict(stored).to_dict()) == STORED_DEFAULTS


def test_partial_and_float_settings_are_stored_as_before():
    out = Settings.from_dict({"repeats": 5.0, "seed": 7}).to_dict()
    assert json.dumps(out) == STORED_DEFAULTS.replace('"repeats": 30', '"repeats": 5').replace('"seed": 0', '"seed": 7')
    assert type(out["repeats"]) is int


def test_the_runner_and_its_derived_names_use_settings():
    from profiling.jobs import runner

    assert runner.DEFAULT_SETTINGS == DEFAULTS.to_dict()
    assert runner.SETTING_LIMITS == Settings.limits()
    assert runner.SETTING_HELP == Settings.help()
    assert runner.PROTOCOLS is PROTOCOLS
    request = runner.normalize_request(_bundled_request({"warmup": 1}), precheck=False)
    assert json.dumps(request["settings"]) == STORED_DEFAULTS.replace('"warmup": 3', '"warmup": 1')


@pytest.mark.parametrize("f", FIELDS, ids=lambda f: f.name)
def test_each_limit_is_enforced_with_a_message_naming_the_setting(f):
    lo, hi = f.metadata["min"], f.metadata["max"]
    name = f.name.replace("_", " ")
    assert getattr(Settings.from_dict({f.name: lo}), f.name) == lo
    assert getattr(Settings.from_dict({f.name: hi}), f.name) == hi
    for bad in (lo - 1, hi + 1):
        with pytest.raises(SettingsError, match=rf"^{name} must be between {lo} and {hi}, got {bad}$"):
            Settings.from_dict({f.name: bad})
    for bad in ("3", 2.5, True, None):
        with pytest.raises(SettingsError, match=rf"^{name} must be a whole number, got "):
            Settings(**{f.name: bad})


def test_the_runner_refuses_bad_settings_with_the_same_message():
    from profiling.jobs.runner import RequestError, normalize_request

    with pytest.raises(RequestError, match=r"^threads must be between 1 and 64, got 0$"):
        normalize_request(_bundled_request({"threads": 0}), precheck=False)
    with pytest.raises(RequestError, match=r"^unknown setting colour; settings: threads, batch_size, "):
        normalize_request(_bundled_request({"colour": 1}), precheck=False)
    with pytest.raises(RequestError, match=r"^settings must be a dict$"):
        normalize_request(_bundled_request([1]), precheck=False)


def test_settings_errors_are_user_errors_and_settings_are_frozen():
    assert issubclass(SettingsError, UserError)
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULTS.threads = 4  # type: ignore[misc]


def test_protocols_are_valid_settings_and_thorough_is_the_default():
    assert PROTOCOL_META["choices"] == sorted(PROTOCOLS) and PROTOCOL_META["help"].strip()
    assert DEFAULTS.with_protocol("thorough") == DEFAULTS
    quick = DEFAULTS.with_protocol("quick")
    assert quick.repeats < DEFAULTS.repeats and quick.latency_budget_s < DEFAULTS.latency_budget_s
    assert quick.to_dict() == {**DEFAULTS.to_dict(), **PROTOCOLS["quick"]}


def test_the_cli_offers_every_setting_with_its_help():
    from profiling import cli

    run = next(a for a in cli._parser()._actions if a.dest == "command").choices["run"]
    options = {a.dest: a for a in run._actions}
    for f in FIELDS:
        assert f.metadata["help"] in options[f.name].help and options[f.name].type is int
    assert options["protocol"].choices == PROTOCOL_META["choices"]
    run.format_help()  # no stray percent sign in any help text


def test_the_dashboard_reads_the_same_description():
    from dashboard import state

    assert state.default_settings() == DEFAULTS.to_dict()
    assert state.setting_limits() == Settings.limits()
    assert state.setting_help() == Settings.help()
    assert state.setting_labels() == Settings.labels()

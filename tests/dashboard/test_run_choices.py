"""The Run page's choices as a ``?setup=`` token: the encode/decode round trip and the checks of a decoded one."""

from __future__ import annotations

import base64
import json
import zlib

import pytest

from dashboard import run_choices
from dashboard.run_choices import ChoicesError, checked, decode, encode

CHOICES = {
    "model_source": "Default classifier",
    "model_default": "default",
    "dataset_choice": "tweets",
    "tick_onnx-int8": True,
    "opt_onnx-int8_per_channel": False,
    "opt_onnx-int8_weight_type": "qint8",
    "chain_steps": ["onnx", "onnx-int8"],
    "extra_variants": [{"name": "heads 0.3", "chain": [{"technique": "prune-heads", "fraction": 0.3}]}],
    "latency_protocol": "quick",
    "set_batch_size": 4,
    "set_eval_size": 120,
    "set_workloads": ["dynamic", "fixed:32"],
    "ray_address": "",
    "model_hub": "org/naïve-model",
}


def test_round_trip_gives_back_every_value_and_types():
    token = encode(CHOICES)
    assert token.startswith("v1.") and all(c.isalnum() or c in "-_." for c in token)  # URL-safe as it is
    assert decode(token) == CHOICES
    assert len(token) < len(json.dumps(CHOICES))  # compact: compressed


def test_the_same_choices_give_the_same_token():
    assert encode(dict(reversed(list(CHOICES.items())))) == encode(CHOICES)


@pytest.mark.parametrize("token, why", [
    ("", "not a set-up of this version"),
    ("v2.abc", "not a set-up of this version"),
    ("nonsense", "not a set-up of this version"),
    ("v1.!!!!", "damaged"),
    ("v1." + encode(CHOICES)[3:-5], "damaged"),  # cut short
    ("v1." + base64.urlsafe_b64encode(zlib.compress(b"[1, 2]")).decode().rstrip("="), "holds no set-up"),
    ("v1." + base64.urlsafe_b64encode(zlib.compress(b"{" * 10)).decode().rstrip("="), "damaged"),
    ("v1." + base64.urlsafe_b64encode(zlib.compress(b" " * (1 << 20))).decode().rstrip("="), "too large"),
    ("v1." + "A" * 20_000, "too long"),
])
def test_unreadable_tokens_say_why(token, why):
    with pytest.raises(ChoicesError, match=why):
        decode(token)


def test_checked_keeps_what_applies_and_names_what_does_not():
    stale = {
        **CHOICES,
        "tick_no-such-technique": True,  # a technique that is gone
        "opt_onnx-int8_weight_type": "s4",  # not one of its choices (qint8, quint8, auto)
        "opt_prune-heads_fraction": 7.0,  # out of its range
        "opt_onnx-int8_no_such_option": 1,
        "set_batch_size": 0,  # below the setting's minimum
        "set_threads": 10_000,  # more than this machine has
        "latency_protocol": "reckless",
        "model_default": "default:gone",
        "chain_steps": ["onnx", "teleport"],
        "extra_variants": [{"name": "x", "chain": [{"technique": "teleport"}]}],
        "set_workloads": ["fixed:9999"],
        "unknown_key": 1,
    }
    keep, dropped = checked(stale)
    assert set(dropped) == {"tick_no-such-technique", "opt_onnx-int8_weight_type", "opt_prune-heads_fraction",
                            "opt_onnx-int8_no_such_option", "set_batch_size", "set_threads", "latency_protocol",
                            "model_default", "chain_steps", "extra_variants", "set_workloads", "unknown_key"}
    assert keep == {k: v for k, v in CHOICES.items() if k not in dropped}
    assert checked(CHOICES) == (CHOICES, [])


def test_a_request_maps_back_to_the_form():
    request = {"model": "preset:bert-base-uncased", "dataset": {"kind": "bundled", "name": "tweets"},
               "settings": {"threads": 1, "batch_size": 4, "repeats": 10, "warmup": 3, "eval_size": 50, "seed": 0,
                            "ci_target_pct": 5, "latency_budget_s": 4},
               "workloads": ["dynamic:4", "fixed:4x128"], "executor": "ray", "ray_address": "head:6379"}
    out = run_choices.from_request(request)
    assert out["model_source"] == "Architecture preset" and out["model_preset"] == "preset:bert-base-uncased"
    assert out["dataset_choice"] == "tweets" and out["latency_protocol"] == "quick"
    assert out["set_batch_size"] == 4 and out["set_eval_size"] == 50 and out["set_threads"] == 1
    assert out["set_workloads"] == ["dynamic", "fixed:128"] and out["ray_address"] == "head:6379"


def test_a_packaged_encoder_classifier_and_a_fine_tuning_mode_come_back_from_a_request():
    from dashboard import pickers

    out = run_choices.from_request({"model": "mpnet:tweets", "dataset": {"kind": "bundled", "name": "tweets"},
                                    "finetune": "head"})
    assert out["model_source"] == pickers.SOURCES[0] and out["model_default"] == "mpnet:tweets"
    assert out["finetune_mode"] == "head"
    kept, dropped = run_choices.checked({"finetune_mode": "partial"})
    assert kept == {} and dropped

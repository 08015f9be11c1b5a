"""The Run page's choices kept across pages and reloads: in the session and in a compact ``?setup=`` URL parameter.

Streamlit forgets a widget's value when a page without that widget runs, so every choice of the set-up form (model,
dataset, ticked techniques and their options, the chain, preset variants, protocol, settings, workloads, Ray address)
is copied into a plain session key after each run of the form and written to the URL as ``?setup=v1.<base64url of
zlib-compressed JSON>``. When the form is entered again (its widgets are gone: another page ran, or the browser
reloaded and the session is new) the choices come back from the session copy, else from the URL. A ``?setup=``
value that cannot be read, or whose choices no longer apply (a technique or option that is gone, a number out of
range), is ignored, wholly or in part, with a short notice. "Set up a new run" starts from a stored run's request.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import os
import zlib
from typing import Any

import streamlit as st

from dashboard import state
from dashboard.techniques import catalog, field_key, field_kind, tick_key

PARAM = "setup"
VERSION = "v1"
SESSION_COPY = "run_choices"  # a plain (non-widget) key: Streamlit keeps it across pages
NOTICE_KEY = "run_choices_notice"
MAX_TOKEN_CHARS = 16_000
MAX_JSON_BYTES = 256 * 1024
# A widget every run of the set-up form draws: when it is missing from the session, the form is being entered anew.
ENTRY_MARKER = "model_source"
PLAIN_KEYS = ("model_source", "model_default", "model_preset", "model_hub", "model_path", "dataset_choice",
              "chain_steps", "extra_variants", "latency_protocol", "set_workloads", "ray_address", "finetune_mode")


class ChoicesError(ValueError):
    """A ``?setup=`` value that cannot be read at all."""


# ---- encoding ------------------------------------------------------------------------------------------------


def encode(choices: dict[str, Any]) -> str:
    """``v1.`` + base64url (unpadded) of the zlib-compressed compact JSON of ``choices``."""
    raw = json.dumps(choices, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return f"{VERSION}." + base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode("ascii").rstrip("=")


def decode(token: str) -> dict[str, Any]:
    """The choices of an ``encode`` token (ChoicesError saying why it cannot be read)."""
    token = (token or "").strip()
    if len(token) > MAX_TOKEN_CHARS:
        raise ChoicesError("it is too long")
    version, dot, body = token.partition(".")
    if not dot or version != VERSION:
        raise ChoicesError(f"it is not a set-up of this version (expected {VERSION}.…)")
    try:
        packed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        inflater = zlib.decompressobj()
        raw = inflater.decompress(packed, MAX_JSON_BYTES)
        if inflater.unconsumed_tail:
            raise ChoicesError("it is too large")
        choices = json.loads(raw.decode("utf-8"))
    except (binascii.Error, zlib.error, UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        if isinstance(exc, ChoicesError):
            raise
        raise ChoicesError("it is damaged (cut short or mistyped?)") from None
    if not isinstance(choices, dict):
        raise ChoicesError("it holds no set-up")
    return choices


# ---- what the form holds -------------------------------------------------------------------------------------


def _entries() -> dict[str, Any]:
    return {e.key: e for e in catalog()}


def _option_fields() -> dict[str, tuple[Any, dataclasses.Field]]:
    """``opt_<entry>_<field>`` -> (entry, field) for every option the form can draw (not the fixed ones)."""
    registry = state.technique_registry()
    out = {}
    for entry in catalog():
        for f in dataclasses.fields(registry[entry.technique].config_cls):
            if f.name not in entry.fixed and field_kind(f) != "other":
                out[field_key(entry, f)] = (entry, f)
    return out


def _setting_keys() -> set[str]:
    return {f"set_{k}" for k in state.setting_limits()}


def current() -> dict[str, Any]:
    """The form's choices now (ticks that are on, options of ticked or chained techniques, every other value)."""
    ss = st.session_state
    out: dict[str, Any] = {}
    for key in (*PLAIN_KEYS, *sorted(_setting_keys())):
        if key in ss and ss[key] not in (None, "", [], ()):
            out[key] = list(ss[key]) if isinstance(ss[key], tuple) else ss[key]
    entries = _entries()
    ticked = sorted(k for k, e in entries.items() if ss.get(tick_key(e)))
    for key in ticked:
        out[tick_key(entries[key])] = True
    used = set(ticked) | set(ss.get("chain_steps") or [])
    for key, (entry, _f) in _option_fields().items():
        if entry.key in used and key in ss:
            out[key] = ss[key]
    return out


# ---- checking a decoded set-up -------------------------------------------------------------------------------


def _check_number(value: Any, lo: Any, hi: Any, integer: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int)):
        return False
    return (lo is None or value >= lo) and (hi is None or value <= hi)


def _check_option(f: dataclasses.Field, value: Any) -> bool:
    kind, meta = field_kind(f), f.metadata
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "choice":
        return value in list(meta["choices"])
    if kind == "str":
        return isinstance(value, str) and len(value) <= 2000
    if kind == "float":
        lo, hi = meta.get("min"), meta.get("max")
        return _check_number(value, lo, hi, integer=False)
    if kind == "int":
        return _check_number(value, meta.get("min"), meta.get("max"), integer=True)
    return False


def _check_variants(value: Any) -> bool:
    from compression.registry import config_from_json

    if not isinstance(value, list):
        return False
    for v in value:
        if not (isinstance(v, dict) and isinstance(v.get("name"), str) and isinstance(v.get("chain"), list)
                and v["chain"]):
            return False
        try:
            for step in v["chain"]:
                if not isinstance(step, dict) or step.get("technique") not in state.technique_registry():
                    return False
                config_from_json(step)
        except (ValueError, TypeError):
            return False
    return True


def checked(choices: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The choices that still apply here, and the names of those left out (unknown, stale or out of range)."""
    from dashboard import pickers, sweep
    from profiling.settings import PROTOCOLS

    models = state.model_choices()
    entries = _entries()
    options = _option_fields()
    limits = state.setting_limits()
    cores = os.cpu_count() or 1
    keep: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in choices.items():
        ok = False
        if key == "model_source":
            ok = value in pickers.SOURCES
        elif key in ("model_default", "model_preset"):
            ok = isinstance(value, str) and value in models
        elif key in ("model_hub", "model_path", "ray_address"):
            ok = isinstance(value, str) and len(value) <= 500
        elif key == "dataset_choice":
            ok = value in state.bundled_datasets() or value == "upload"
        elif key == "chain_steps":
            ok = isinstance(value, list) and all(k in entries for k in value)
        elif key == "extra_variants":
            ok = _check_variants(value)
        elif key == "latency_protocol":
            ok = value in PROTOCOLS
        elif key == "finetune_mode":
            from profiling.inputs.finetune import FINETUNE_MODES

            ok = value in FINETUNE_MODES
        elif key == "set_workloads":
            ok = isinstance(value, list) and all(w in sweep.WORKLOAD_CHOICES for w in value)
        elif key.startswith("set_") and key.removeprefix("set_") in limits:
            lo, hi = limits[key.removeprefix("set_")]
            hi = max(1, min(hi, cores)) if key == "set_threads" else hi
            ok = _check_number(value, lo, hi, integer=True)
        elif key.startswith("tick_"):
            ok = key.removeprefix("tick_") in entries and isinstance(value, bool)
        elif key in options:
            ok = _check_option(options[key][1], value)
        if ok:
            keep[key] = value
        else:
            dropped.append(key)
    return keep, dropped


# ---- the page hooks -------------------------------------------------------------------------------------------


def _apply(choices: dict[str, Any], only_missing: bool) -> None:
    for key, value in choices.items():
        if not only_missing or key not in st.session_state:
            st.session_state[key] = value


def restore() -> None:
    """Call first in the set-up form: when it is entered anew, bring back this session's choices, else the URL's."""
    if ENTRY_MARKER in st.session_state:
        return  # the form's widgets are alive: they hold the choices
    saved = st.session_state.get(SESSION_COPY)
    if isinstance(saved, dict):
        _apply(saved, only_missing=True)  # a value set meanwhile (the Sensitivity page's prefill) wins
        return
    token = st.query_params.get(PARAM)
    if not token:
        return
    try:
        choices, dropped = checked(decode(token))
    except ChoicesError as exc:
        st.session_state[NOTICE_KEY] = f"The set-up in this link was ignored: {exc}. Starting from the defaults."
        return
    _apply(choices, only_missing=True)
    if dropped:
        shown = ", ".join(k.removeprefix("tick_").removeprefix("opt_").removeprefix("set_") for k in dropped[:6])
        st.session_state[NOTICE_KEY] = (f"Some choices in this link no longer apply here and were left out: {shown}"
                                        + (" …" if len(dropped) > 6 else "") + ".")


def notice() -> None:
    """The notice about an ignored ``?setup=`` (once)."""
    text = st.session_state.pop(NOTICE_KEY, None)
    if text:
        st.info(text, icon=":material/link_off:")


def remember() -> None:
    """Call last in the set-up form: keep the choices in the session and in the URL (a reload brings them back)."""
    choices = current()
    st.session_state[SESSION_COPY] = choices
    token = encode(choices)
    if st.query_params.get(PARAM) != token:
        st.query_params[PARAM] = token


def _workload_choice(spec: str) -> str | None:
    """A request's workload (``dynamic:8``, ``fixed:8x32``) as the picker's choice (``dynamic``, ``fixed:32``)."""
    kind, _, rest = str(spec).partition(":")
    if kind == "fixed":
        return f"fixed:{rest.partition('x')[2]}"
    return kind or None


def from_request(request: dict[str, Any]) -> dict[str, Any]:
    """The form's non-technique choices that reproduce a stored run's request (its techniques: ``load_request``)."""
    from dashboard import pickers, sweep
    from profiling.inputs.packaged_encoders import ENCODERS
    from profiling.settings import PROTOCOLS

    out: dict[str, Any] = {}
    model = str(request.get("model") or "")
    if model == "default" or model.startswith("default:") or model.partition(":")[0] in ENCODERS:
        out.update(model_source=pickers.SOURCES[0], model_default=model)
    elif model.startswith("preset:"):
        out.update(model_source=pickers.SOURCES[1], model_preset=model)
    elif model.startswith("path:"):
        out.update(model_source=pickers.SOURCES[3], model_path=model.removeprefix("path:"))
    elif model:
        out.update(model_source=pickers.SOURCES[2], model_hub=model.removeprefix("hub:"))
    dataset = request.get("dataset") or {}
    if isinstance(dataset, dict) and dataset.get("kind") == "bundled":
        out["dataset_choice"] = dataset.get("name")
    elif isinstance(dataset, dict) and dataset.get("kind") == "csv":
        out["dataset_choice"] = "upload"  # the file itself cannot be put back into an upload box
    settings = request.get("settings") or {}
    for key, value in settings.items():
        out[f"set_{key}"] = value
    protocol = next((name for name, values in PROTOCOLS.items()
                     if all(settings.get(k) == v for k, v in values.items())), None)
    if protocol:
        out["latency_protocol"] = protocol
    workloads = [w for w in map(_workload_choice, request.get("workloads") or []) if w in sweep.WORKLOAD_CHOICES]
    if workloads:
        out["set_workloads"] = workloads
    if request.get("executor") == "ray" and request.get("ray_address"):
        out["ray_address"] = request["ray_address"]
    if request.get("finetune"):
        out["finetune_mode"] = request["finetune"]
    return checked(out)[0]


def _full_chain(chain: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every step with all its options (a request written by hand or an older version may leave defaults out), so
    it matches the tick that produces it; a step that does not load is kept as it is."""
    from compression.registry import config_from_json

    out = []
    for step in chain:
        try:
            out.append(config_from_json(step).to_json())
        except (ValueError, TypeError):
            out.append(step)
    return out


def load_request(request: dict[str, Any] | None) -> None:
    """Put a stored run's request into the form ("Set up a new run"): model, dataset, settings, workloads, and its
    variants as ticks with their options (others as extra variants). Call it before the form is drawn."""
    if not request:
        return
    from dashboard import technique_picker

    for key in [k for k in st.session_state if isinstance(k, str) and k.startswith(("set_", "opt_", "model_"))]:
        del st.session_state[key]  # nothing of the previous form lingers
    st.session_state.pop("ray_address", None)
    choices = from_request(request)
    _apply(choices, only_missing=False)
    variants = [{**v, "chain": _full_chain(v["chain"])} for v in request.get("variants") or [] if v.get("chain")]
    technique_picker.apply_variants(variants)
    if str(choices.get("dataset_choice")) == "upload":
        st.session_state[NOTICE_KEY] = "That run used an uploaded CSV: upload the file again to use it."
    st.session_state[SESSION_COPY] = {**choices, **current()}


def new_run_button(run: dict[str, Any]) -> None:
    """Results page: "Set up a new run from this one" opens the Run page's form filled in with this run's request
    (not on a share link or a read-only app, which have no Run page)."""
    from dashboard import share

    if share.locked() or not run.get("request"):
        return
    if st.button("Set up a new run from this one", key=f"new_run_from_{run['id']}", icon=":material/add:",
                 help="Open the Run page with this run's model, data, techniques and settings filled in."):
        load_request(run["request"])
        # As the Run page's own "Set up a new run" does: leave the run this session launched last, show the form.
        st.session_state["detached"] = st.session_state.pop("run_id", None)
        st.switch_page("pages/run.py")

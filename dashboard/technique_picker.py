"""The Run page's technique picker: grouped ticks with their options, the chain builder and the reference preset."""

from __future__ import annotations

import dataclasses
from typing import Any

import streamlit as st

from dashboard import state
from dashboard.guard import problem
from dashboard.techniques import Entry, catalog, entry_config, field_key, field_kind, tick_key

GROUPS = (
    ("serialization", "Serialization", "Same weights, another runtime or file format."),
    ("quantization", "Quantization", "Weights stored and multiplied as 8-bit integers."),
    ("pruning", "Pruning", "Remove or factorize parts of the network (some fine-tune briefly)."),
    ("architecture", "Architecture", "Train a smaller model to imitate the original."),
)
# Options the pickers show only under "More options" (still settable; sensible defaults otherwise).
_ADVANCED = {"seed", "importance_batches", "batch_size", "opset", "max_length", "lr", "learning_rate"}

def _field_widget(entry: Entry, f: dataclasses.Field, disabled: bool = False) -> None:
    """One widget for one config field, from its metadata (help text, range, choices)."""
    meta = f.metadata
    label = meta.get("label") or f.name.replace("_", " ").capitalize()
    helptext = meta.get("help") or f"{f.name} (default {f.default!r})"
    key = field_key(entry, f)
    kind = field_kind(f)
    if key not in st.session_state:
        st.session_state[key] = f.default
    common = {"key": key, "help": helptext, "disabled": disabled}
    if kind == "bool":
        st.checkbox(label, **common)
    elif kind == "choice":
        st.radio(label, list(meta["choices"]), horizontal=True, **common)
    elif kind == "float" and "min" in meta and "max" in meta:
        lo, hi = float(meta["min"]), float(meta["max"])
        step = float(meta.get("step", 0.05 if hi - lo <= 1 else 0.1))
        if "fraction" in f.name:  # open interval (0, 1): keep the slider off the invalid ends
            lo, hi = max(lo, step), min(hi, 1 - step)
        st.slider(label, min_value=lo, max_value=hi, step=step, **common)
    elif kind == "float":
        lo = float(meta["min"]) if "min" in meta else None
        small = 0 < abs(float(f.default or 0)) < 0.01
        st.number_input(
            label,
            min_value=lo,
            step=float(f.default) / 10 if small else 0.1,
            format="%.1e" if small else "%.2f",
            **common,
        )
    elif kind == "int":
        lo, hi = meta.get("min"), meta.get("max")
        st.number_input(label, min_value=lo, max_value=hi, step=1, **common)
    elif kind == "str":
        st.text_input(label, **common)
    # other kinds (tuples of layer indices, ...) keep their default


def technique_picker(model_spec: str | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """Grouped technique ticks with their options, a chain builder and the reference preset.

    With the chosen model's spec, techniques its architecture rules out say why under their tick.
    Returns the variants (``{"name", "chain"}``, original first) and the problems that block a launch."""
    from compression.structure import refusal
    from profiling.inputs.spec_structure import spec_format, spec_meta
    from profiling.jobs.presets import start_refusal

    entries = catalog()
    meta = spec_meta(model_spec)
    fmt = spec_format(model_spec)  # an ONNX original takes only the ONNX techniques: the others say why up front
    refused = {e.technique: start_refusal(e.technique, fmt) or refusal(e.technique, meta) for e in entries}
    _preset_buttons()
    _grouped_ticks(entries, refused)
    variants, errors = _ticked_variants(entries, refused, fmt)
    chain_variant, chain_error = _chain_builder(entries, fmt)
    if chain_error:
        errors += problem(chain_error)
    elif chain_variant is not None:
        variants.append(chain_variant)
    variants.extend(st.session_state.get("extra_variants", []))
    return _dedupe(variants), errors


def _preset_buttons() -> None:
    """The reference-preset and clear buttons (callbacks, so they set the ticks before they are drawn)."""
    p1, p2, p3 = st.columns([1, 1, 2], vertical_alignment="center")
    p1.button(
        "Reference sequence",
        key="preset_seed",
        icon=":material/checklist:",
        on_click=_apply_preset,
        args=("seed",),
        help=_preset_help("seed"),
    )
    p2.button(
        "Clear techniques",
        key="preset_clear",
        icon=":material/clear_all:",
        on_click=_clear_techniques,
        help="Untick every technique and forget chains and preset variants.",
    )
    p3.caption(
        "The reference sequence ticks every technique and adds the pruning fractions and the full chain "
        "of the reference walk-through."
    )
    if st.session_state.get("preset_note"):
        st.warning(st.session_state["preset_note"], icon=":material/warning:")


def _grouped_ticks(entries: list[Entry], refused: dict[str, str | None]) -> None:
    """One bordered column per group of techniques; techniques of no known group after them."""
    registry = state.technique_registry()
    cols = st.columns(len(GROUPS))
    for col, (group, title, blurb) in zip(cols, GROUPS, strict=True):
        with col.container(border=True):
            st.markdown(f"**{title}**")
            st.caption(blurb)
            shown: set[str] = set()  # a CPU warning shared by several techniques of the column: said once
            for entry in (e for e in entries if registry[e.technique].config_cls.group == group):
                _entry_controls(entry, refused[entry.technique], shown)
    others = [e for e in entries if registry[e.technique].config_cls.group not in {g[0] for g in GROUPS}]
    for entry in others:
        _entry_controls(entry, refused[entry.technique])


def _ticked_variants(
    entries: list[Entry], refused: dict[str, str | None], fmt: str = "hf"
) -> tuple[list[dict[str, Any]], list[str]]:
    """The original plus one variant per ticked technique (completed and checked), and the problems found."""
    from compression.registry import TechniqueError, check_chain
    from profiling.jobs.presets import complete_chain, variant_name

    variants: list[dict[str, Any]] = [{"name": "Original", "chain": []}]
    errors: list[str] = []
    for entry in entries:
        if not st.session_state.get(tick_key(entry)):
            continue
        if refused[entry.technique]:
            errors += problem(f"{entry.label}: {refused[entry.technique]}")
            continue
        try:
            chain = complete_chain([entry_config(entry)], fmt)
            check_chain(fmt, chain)
        except TechniqueError as exc:
            errors += problem(f"{entry.label}: {exc}")
            continue
        variants.append(_variant([c.to_json() for c in chain], variant_name, entry.label if entry.fixed else None))
    return variants, errors


def _entry_controls(entry: Entry, refused: str | None = None, shown: set[str] | None = None) -> None:
    cls = state.technique_registry()[entry.technique].config_cls
    helptext = (
        cls.help
        + (f"\n\n**Deprecated API:** {cls.deprecated}" if cls.deprecated else "")
        + (f"\n\n**Caveat:** {cls.warning}" if cls.warning else "")
    )
    for f in dataclasses.fields(cls):
        if f.name in entry.fixed and f.metadata.get("help"):
            helptext += f"\n\n**{f.name.replace('_', ' ').capitalize()} = {entry.fixed[f.name]}:** {f.metadata['help']}"
    st.checkbox(entry.label, key=tick_key(entry), help=helptext)
    if refused:  # the chosen model's architecture rules it out: say so before it is ticked
        st.caption(f":material/block: {refused[0].upper()}{refused[1:]}")
    if cls.deprecated:
        st.badge("deprecated API", icon=":material/warning:", color="orange")
    from dashboard.hardware import technique_advice

    cpu_advice = technique_advice(entry.technique, entry.fixed)
    if cpu_advice and shown is not None and cpu_advice in shown:
        st.caption(":material/memory: The CPU note above applies here too.")
    elif cpu_advice:
        st.caption(f":material/memory: {cpu_advice}")
        if shown is not None:
            shown.add(cpu_advice)
    if not (st.session_state.get(tick_key(entry)) or entry.key in (st.session_state.get("chain_steps") or [])):
        return  # options appear once the technique is ticked or used in the chain (defaults otherwise)
    fields = [f for f in dataclasses.fields(cls) if f.name not in entry.fixed]
    main = [f for f in fields if f.name not in _ADVANCED]
    advanced = [f for f in fields if f.name in _ADVANCED]
    for f in main:
        _field_widget(entry, f)
    if advanced:
        with st.expander(f"More {entry.label} options"):
            for f in advanced:
                _field_widget(entry, f)


def _chain_builder(entries: list[Entry], fmt: str = "hf") -> tuple[dict[str, Any] | None, str | None]:
    """An ordered multiselect of steps (in the order clicked); the chain is checked before launch."""
    from compression.registry import TechniqueError, check_chain
    from profiling.jobs.presets import variant_name

    by_key = {e.key: e for e in entries}
    steps = st.multiselect(
        "Chain (optional): pick steps in the order they are applied",
        list(by_key),
        key="chain_steps",
        format_func=lambda k: by_key[k].label if k in by_key else k,
        help="Builds one extra variant that applies the steps one after another, in the order you pick them "
        "(e.g. distilled student, then head pruning, then ONNX, then ONNX Runtime int8). Each step uses the "
        "options set above. Orders that cannot work (e.g. pruning an ONNX model) are refused with the reason.",
    )
    if not steps:
        return None, None
    try:
        configs = [entry_config(by_key[k]) for k in steps if k in by_key]
        check_chain(fmt, configs)
    except TechniqueError as exc:
        return None, f"This chain cannot work: {exc}"
    chain = [c.to_json() for c in configs]
    st.caption(f"Chain variant: **{variant_name(chain)}**")
    return _variant(chain, variant_name), None


def _variant(chain: list[dict[str, Any]], namer: Any, name: str | None = None) -> dict[str, Any]:
    return {"name": name or namer(chain), "chain": chain}


def _dedupe(variants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop repeated chains; make names unique."""
    import json

    seen: set[str] = set()
    names: set[str] = set()
    out = []
    for v in variants:
        sig = json.dumps(v["chain"], sort_keys=True)
        if sig in seen:
            continue
        seen.add(sig)
        name, n = v["name"], 2
        while name in names:
            name, n = f"{v['name']} #{n}", n + 1
        names.add(name)
        out.append({**v, "name": name})
    return out


def _preset_help(name: str) -> str:
    try:
        from profiling.jobs.presets import PRESET_HELP

        return PRESET_HELP.get(name, "")
    except ImportError:
        return ""


def _clear_techniques() -> None:
    for entry in catalog():
        st.session_state[tick_key(entry)] = False
    st.session_state["chain_steps"] = []
    st.session_state["extra_variants"] = []
    st.session_state["preset_note"] = ""


def _apply_preset(name: str) -> None:
    """Tick the entries a preset uses (options from the first variant using each), keep the rest as extra variants.

    Runs as a button callback, before the widgets are drawn, so it may set their values."""
    apply_variants(state.presets().get(name, []))


def apply_variants(variants: list[dict[str, Any]]) -> None:
    """Tick the entries these variants use (a preset's, or a stored run's request), options from the first variant
    using each; variants that are not one plain tick (other fractions, chains) become extra variants. Call it
    before the technique widgets are drawn (a callback, or before the picker)."""
    from compression.registry import config_from_json
    from profiling.jobs.presets import complete_chain

    entries = catalog()
    known = set(state.technique_registry())
    _clear_techniques()
    claimed: set[str] = set()
    extras, unavailable = [], []
    for v in variants:
        chain = list(v.get("chain") or [])
        if not chain:
            continue
        if not {str(c.get("technique")) for c in chain} <= known:
            unavailable.append(str(v.get("name") or "variant"))
            continue
        entry = _matching_entry(chain, entries, claimed, config_from_json, complete_chain)
        if entry is None:
            extras.append({"name": str(v.get("name") or "variant"), "chain": chain})
            continue
        claimed.add(entry.key)
        st.session_state[tick_key(entry)] = True
        cfg = config_from_json(chain[-1])
        for f in dataclasses.fields(cfg):
            if f.name not in entry.fixed:
                st.session_state[field_key(entry, f)] = getattr(cfg, f.name)
    st.session_state["extra_variants"] = extras
    st.session_state["preset_note"] = (
        f"Left out (technique not installed): {', '.join(unavailable)}." if unavailable else ""
    )


def _matching_entry(chain, entries, claimed, config_from_json, complete_chain) -> Entry | None:
    """The unclaimed entry whose single ticked step produces exactly this chain, if any."""
    try:
        last = config_from_json(chain[-1])
        full = [c.to_json() for c in complete_chain([last])]
    except ValueError:
        return None
    if full != chain:
        return None
    for entry in entries:
        if entry.key in claimed or entry.technique != last.name:
            continue
        if all(getattr(last, k) == v for k, v in entry.fixed.items()):
            return entry
    return None


def extra_variants_editor() -> None:
    """Show the preset variants that are not plain ticks (other fractions, full chains), each removable."""
    extras = st.session_state.get("extra_variants", [])
    if not extras:
        return
    from profiling.jobs.presets import step_name

    st.markdown("**Also from the preset**")
    for i, v in enumerate(extras):
        c1, c2 = st.columns([6, 1], vertical_alignment="center")
        steps = " → ".join(step_name(c) for c in v["chain"])
        c1.markdown(v["name"] + (f"  \n:gray[{steps}]" if len(v["chain"]) > 1 and steps != v["name"] else ""))
        c2.button(
            "Remove", key=f"extra_rm_{i}", on_click=_remove_extra, args=(i,), help="Leave this variant out of the run."
        )


def _remove_extra(i: int) -> None:
    extras = list(st.session_state.get("extra_variants", []))
    if 0 <= i < len(extras):
        extras.pop(i)
    st.session_state["extra_variants"] = extras

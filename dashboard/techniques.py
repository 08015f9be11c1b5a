"""The tickable techniques of the Run page and their session-state keys (no drawing): entries, configs, prefill."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from dashboard import state


@dataclass(frozen=True)
class Entry:
    """One tickable technique on the Run page: a registered technique with some options fixed."""

    key: str
    technique: str
    label: str
    fixed: dict[str, Any] = field(default_factory=dict)


def catalog() -> list[Entry]:
    """Tickable entries in registry order; ONNX appears twice (plain and graph-optimized) when it has the option."""
    registry = state.technique_registry()
    entries = []
    for name, tech in registry.items():
        cls = tech.config_cls
        opt = next((f for f in dataclasses.fields(cls) if field_kind(f) == "bool" and "optim" in f.name), None)
        if opt is not None:  # plain and optimized side by side, so the optimizer's effect shows in the results
            label = cls.label or name
            optimized = label.replace(" (", " optimized (", 1) if " (" in label else f"{label} optimized"
            entries.append(Entry(name, name, label, {opt.name: False}))
            entries.append(Entry(f"{name}-optimized", name, optimized, {opt.name: True}))
        else:
            entries.append(Entry(name, name, cls.label or name))
    return entries


def field_kind(f: dataclasses.Field) -> str:
    typ = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if f.metadata.get("choices"):
        return "choice"
    for k in ("bool", "float", "int", "str"):
        if k in typ and "tuple" not in typ and "list" not in typ:
            return k
    return "other"


def entry_config(entry: Entry) -> Any:
    """The entry's config from its widgets' current values (raises TechniqueError on a bad value)."""
    from compression.registry import make_config

    cls = state.technique_registry()[entry.technique].config_cls
    kwargs = dict(entry.fixed)
    for f in dataclasses.fields(cls):
        key = field_key(entry, f)
        if f.name not in kwargs and key in st.session_state:
            kwargs[f.name] = st.session_state[key]
    return make_config(entry.technique, **kwargs)


def field_key(entry: Entry, f: dataclasses.Field | str) -> str:
    return f"opt_{entry.key}_{f if isinstance(f, str) else f.name}"


def tick_key(entry: Entry) -> str:
    return f"tick_{entry.key}"


def prefill_technique(technique: str, **options: Any) -> str:
    """Tick ``technique`` on the Run page with these options set (e.g. from the Sensitivity page); returns its label.

    The values are plain session-state keys until the Run page draws its widgets, which then start from them.
    """
    entry = next((e for e in catalog() if e.technique == technique and not any(e.fixed.values())), None)
    if entry is None:
        raise KeyError(f"no technique {technique!r} on the Run page")
    st.session_state[tick_key(entry)] = True
    for name, value in options.items():
        st.session_state[field_key(entry, name)] = value
    return entry.label

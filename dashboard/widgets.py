"""Run-page controls: model, dataset and technique pickers built from the engine's metadata, plus an error guard."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import streamlit as st

from compression.errors import UserError
from dashboard import state
from profiling import paths

log = logging.getLogger(__name__)

MAX_UPLOAD_MIB = 200  # the same limit as .streamlit/config.toml's server.maxUploadSize
GROUPS = (
    ("serialization", "Serialization", "Same weights, another runtime or file format."),
    ("quantization", "Quantization", "Weights stored and multiplied as 8-bit integers."),
    ("pruning", "Pruning", "Remove or factorize parts of the network (some fine-tune briefly)."),
    ("architecture", "Architecture", "Train a smaller model to imitate the original."),
)
SOURCES = ("Default classifier", "Architecture preset", "Hugging Face Hub", "Local folder")
RANDOM_WEIGHTS = "random weights: accuracy not meaningful"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
# Options the pickers show only under "More options" (still settable; sensible defaults otherwise).
_ADVANCED = {"seed", "importance_batches", "batch_size", "opset", "max_length", "lr", "learning_rate"}


# ---- error guard ---------------------------------------------------------------------------------------


@contextmanager
def page_guard(what: str = "this page") -> Iterator[None]:
    """Turn any unexpected exception into a short st.error (the traceback goes to the log, not the browser).

    Streamlit's own rerun/stop signals derive from BaseException and pass through untouched."""
    from dashboard.entry import through_app

    through_app()  # a page started without app.py (login, read-only page list) goes through it
    try:
        yield
    except Exception as exc:  # the last line of defence for a live demo
        if isinstance(exc, UserError):  # the user's input: its message is the whole story
            log.info("refused while drawing %s: %s", what, exc)
        else:
            log.exception("error while drawing %s", what)
        st.error(f"Something went wrong while showing {what}: {_message(exc)}", icon=":material/error:")


def problem(msg: str, missing: bool = False) -> list[str]:
    """Show a problem next to its control (st.error for bad input, st.info for input not given yet); returns it."""
    if missing:
        st.info(msg, icon=":material/info:")
    else:
        st.error(msg, icon=":material/error:")
    return [msg]


def _message(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if isinstance(exc, UserError) else f"{type(exc).__name__}: {text}"


# ---- model -----------------------------------------------------------------------------------------------


def model_picker() -> tuple[str | None, list[str]]:
    """The model spec for the request, and the problems that block a launch."""
    choices = state.model_choices()
    source = st.radio(
        "Model source",
        SOURCES,
        horizontal=True,
        key="model_source",
        help="Bundled default classifiers work offline. Presets have the shape of a real model but random "
        "weights (size, memory and speed only). A Hub id needs internet access; a local folder must hold a "
        "Hugging Face sequence classifier (config.json + weights + tokenizer).",
    )
    if source == SOURCES[0]:
        options = [s for s in choices if s == "default" or s.startswith("default:")] or ["default"]
        spec = st.selectbox(
            "Classifier",
            options,
            key="model_default",
            format_func=lambda s: "default: the classifier for the chosen dataset" if s == "default" else s,
            help="'default' picks the bundled classifier fine-tuned for the chosen dataset (built once on first "
            "use, a few minutes, then cached).",
        )
        st.caption(choices.get(spec, ""))
        return spec, []
    if source == SOURCES[1]:
        options = [s for s in choices if s.startswith("preset:")]
        spec = st.selectbox(
            "Architecture preset",
            options,
            key="model_preset",
            format_func=lambda s: f"{s.removeprefix('preset:')} ({RANDOM_WEIGHTS})",
            help="Built from the architecture's config with random weights: disk, RAM, load time and latency are "
            "realistic, accuracy is not.",
        )
        st.warning(f"**{RANDOM_WEIGHTS}.** {choices.get(spec, '')}", icon=":material/casino:")
        return spec, []
    if source == SOURCES[2]:
        hub_id = st.text_input(
            "Hugging Face Hub model id",
            key="model_hub",
            placeholder="org/name, e.g. cardiffnlp/twitter-roberta-base-sentiment-latest",
            help="A sequence-classification model on the Hugging Face Hub. Downloaded by the run in the "
            "background (remote code is never run). Needs internet access.",
        ).strip()
        return _check_hub_id(hub_id)
    folder = st.text_input(
        "Local model folder",
        key="model_path",
        placeholder="/path/to/a/saved/model",
        help="A folder written by save_pretrained: config.json, model.safetensors (or pytorch_model.bin) and "
        "the tokenizer files.",
    ).strip()
    from profiling.inputs.model_roots import describe_roots, model_roots

    if model_roots() is not None:  # a shared deployment: say which folders are accepted before any is typed
        st.caption(f"On this server {describe_roots()}.")
    return _check_folder(folder)


def _check_hub_id(hub_id: str) -> tuple[str | None, list[str]]:
    hub_id = hub_id.removeprefix("hub:").removeprefix("https://huggingface.co/").strip("/")
    if not hub_id:
        return None, problem("Enter a Hugging Face Hub model id (org/name).", missing=True)
    if not _HUB_ID.match(hub_id) or "--" in hub_id or ".." in hub_id:
        return None, problem(f"{hub_id!r} is not a valid Hub model id: use the form org/name (letters, digits, - _ .).")
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on") and not _in_hub_cache(hub_id):
        return None, problem(
            f"The Hugging Face Hub is switched off on this machine (HF_HUB_OFFLINE=1) and {hub_id!r} is not in "
            "the local Hugging Face cache. Pick a bundled default classifier, a preset or a local folder."
        )
    return f"hub:{hub_id}", []


def _in_hub_cache(hub_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)
    except Exception:  # noqa: BLE001 - an unusual cache layout: let the run decide
        return False


def _check_folder(folder: str) -> tuple[str | None, list[str]]:
    if not folder:
        return None, problem("Enter the path of a local model folder.", missing=True)
    from profiling.inputs.model_roots import FolderNotAllowed, allowed_folder

    try:  # before anything looks at the folder: a refused path says nothing about what is there
        allowed_folder(folder)
    except FolderNotAllowed as exc:
        text = str(exc)
        return None, problem(f"{text[:1].upper()}{text[1:]}.")
    path = Path(folder).expanduser()
    if not path.is_dir():
        return None, problem(f"No folder at {path}.")
    if not (path / "config.json").is_file():
        return None, problem(f"{path} has no config.json: it is not a saved Hugging Face model folder.")
    if not (path / "artifact.json").is_file():  # pickle weights, custom code: refused before launch (file names only)
        from profiling.inputs.models import ModelError, check_local_folder

        try:
            check_local_folder(path)
        except ModelError as exc:
            return None, problem(str(exc))
    return f"path:{path.resolve()}", []


# ---- dataset ---------------------------------------------------------------------------------------------


def dataset_picker() -> tuple[dict[str, Any] | None, list[str]]:
    """The dataset spec for the request, and the problems that block a launch."""
    bundled = state.bundled_datasets()
    labels = {name: f"Bundled: {name}" for name in bundled}
    options = [*bundled, "upload"]
    choice = st.radio(
        "Labeled dataset",
        options,
        key="dataset_choice",
        horizontal=True,
        format_func=lambda o: "Upload a CSV" if o == "upload" else labels[o],
        help="Evaluation uses a fixed, seeded, stratified test split; training steps (distillation, importance "
        "scores) only see the train split.",
    )
    if choice != "upload":
        st.caption(bundled.get(choice, ""))
        return {"kind": "bundled", "name": choice}, []
    return _upload_picker()


def _upload_picker() -> tuple[dict[str, Any] | None, list[str]]:
    upload = st.file_uploader(
        "CSV file",
        type=["csv", "tsv"],
        key="dataset_upload",
        help=f"A header row, one text column and one label column (names or integers). Up to {MAX_UPLOAD_MIB} MiB. "
        "The file is stored in the data folder and read as plain text.",
    )
    if upload is None:
        return None, problem("Upload a CSV file, or pick a bundled dataset.", missing=True)
    data = upload.getvalue()
    if not data.strip():
        return None, problem(f"{upload.name} is empty: there is nothing to read.")
    if len(data) > MAX_UPLOAD_MIB * 2**20:
        return None, problem(f"{upload.name} is {len(data) / 2**20:.3g} MiB; the limit is {MAX_UPLOAD_MIB:g} MiB.")
    path, digest = save_upload(data, upload.name)
    try:
        columns = state.csv_columns(str(path), digest)
    except ValueError as exc:
        return None, problem(f"Cannot read {upload.name}: {exc}")
    if len(columns) < 2:
        return None, problem(
            f"{upload.name} has {len(columns)} column(s) ({', '.join(map(repr, columns)) or 'none'}); it needs a "
            "text column and a label column (is it comma-, semicolon- or tab-separated with a header row?)."
        )
    c1, c2 = st.columns(2)
    text_col = c1.selectbox(
        "Text column",
        columns,
        index=_guess(columns, ("text", "sentence", "review", "tweet", "content")),
        key=f"csv_text_{digest}",
        help="The column holding the texts to classify.",
    )
    label_col = c2.selectbox(
        "Label column",
        columns,
        index=_guess(columns, ("label", "labels", "category", "class", "sentiment", "target"), fallback=1),
        key=f"csv_label_{digest}",
        help="The column holding each text's class (a name or an integer).",
    )
    if text_col == label_col:
        return None, problem("Choose different columns for the text and the label.")
    try:
        summary = state.csv_summary(str(path), digest, text_col, label_col)
    except ValueError as exc:
        return None, problem(f"{upload.name} cannot be used: {exc}")
    if len(summary["label_names"]) < 2:
        return None, problem(
            f"{upload.name}: the label column {label_col!r} has a single class; it needs at least two."
        )
    st.caption(
        f"{summary['n_train']} train / {summary['n_test']} test rows; classes: "
        f"{', '.join(summary['label_names'][:12])}{' …' if len(summary['label_names']) > 12 else ''}. {summary['note']}"
    )
    return {"kind": "csv", "path": str(path), "text_column": text_col, "label_column": label_col}, []


def save_upload(data: bytes, name: str) -> tuple[Path, str]:
    """Store the uploaded bytes as ``<data>/uploads/<hash>.csv`` (content-addressed; never unpickled)."""
    digest = hashlib.sha256(data).hexdigest()[:16]
    folder = paths.data_dir() / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".tsv" if name.lower().endswith(".tsv") else ".csv"
    path = folder / f"{digest}{suffix}"
    if not path.is_file():
        tmp = path.with_suffix(suffix + ".partial")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path, digest


def _guess(columns: list[str], names: tuple[str, ...], fallback: int = 0) -> int:
    lower = [c.lower() for c in columns]
    for name in names:
        if name in lower:
            return lower.index(name)
    return min(fallback, len(columns) - 1)


# ---- techniques ------------------------------------------------------------------------------------------


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
        opt = next((f for f in dataclasses.fields(cls) if _kind(f) == "bool" and "optim" in f.name), None)
        if opt is not None:  # plain and optimized side by side, so the optimizer's effect shows in the results
            label = cls.label or name
            optimized = label.replace(" (", " optimized (", 1) if " (" in label else f"{label} optimized"
            entries.append(Entry(name, name, label, {opt.name: False}))
            entries.append(Entry(f"{name}-optimized", name, optimized, {opt.name: True}))
        else:
            entries.append(Entry(name, name, cls.label or name))
    return entries


def _kind(f: dataclasses.Field) -> str:
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
        key = _field_key(entry, f)
        if f.name not in kwargs and key in st.session_state:
            kwargs[f.name] = st.session_state[key]
    return make_config(entry.technique, **kwargs)


def _field_key(entry: Entry, f: dataclasses.Field | str) -> str:
    return f"opt_{entry.key}_{f if isinstance(f, str) else f.name}"


def _tick_key(entry: Entry) -> str:
    return f"tick_{entry.key}"


def prefill_technique(technique: str, **options: Any) -> str:
    """Tick ``technique`` on the Run page with these options set (e.g. from the Sensitivity page); returns its label.

    The values are plain session-state keys until the Run page draws its widgets, which then start from them.
    """
    entry = next((e for e in catalog() if e.technique == technique and not any(e.fixed.values())), None)
    if entry is None:
        raise KeyError(f"no technique {technique!r} on the Run page")
    st.session_state[_tick_key(entry)] = True
    for name, value in options.items():
        st.session_state[_field_key(entry, name)] = value
    return entry.label


def _field_widget(entry: Entry, f: dataclasses.Field, disabled: bool = False) -> None:
    """One widget for one config field, from its metadata (help text, range, choices)."""
    meta = f.metadata
    label = meta.get("label") or f.name.replace("_", " ").capitalize()
    helptext = meta.get("help") or f"{f.name} (default {f.default!r})"
    key = _field_key(entry, f)
    kind = _kind(f)
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
    from compression.registry import TechniqueError, check_chain
    from compression.structure import refusal
    from profiling.inputs.spec_structure import spec_meta
    from profiling.jobs.presets import complete_chain, variant_name

    entries = catalog()
    meta = spec_meta(model_spec)
    refused = {e.technique: refusal(e.technique, meta) for e in entries}
    registry = state.technique_registry()
    errors: list[str] = []

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

    cols = st.columns(len(GROUPS))
    for col, (group, title, blurb) in zip(cols, GROUPS, strict=True):
        with col.container(border=True):
            st.markdown(f"**{title}**")
            st.caption(blurb)
            for entry in (e for e in entries if registry[e.technique].config_cls.group == group):
                _entry_controls(entry, refused[entry.technique])
    others = [e for e in entries if registry[e.technique].config_cls.group not in {g[0] for g in GROUPS}]
    for entry in others:
        _entry_controls(entry, refused[entry.technique])

    variants: list[dict[str, Any]] = [{"name": "Original", "chain": []}]
    for entry in entries:
        if not st.session_state.get(_tick_key(entry)):
            continue
        if refused[entry.technique]:
            errors += problem(f"{entry.label}: {refused[entry.technique]}")
            continue
        try:
            chain = complete_chain([entry_config(entry)])
            check_chain("hf", chain)
        except TechniqueError as exc:
            errors += problem(f"{entry.label}: {exc}")
            continue
        variants.append(_variant([c.to_json() for c in chain], variant_name, entry.label if entry.fixed else None))

    chain_variant, chain_error = _chain_builder(entries)
    if chain_error:
        errors += problem(chain_error)
    elif chain_variant is not None:
        variants.append(chain_variant)
    variants.extend(st.session_state.get("extra_variants", []))
    return _dedupe(variants), errors


def _entry_controls(entry: Entry, refused: str | None = None) -> None:
    cls = state.technique_registry()[entry.technique].config_cls
    helptext = (
        cls.help
        + (f"\n\n**Deprecated API:** {cls.deprecated}" if cls.deprecated else "")
        + (f"\n\n**Caveat:** {cls.warning}" if cls.warning else "")
    )
    for f in dataclasses.fields(cls):
        if f.name in entry.fixed and f.metadata.get("help"):
            helptext += f"\n\n**{f.name.replace('_', ' ').capitalize()} = {entry.fixed[f.name]}:** {f.metadata['help']}"
    st.checkbox(entry.label, key=_tick_key(entry), help=helptext)
    if refused:  # the chosen model's architecture rules it out: say so before it is ticked
        st.caption(f":material/block: {refused[0].upper()}{refused[1:]}")
    if cls.deprecated:
        st.badge("deprecated API", icon=":material/warning:", color="orange")
    from dashboard.hardware import technique_advice

    cpu_advice = technique_advice(entry.technique, entry.fixed)
    if cpu_advice:
        st.caption(f":material/memory: {cpu_advice}")
    if not (st.session_state.get(_tick_key(entry)) or entry.key in (st.session_state.get("chain_steps") or [])):
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


def _chain_builder(entries: list[Entry]) -> tuple[dict[str, Any] | None, str | None]:
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
        check_chain("hf", configs)
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
        st.session_state[_tick_key(entry)] = False
    st.session_state["chain_steps"] = []
    st.session_state["extra_variants"] = []
    st.session_state["preset_note"] = ""


def _apply_preset(name: str) -> None:
    """Tick the entries a preset uses (options from the first variant using each), keep the rest as extra variants.

    Runs as a button callback, before the widgets are drawn, so it may set their values."""
    from compression.registry import config_from_json
    from profiling.jobs.presets import complete_chain

    entries = catalog()
    known = set(state.technique_registry())
    _clear_techniques()
    claimed: set[str] = set()
    extras, unavailable = [], []
    for v in state.presets().get(name, []):
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
        st.session_state[_tick_key(entry)] = True
        cfg = config_from_json(chain[-1])
        for f in dataclasses.fields(cfg):
            if f.name not in entry.fixed:
                st.session_state[_field_key(entry, f)] = getattr(cfg, f.name)
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


# ---- measurement settings -------------------------------------------------------------------------------


def settings_picker() -> dict[str, int]:
    """Threads, batch size, repeats, evaluation sample size; warm-up and seed under "more" (help text on each)."""
    d, limits, helps = state.default_settings(), state.setting_limits(), state.setting_help()
    cores = os.cpu_count() or 1
    labels = {
        "threads": "Threads",
        "batch_size": "Batch size",
        "repeats": "Repeats",
        "eval_size": "Evaluation sample",
        "warmup": "Warm-up calls",
        "seed": "Seed",
        "ci_target_pct": "Latency interval target (\u00b1 %)",
        "latency_budget_s": "Extra-repeat budget (s)",
    }
    extra_help = {
        "threads": f" This machine has {cores} core(s).",
        "eval_size": " Capped at the size of the test split.",
    }
    out: dict[str, int] = {}

    def number(col: Any, key: str) -> None:
        lo, hi = limits.get(key, (0, 2**31 - 1))
        if key == "threads":
            hi = max(1, min(hi, cores))
        value = min(max(int(d[key]), lo), hi)
        out[key] = int(
            col.number_input(
                labels[key],
                min_value=lo,
                max_value=hi,
                value=value,
                step=1,
                key=f"set_{key}",
                help=helps.get(key, labels[key]) + extra_help.get(key, ""),
            )
        )

    cols = st.columns(4)
    for col, key in zip(cols, ("threads", "batch_size", "repeats", "eval_size"), strict=True):
        number(col, key)
    with st.expander("More measurement settings"):
        w1, w2 = st.columns(2)
        number(w1, "warmup")
        number(w2, "seed")
        if "ci_target_pct" in d:
            a1, a2 = st.columns(2)
            number(a1, "ci_target_pct")
            number(a2, "latency_budget_s")
    return out


# ---- run display (shared by the Run and History pages) ------------------------------------------------


def memory_figure(timelines: dict[str, dict], running: str | None) -> Any:
    """The live memory timeline (H5b's figure: the running variant bold over the finished ones, phases marked)."""
    from profiling.report.figures import memory_timeline_figure

    return memory_timeline_figure(timelines, running)


LIVE_FIGURES = (
    "peak_rss_mib",
    "disk_mib",
    "load_time_s",
    "latency_b1_median_ms",
    "latency_bN_median_ms",
    "throughput_per_s",
    "accuracy",
    "agreement",
)


def results_table(
    store: Any, run_id: str, variants: list[dict] | None = None, compact: bool = True
) -> tuple[Any, dict[str, Any]]:
    """The run's results table with the Results page's headers (compact: the headline figures only), and the
    st.dataframe column formats for it (numbers rounded, blank until measured)."""
    from profiling.report import frames as rd
    df = rd.metrics_frame(variants if variants is not None else store.variants(run_id))
    heads = rd.display_columns(df)
    keys = [k for k in ("variant", "status", *(LIVE_FIGURES if compact else rd.FIGURES)) if k in df.columns]
    fmt: dict[str, Any] = {heads["variant"]: st.column_config.TextColumn(heads["variant"], pinned=True)}
    for key in keys:
        if key in ("accuracy", "macro_f1", "agreement"):
            fmt[heads[key]] = st.column_config.NumberColumn(heads[key], format="%.3f")
        elif key in rd.FIGURES:
            fmt[heads[key]] = st.column_config.NumberColumn(
                heads[key], format="%.2f" if key == "load_time_s" else "%.1f"
            )
    return df[keys].rename(columns=heads).reset_index(drop=True), fmt


def show_results_table(store: Any, run_id: str, variants: list[dict] | None = None, compact: bool = True) -> None:
    table, fmt = results_table(store, run_id, variants, compact)
    st.dataframe(table, hide_index=True, column_config=fmt)

"""Run-page pickers for the model, the dataset and the measurement settings (each returns its spec and problems)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import streamlit as st

from dashboard import build_status, state
from dashboard.guard import problem
from dashboard.upload import upload_picker
from profiling.inputs.models import is_hub_id

SOURCES = ("Default classifier", "Architecture preset", "Hugging Face Hub", "Local folder")
RANDOM_WEIGHTS = "random weights: accuracy not meaningful"

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
        from profiling.inputs.packaged_encoders import ENCODERS

        packaged = [s for s in choices if s.partition(":")[0] in ENCODERS]
        options = [s for s in choices if s == "default" or s.startswith("default:")] or ["default"]
        options += packaged
        build = build_status.status()
        spec = st.selectbox(
            "Classifier",
            options,
            key="model_default",
            format_func=lambda s: _default_label(s, build),
            help="'default' picks the bundled classifier fine-tuned for the chosen dataset (built once, then "
            "cached: `make run` builds both in the background while the page is up; a run on one not built yet "
            "builds it first).",
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
        "the tokenizer files; or an ONNX classifier: model.onnx with its tokenizer files and config.json (as "
        "optimum-cli export onnx writes), or a folder this tool's onnx technique wrote.",
    ).strip()
    from profiling.inputs.model_roots import describe_roots, model_roots

    if model_roots() is not None:  # a shared deployment: say which folders are accepted before any is typed
        st.caption(f"On this server {describe_roots()}.")
    return _check_folder(folder)


def _default_label(spec: str, build: dict[str, Any]) -> str:
    """The classifier's option text, marked while it is not built yet."""
    if spec == "default":
        return "default: the classifier for the chosen dataset"
    if not spec.startswith("default:"):  # a classifier from a packaged encoder: built by the first run using it
        from profiling.inputs.packaged_encoders import ENCODERS, classifier_dir

        name, _, dataset_name = spec.partition(":")
        built = name in ENCODERS and (classifier_dir(ENCODERS[name], dataset_name) / "artifact.json").is_file()
        return spec if built else f"{spec} (built by the first run that uses it)"
    ready = (build.get("ready") or {}).get(spec.removeprefix("default:"))
    if ready is None or ready.get("model"):
        return spec
    return f"{spec} (being built in the background)" if build.get("state") == "running" else f"{spec} (not built yet)"


def default_classifier_problem(model: str | None, dataset: dict[str, Any] | None) -> list[str]:
    """A default classifier that is still being built blocks the launch with a clear message (not a failed run);
    one that is not built and not being built is built by the run itself, which is said here."""
    if not model or not (model == "default" or model.startswith("default:")):
        return []
    if model == "default":
        if not dataset or dataset.get("kind") != "bundled":
            return []  # a CSV: the run fine-tunes a classifier on its train split
        name = str(dataset.get("name"))
    else:
        name = model.removeprefix("default:")
    build = build_status.status()
    ready = (build.get("ready") or {}).get(name)
    if ready is None or ready.get("model"):
        return []
    if build.get("state") == "running":
        frac = min(max(float(build.get("fraction") or 0.0), 0.0), 1.0)
        return problem(
            f"The default classifier for {name} is still being built in the background ({frac:.0%} of the whole "
            "build done, see the box at the top). Launch becomes available when it is ready; meanwhile pick an "
            "architecture preset, or look at History or the Demo page.",
            missing=True,
        )
    st.caption(f"The default classifier for {name} is not built yet: this run builds it first (once, then cached).")
    return []


def _check_hub_id(hub_id: str) -> tuple[str | None, list[str]]:
    hub_id = hub_id.removeprefix("hub:").removeprefix("https://huggingface.co/").strip("/")
    if not hub_id:
        return None, problem("Enter a Hugging Face Hub model id (org/name).", missing=True)
    if not is_hub_id(hub_id):
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
    from profiling.inputs.models import ModelError, encoder_folder
    from profiling.inputs.onnx_folder import is_onnx_folder

    try:
        inner = encoder_folder(path)  # a sentence-transformers folder: its transformer may sit in a subfolder
    except ModelError as exc:
        return None, problem(str(exc))
    onnx_graph = is_onnx_folder(path)
    if not onnx_graph and not (inner / "config.json").is_file():
        return None, problem(f"{path} has no config.json: it is not a saved Hugging Face model folder.")
    if onnx_graph:  # checked now (inputs, labels, external data), and the techniques that apply said up front
        st.caption(":material/info: An ONNX graph: it is profiled with ONNX Runtime, and only the techniques that "
                   "take an ONNX graph apply (the others say why below).")
    if onnx_graph or not (path / "artifact.json").is_file():  # pickle weights, custom code: refused before launch
        from profiling.inputs.models import check_local_folder

        try:
            check_local_folder(inner)
        except ModelError as exc:
            return None, problem(str(exc))
    return f"path:{path.resolve()}", []


def finetune_picker(model: str | None, dataset: dict[str, Any] | None) -> str | None:
    """For a local base encoder (no classification head): how to fine-tune it into a classifier first, each mode
    with a rough time estimate; None for every other model (nothing to choose)."""
    if not model or not model.startswith("path:"):
        return None
    from profiling.inputs import finetune
    from profiling.inputs.models import ModelError, encoder_folder

    try:
        config = json.loads((encoder_folder(Path(model.removeprefix("path:"))) / "config.json").read_text())
    except (ModelError, OSError, ValueError):
        return None  # the folder check above has said what is wrong
    archs = [str(a) for a in config.get("architectures") or []]
    if any(a.endswith("ForSequenceClassification") for a in archs) or not isinstance(config, dict):
        return None
    n_train = _train_size(dataset)
    estimates = finetune.estimate_finetune_seconds(config, n_train)

    def label(mode: str) -> str:
        text = finetune.FINETUNE_MODES[mode]["label"]
        secs = estimates.get(mode)
        return f"{text}, about {finetune.duration_text(secs)}" if secs else text

    st.info(
        f"This folder holds a base encoder ({', '.join(archs) or config.get('model_type', '?')}) with no "
        "classification head. The run first fine-tunes it on the chosen dataset's train split"
        + (f" ({n_train:,} texts)" if n_train else "")
        + " and caches the classifier; it is then compressed like any other.",
        icon=":material/school:",
    )
    mode = st.radio(
        "Fine-tuning", list(finetune.FINETUNE_MODES), key="finetune_mode", format_func=label, horizontal=True,
        help="Full: every weight but the word embeddings trains (the most accurate). Head only: the encoder is "
        "frozen and only the new head trains (each step is a forward pass: much faster, usually less accurate). "
        + finetune.ESTIMATE_NOTE,
    )
    return str(mode)


def _train_size(dataset: dict[str, Any] | None) -> int | None:
    """The number of train texts the fine-tune would use, when it is cheap to know (a bundled dataset)."""
    if not dataset or dataset.get("kind") != "bundled":
        return None
    from profiling.inputs import finetune
    from profiling.inputs.datasets import DatasetError, load_dataset

    try:
        data = load_dataset(dataset)
    except DatasetError:
        return None
    cap = finetune.base_encoder_recipe(data).get("max_train")
    return min(len(data.train_texts), cap) if cap else len(data.train_texts)


# ---- dataset ---------------------------------------------------------------------------------------------


def dataset_picker() -> tuple[dict[str, Any] | None, list[str]]:
    """The dataset spec for the request, and the problems that block a launch."""
    bundled = state.bundled_datasets()
    build = build_status.status()
    labels = {name: f"Bundled: {name}" for name in bundled}
    for name, ready in (build.get("ready") or {}).items():
        if name in labels and not ready.get("dataset"):
            labels[name] += " (downloading)" if build.get("state") == "running" else " (downloaded on first use)"
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
    return upload_picker()


# ---- measurement settings -------------------------------------------------------------------------------


PROTOCOL_LABELS = {"thorough": "Thorough", "quick": "Quick"}


def protocol_picker() -> dict[str, int]:
    """The latency protocol (profiling.settings.PROTOCOLS): its values of the settings that decide how long each
    latency figure is timed. Choosing one resets those inputs to its values; they stay editable."""
    from profiling.settings import PROTOCOL_META, PROTOCOLS, Settings

    names = [n for n in PROTOCOL_LABELS if n in PROTOCOLS] + sorted(set(PROTOCOLS) - set(PROTOCOL_LABELS))
    labels = Settings.labels()

    forms = {"repeats": "at least {} repeats", "ci_target_pct": "interval target \u00b1 {} %",
             "latency_budget_s": "extra-repeat budget {} s"}

    def values(name: str) -> str:
        return ", ".join(forms.get(k, labels[k] + " {}").format(v) for k, v in PROTOCOLS[name].items())

    def reset_inputs() -> None:
        """The chosen protocol's values replace what the inputs hold. Set, not cleared: a browser sends every
        input's current value with the click, so a cleared input would come back with its old value."""
        chosen = PROTOCOLS.get(st.session_state.get("latency_protocol"), {})
        defaults = state.default_settings()
        for key in {k for p in PROTOCOLS.values() for k in p}:
            st.session_state[f"set_{key}"] = chosen.get(key, defaults.get(key))

    choice = st.radio(
        PROTOCOL_META["label"],
        names,
        index=names.index(PROTOCOL_META["default"]),
        key="latency_protocol",
        horizontal=True,
        format_func=lambda n: PROTOCOL_LABELS.get(n, n),
        on_change=reset_inputs,
        help="How long each latency figure is timed: at least the minimum repeats, then more until the median's "
        "95 % bootstrap interval is within the target, or until the variant's extra-repeat budget is spent. "
        + " ".join(f"{PROTOCOL_LABELS.get(n, n)}: {values(n)}." for n in names)
        + " Quick gives every variant a first figure sooner, with wider intervals. Choosing one sets those inputs "
        "below; they stay editable.",
    )
    return dict(PROTOCOLS[choice])


def settings_picker() -> dict[str, int]:
    """Threads, batch size, repeats, evaluation sample size; warm-up and seed under "more" (help text on each)."""
    d, limits, helps = state.default_settings(), state.setting_limits(), state.setting_help()
    d = {**d, **protocol_picker()}  # the latency protocol's repeats, interval target and budget
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

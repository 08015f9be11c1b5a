"""Resolve a model spec (offline default, random-weight preset, local folder, Hub id) to a base hf artifact."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from compression.artifact import Artifact
from compression.meta_model import meta_parameters
from profiling import paths
from profiling.inputs.datasets import BUNDLED, LabeledData
from profiling.inputs.model_files import (
    DEFAULT_MAX_LENGTH,
    BaseModelError,
    build_cached,
    minilm_dir,
    model_meta,
    write_tokenizer,
)

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]

RAM_FRACTION_LIMIT = 0.4  # refuse a model whose fp32 weights exceed this share of the available RAM
HUB_PROBE_TIMEOUT_S = 3.0
RANDOM_NOTE = "random weights: accuracy not meaningful"
HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def is_hub_id(text: str) -> bool:
    """Whether ``text`` has the form of a Hub model id (``name`` or ``org/name``; no ``..`` or ``--``, which the Hub
    refuses and which could walk out of the cache folder)."""
    return bool(HUB_ID_RE.match(text)) and ".." not in text and "--" not in text
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
CONVERT_HINT = (
    "AutoModelForSequenceClassification.from_pretrained(folder).save_pretrained(folder, safe_serialization=True)"
)

_ROBERTA = {
    "hidden_size": 768,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "vocab_size": 50265,
    "max_position_embeddings": 514,
    "type_vocab_size": 1,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "layer_norm_eps": 1e-5,
}
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "roberta-base": ("roberta", {**_ROBERTA, "num_hidden_layers": 12}),
    "distilroberta-base": ("roberta", {**_ROBERTA, "num_hidden_layers": 6}),
    "bert-base-uncased": (
        "bert",
        {
            "hidden_size": 768,
            "num_attention_heads": 12,
            "intermediate_size": 3072,
            "vocab_size": 30522,
            "max_position_embeddings": 512,
            "type_vocab_size": 2,
            "pad_token_id": 0,
            "num_hidden_layers": 12,
        },
    ),
    # The big presets: real shapes, built offline from transformers' config classes (random weights). Each variant's
    # peak RAM is estimated before it is built (compression.ram_estimate) and refused when it would not fit.
    "bert-large-uncased": (
        "bert",
        {
            "hidden_size": 1024,
            "num_attention_heads": 16,
            "intermediate_size": 4096,
            "vocab_size": 30522,
            "max_position_embeddings": 512,
            "type_vocab_size": 2,
            "pad_token_id": 0,
            "num_hidden_layers": 24,
        },
    ),
    "deberta-v3-base": (  # microsoft/deberta-v3-base's config.json (DeBERTa-v3 uses the deberta-v2 classes)
        "deberta-v2",
        {
            "hidden_size": 768,
            "num_attention_heads": 12,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "vocab_size": 128100,
            "max_position_embeddings": 512,
            "type_vocab_size": 0,
            "relative_attention": True,
            "max_relative_positions": -1,
            "position_buckets": 256,
            "norm_rel_ebd": "layer_norm",
            "share_att_key": True,
            "pos_att_type": ["p2c", "c2p"],
            "position_biased_input": False,
            "layer_norm_eps": 1e-7,
            "hidden_act": "gelu",
            "pooler_hidden_size": 768,
            "pooler_dropout": 0,
            "pooler_hidden_act": "gelu",
            "pad_token_id": 0,
        },
    ),
}

MODEL_CHOICES: dict[str, str] = {
    "default": "MiniLM-L6 fine-tuned on the chosen dataset (offline; bundled datasets: built once and cached; "
    "a CSV dataset: fine-tuned on its train split on first use, a few minutes)",
    "default:movie-reviews": "MiniLM-L6 fine-tuned on the movie reviews (rotten/fresh), ~0.8 test accuracy",
    "default:tweets": "MiniLM-L6 fine-tuned on the tweets (negative/neutral/positive)",
    "preset:roberta-base": f"RoBERTa-base shape (12 layers, 768 hidden, 125M params), {RANDOM_NOTE}",
    "preset:distilroberta-base": f"DistilRoBERTa-base shape (6 layers, 768 hidden, 82M params), {RANDOM_NOTE}",
    "preset:bert-base-uncased": f"BERT-base-uncased shape (12 layers, 768 hidden, 110M params), {RANDOM_NOTE}",
    "preset:bert-large-uncased": f"BERT-large-uncased shape (24 layers, 1024 hidden, 335M params), {RANDOM_NOTE}",
    "preset:deberta-v3-base": f"DeBERTa-v3-base shape (12 layers, 768 hidden, 128k vocabulary, 184M params), "
    f"{RANDOM_NOTE}",
}


def _packaged_encoders() -> tuple[str, ...]:
    from profiling.inputs.packaged_encoders import ENCODERS

    return tuple(ENCODERS)


def _packaged_choices() -> dict[str, str]:
    from profiling.inputs.packaged_encoders import choices

    return choices()


MODEL_CHOICES.update(_packaged_choices())


class ModelError(BaseModelError):
    """A model spec that cannot be resolved; the message is shown to the user as is."""


def resolve_model(
    spec: str,
    dataset: LabeledData | None = None,
    progress: ProgressFn | None = None,
    finetune: str | None = None,
) -> Artifact:
    """The base hf artifact for ``spec`` (see MODEL_CHOICES; also ``path:/dir``, ``hub:org/name`` or ``org/name``).

    With a dataset, the model's number of labels must match the dataset's number of classes. A local folder or Hub
    id holding a base encoder (no classification head, e.g. a sentence-transformers folder) is fine-tuned on the
    dataset's train split first (``finetune``: "full" or "head", see finetune.FINETUNE_MODES; cached).
    """
    spec = (spec or "").strip()
    base_encoder = BaseEncoderUse(dataset, finetune or "full", progress)
    try:
        if spec == "default":
            artifact = _default(dataset, progress)
        elif spec.startswith("default:"):
            artifact = _default_named(spec.removeprefix("default:"), progress)
        elif spec.partition(":")[0] in _packaged_encoders():
            from profiling.inputs import packaged_encoders

            name, _, dataset_name = spec.partition(":")
            artifact = packaged_encoders.build_classifier(packaged_encoders.ENCODERS[name], dataset_name, progress)
        elif spec.startswith("preset:"):
            artifact = build_preset(spec.removeprefix("preset:"), dataset, progress)
        elif spec.startswith("path:"):
            artifact = from_local_folder(Path(spec.removeprefix("path:").strip()).expanduser(), progress, base_encoder)
        elif spec.startswith(("/", "./", "../", "~")):
            artifact = from_local_folder(Path(spec).expanduser(), progress, base_encoder)
        elif spec.startswith("hub:"):
            artifact = from_hub(spec.removeprefix("hub:").strip(), progress, base_encoder)
        elif HUB_ID_RE.match(spec) and ":" not in spec:
            artifact = from_hub(spec, progress, base_encoder)
        else:
            raise ModelError(
                f"unknown model {spec!r}: use one of {', '.join(MODEL_CHOICES)}, "
                "path:/a/folder or a Hub id like org/name"
            )
    except BaseModelError as exc:
        if isinstance(exc, ModelError):
            raise
        raise ModelError(str(exc)) from exc
    if dataset is not None:
        _check_labels(spec, artifact, dataset)
    return artifact


# ---------------------------------------------------------------- the offline defaults


def _default(dataset: LabeledData | None, progress: ProgressFn | None) -> Artifact:
    from profiling.inputs import finetune
    if dataset is None or dataset.name in BUNDLED:
        return finetune.build_default_classifier(dataset.name if dataset else "movie-reviews", progress)
    digest = hashlib.sha256(repr((dataset.label_names, dataset.train_texts, dataset.train_labels)).encode())
    return finetune.build_csv_classifier(dataset, digest.hexdigest()[:12], progress)


def _default_named(name: str, progress: ProgressFn | None) -> Artifact:
    from profiling.inputs import finetune
    if name not in BUNDLED:
        raise ModelError(f"no default classifier {name!r}; choose default:{' or default:'.join(BUNDLED)}")
    return finetune.build_default_classifier(name, progress)


# ---------------------------------------------------------------- random-weight presets


def build_preset(
    name: str,
    dataset: LabeledData | None = None,
    progress: ProgressFn | None = None,
    overrides: dict[str, Any] | None = None,
) -> Artifact:
    """An architecture preset with seeded random weights (for size/latency/memory only), cached per label set.

    ``overrides`` changes config fields (tests use it for a tiny model of the same family).
    """
    if name not in PRESETS:
        raise ModelError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    label_names = list(dataset.label_names) if dataset else ["LABEL_0", "LABEL_1"]
    key = hashlib.sha256(repr((label_names, sorted((overrides or {}).items()))).encode()).hexdigest()[:10]
    target = paths.models_dir() / f"preset-{name}-{key}"
    report = progress or (lambda frac, msg: None)

    def build(out_dir: Path) -> dict[str, Any]:
        import torch
        from transformers import AutoModelForSequenceClassification

        from compression import ram_estimate

        config = preset_config(name, label_names, overrides)
        params = meta_parameters(config)
        refused = ram_estimate.refusal(params, ["build-preset"], None, ram_estimate.available_bytes())
        if refused:
            raise ModelError(f"the {name} preset: {refused}")
        model_type = config.model_type
        if model_type == "roberta":
            report(0.05, "training a byte-level BPE tokenizer on the movie reviews")
            tok_dir = roberta_tokenizer_dir()
            write_tokenizer(tok_dir / "tokenizer.json", out_dir, DEFAULT_MAX_LENGTH, aux_from=tok_dir)
        else:
            write_tokenizer(minilm_dir() / "tokenizer.json", out_dir, DEFAULT_MAX_LENGTH)
        report(0.3, f"building {name} with random weights ({params / 1e6:.0f}M parameters)")
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_config(config).eval()
        report(0.7, f"saving {name}")
        model.save_pretrained(out_dir)
        return model_meta(
            model,
            label_names=label_names,
            base=f"{name} shape (random weights)",
            random_weights=True,
            notes=[RANDOM_NOTE, f"{name}-shaped config, seeded random init"],
            preset=name,
        )

    artifact = build_cached(target, build)
    report(1.0, f"{name} ready")
    return artifact


def preset_config(name: str, label_names: list[str] | None = None, overrides: dict[str, Any] | None = None) -> Any:
    """The preset's transformers config (its real shape; ``overrides`` replace fields), with ``label_names``."""
    from transformers import AutoConfig

    if name not in PRESETS:
        raise ModelError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    model_type, fields = PRESETS[name]
    label_names = list(label_names or ["LABEL_0", "LABEL_1"])
    return AutoConfig.for_model(
        model_type,
        **{**fields, **(overrides or {})},
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={n: i for i, n in enumerate(label_names)},
    )


@functools.lru_cache(maxsize=8)
def preset_parameters(name: str, num_labels: int = 2) -> int:
    """The preset's parameter count, from its config on the meta device (no weights are built)."""
    return meta_parameters(preset_config(name, [f"LABEL_{i}" for i in range(num_labels)]))


def roberta_tokenizer_dir() -> Path:
    """A RoBERTa-style byte-level BPE tokenizer trained on the movie reviews (ids < 50265), built once."""
    target = paths.models_dir() / "tokenizer-roberta-bpe"
    if (target / "tokenizer.json").is_file():
        return target
    from profiling.filelock import file_lock
    from profiling.inputs.datasets import DatasetError, load_dataset

    with file_lock(paths.models_dir() / ".tokenizer-roberta-bpe.lock"):
        if (target / "tokenizer.json").is_file():
            return target
        try:
            data = load_dataset({"kind": "bundled", "name": "movie-reviews"})
        except DatasetError as exc:
            raise ModelError(f"the RoBERTa presets train their tokenizer on the bundled movie reviews: {exc}") from exc
        tmp = paths.models_dir() / ".tmp-tokenizer-roberta-bpe"
        tmp.mkdir(exist_ok=True)
        train_roberta_tokenizer(data.train_texts + data.test_texts, tmp)
        tmp.rename(target)
    return target


def train_roberta_tokenizer(texts: list[str], out_dir: Path, vocab_size: int = 50265) -> None:
    """Train a byte-level BPE with RoBERTa's special tokens (<s>=0, <pad>=1, </s>=2, <unk>=3, <mask>=4)."""
    import json

    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        show_progress=False,
        special_tokens=[*special[:4], AddedToken("<mask>", lstrip=True, special=True)],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", 2), ("<s>", 0), trim_offsets=True, add_prefix_space=False
    )
    assert [tok.token_to_id(s) for s in special] == [0, 1, 2, 3, 4] and tok.get_vocab_size() <= vocab_size
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_dir / "tokenizer.json"))
    config = {
        "tokenizer_class": "RobertaTokenizer",
        "model_max_length": 512,
        "add_prefix_space": False,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "sep_token": "</s>",
        "cls_token": "<s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "mask_token": "<mask>",
        "errors": "replace",
        "trim_offsets": True,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


# ---------------------------------------------------------------- local folders and the Hub


def check_local_folder(path: Path) -> None:
    """Refuse a local folder that cannot be imported safely, from its file names and config.json alone (no torch).

    Weights must be safetensors: pickle checkpoints (pytorch_model.bin, *.pt, *.ckpt) are refused because
    unpickling can run code; so is a config whose auto_map names custom code. A folder outside the roots that
    ``$COMPRESSION_MODEL_ROOTS`` allows (profiling.inputs.model_roots) is refused before anything in it is looked at."""
    from profiling.inputs.model_roots import FolderNotAllowed, allowed_folder, check_files

    try:
        path = allowed_folder(path)
    except FolderNotAllowed as exc:
        raise ModelError(str(exc)) from None
    if not path.exists():
        raise ModelError(f"no such folder: {path}")
    if not path.is_dir():
        raise ModelError(f"{path} is a file; give the folder that holds config.json and the weights")
    from profiling.inputs.onnx_folder import check_onnx_folder, is_onnx_folder

    if is_onnx_folder(path):  # an ONNX classifier (Optimum's export or this tool's onnx artifact)
        try:
            check_files(path)
        except FolderNotAllowed as exc:
            raise ModelError(str(exc)) from None
        try:
            check_onnx_folder(path)
        except BaseModelError as exc:
            raise ModelError(str(exc)) from None
        return
    if not (path / "config.json").is_file():
        raise ModelError(f"{path} is not a Hugging Face model folder (no config.json)")
    try:
        check_files(path)
    except FolderNotAllowed as exc:
        raise ModelError(str(exc)) from None
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"{path}/config.json cannot be read as JSON: {exc}") from None
    if not isinstance(config, dict):
        raise ModelError(f"{path}/config.json is not a JSON object")
    if config.get("auto_map"):
        names = ", ".join(sorted(map(str, config["auto_map"]))) if isinstance(config["auto_map"], dict) else "?"
        raise ModelError(
            f"{path}/config.json names custom code from the model's author (auto_map: {names}), which this tool "
            "never runs; pick a model built into transformers"
        )
    files = [p for p in path.iterdir() if p.is_file()]
    safe = [p for p in files if p.suffix == ".safetensors"]
    pickles = sorted(p.name for p in files if p.suffix in PICKLE_SUFFIXES)
    if not safe and pickles:
        raise ModelError(
            f"{path} holds pickle weights ({', '.join(pickles[:3])}{' …' if len(pickles) > 3 else ''}), which are "
            "refused because unpickling a file can run arbitrary code. Convert them to safetensors in an "
            f"environment you trust: {CONVERT_HINT}"
        )
    if not safe:
        raise ModelError(f"{path} is not a Hugging Face model folder: no weights (model.safetensors)")
    for weights in safe:
        problem = safetensors_problem(weights)
        if problem:
            raise ModelError(
                f"cannot load local folder {path}: its weights file (*.safetensors) is damaged or incomplete "
                f"({weights.name}: {problem}); download or save the model again"
            )


MAX_SAFETENSORS_HEADER = 100 * 2**20  # safetensors' own limit on the JSON header


def safetensors_problem(path: Path) -> str | None:
    """What is wrong with a safetensors file, read from its header alone (8 bytes of length, then that much JSON
    naming each tensor's byte range), or None: a damaged or cut-off download is refused before a run is created,
    without loading torch or the weights."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return f"{size} bytes, shorter than a safetensors header"
            length = int.from_bytes(head, "little")
            if length == 0 or length > MAX_SAFETENSORS_HEADER or 8 + length > size:
                return f"its header claims {length:,} bytes of a {size:,}-byte file"
            header = json.loads(fh.read(length).decode("utf-8"))
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    except (UnicodeDecodeError, ValueError):
        return "its header is not JSON"
    if not isinstance(header, dict):
        return "its header is not a JSON object"
    data = size - 8 - length
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            return f"tensor {name!r} has no byte range"
        if not 0 <= offsets[0] <= offsets[1] <= data:
            return f"tensor {name!r} ends at byte {offsets[1]:,} of {data:,} data bytes: the file is cut short"
    return None


class BaseEncoderUse:
    """What to do with a base encoder (a model with no classification head): the dataset to fine-tune it on and
    the mode ("full" or "head"); without a dataset it is refused with the way forward."""

    def __init__(self, dataset: LabeledData | None, mode: str, progress: ProgressFn | None) -> None:
        from profiling.inputs.finetune import FINETUNE_MODES

        if mode not in FINETUNE_MODES:
            raise ModelError(f"unknown fine-tuning mode {mode!r}: choose one of {', '.join(FINETUNE_MODES)}")
        self.dataset, self.mode, self.progress = dataset, mode, progress


def encoder_folder(path: Path) -> Path:
    """The folder holding the transformer of a sentence-transformers folder (its modules.json names it: often the
    folder itself, in older layouts a subfolder such as 0_Transformer); any other folder is returned as is."""
    modules = path / "modules.json"
    if not modules.is_file():
        return path
    try:
        entries = json.loads(modules.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"{modules} cannot be read as JSON: {exc}") from None
    transformers_ = [
        e for e in entries if isinstance(e, dict) and str(e.get("type", "")).endswith("models.Transformer")
    ] if isinstance(entries, list) else []
    if not transformers_:
        raise ModelError(f"{modules} names no sentence_transformers Transformer module: no encoder to load")
    sub = str(transformers_[0].get("path") or "")
    inner = (path / sub).resolve()
    if inner != path.resolve() and path.resolve() not in inner.parents:
        raise ModelError(f"{modules} points outside its folder ({sub!r}); refused")
    return inner


def from_local_folder(
    path: Path, progress: ProgressFn | None = None, base_encoder: BaseEncoderUse | None = None
) -> Artifact:
    """Copy a local Hugging Face sequence-classifier folder into a base artifact (checked first); a base encoder
    folder (a sentence-transformers folder among them) is fine-tuned into one (see BaseEncoderUse); a folder holding
    ``model.onnx`` and no safetensors becomes an artifact of format "onnx" (profiling.inputs.onnx_folder)."""
    from profiling.inputs.model_roots import FolderNotAllowed, allowed_folder

    try:  # the allowed roots are checked on the folder given, before its modules.json is read
        path = allowed_folder(path.expanduser())
    except FolderNotAllowed as exc:
        raise ModelError(str(exc)) from None
    if path.is_dir():
        path = encoder_folder(path.resolve())
    check_local_folder(path)
    path = path.expanduser().resolve()  # load what was checked: the resolved folder under an allowed root
    from profiling.inputs.onnx_folder import import_onnx_folder, is_onnx_folder

    if is_onnx_folder(path):
        return import_onnx_folder(path, progress)
    stamp = [(p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(path.iterdir()) if p.is_file()]
    key = hashlib.sha256(repr((str(path.resolve()), stamp)).encode()).hexdigest()[:12]
    target = paths.models_dir() / f"local-{_slug(path.resolve().name)}-{key}"
    return _import_pretrained(
        str(path), target, f"local folder {path}", local_only=True, progress=progress, base_encoder=base_encoder
    )


def from_hub(repo_id: str, progress: ProgressFn | None = None, base_encoder: BaseEncoderUse | None = None) -> Artifact:
    """Fetch a Hub sequence classifier with the real ``from_pretrained`` path (cached after the first fetch); a
    base encoder is fine-tuned into one (see BaseEncoderUse)."""
    if not HUB_ID_RE.match(repo_id):
        raise ModelError(f"{repo_id!r} is not a valid Hugging Face Hub model id (expected org/name)")
    target = paths.models_dir() / f"hub-{_slug(repo_id)}"
    if (target / "artifact.json").is_file():
        return Artifact.load(target)
    local_only = _hub_offline()
    if not local_only and not _hub_reachable():
        local_only = True  # not reachable: a copy in the local HF cache may still work; else fail fast below
    return _import_pretrained(
        repo_id, target, repo_id, local_only=local_only, progress=progress, hub=True, base_encoder=base_encoder
    )


def _import_pretrained(
    source: str,
    target: Path,
    what: str,
    *,
    local_only: bool,
    progress: ProgressFn | None,
    hub: bool = False,
    base_encoder: BaseEncoderUse | None = None,
) -> Artifact:
    if (target / "artifact.json").is_file():
        return Artifact.load(target)
    report = progress or (lambda frac, msg: None)
    report(0.0, f"reading the config of {what}")
    config = _load_config(source, what, local_only, hub)
    if is_base_encoder(config):
        _check_ram(config, what)
        return _finetuned_base_encoder(source, target, what, config, local_only, hub, base_encoder)
    _check_classifier(config, what)
    params = _check_ram(config, what)

    def build(out_dir: Path) -> dict[str, Any]:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        report(0.2, f"loading {what} ({params / 1e6:.0f}M parameters)")
        try:
            # A local folder loads safetensors only (checked above): torch.load never sees a pickle from it.
            safe = {} if hub else {"use_safetensors": True}
            model, info = AutoModelForSequenceClassification.from_pretrained(
                source, dtype=torch.float32, local_files_only=local_only, output_loading_info=True, **safe
            )
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
        except Exception as exc:
            raise _load_error(exc, what, hub) from exc
        if not getattr(tokenizer, "is_fast", False):
            raise ModelError(
                f"{what} has only a slow (Python) tokenizer; a fast tokenizer (tokenizer.json) is "
                "needed so every variant can be run without transformers"
            )
        report(0.7, f"saving {what}")
        model.eval().save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
        if not (out_dir / "tokenizer.json").is_file():
            raise ModelError(f"{what}: its tokenizer could not be saved as tokenizer.json")
        write_tokenizer(out_dir / "tokenizer.json", out_dir, DEFAULT_MAX_LENGTH)
        notes = [f"from {'the Hugging Face Hub: ' + source if hub else what}"]
        missing = [k for k in info.get("missing_keys", []) if k]
        if missing:
            notes.append(f"{len(missing)} weights were missing and randomly initialised (e.g. {min(missing)})")
        id2label = model.config.id2label or {}
        names = [str(id2label.get(i, f"LABEL_{i}")) for i in range(model.config.num_labels)]
        return model_meta(
            model,
            label_names=names,
            base=source if hub else path_name(source),
            random_weights=False,
            notes=notes,
            source=("hub:" if hub else "path:") + source,
        )

    artifact = build_cached(target, build)
    report(1.0, f"{what} ready")
    return artifact


def is_base_encoder(config: Any) -> bool:
    """A config with no ``*ForSequenceClassification`` architecture whose model type transformers can put a
    classification head on (BertModel, XLMRobertaModel, ...; a config that declares no architecture counts too)."""
    from transformers import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING

    archs = list(getattr(config, "architectures", None) or [])
    if any(a.endswith("ForSequenceClassification") for a in archs):
        return False
    if any(a.endswith(("ForCausalLM", "ForConditionalGeneration", "LMHeadModel")) for a in archs):
        return False  # a generator, not an encoder
    return type(config) in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING


def _finetuned_base_encoder(
    source: str,
    import_target: Path,
    what: str,
    config: Any,
    local_only: bool,
    hub: bool,
    use: BaseEncoderUse | None,
) -> Artifact:
    """The classifier fine-tuned from the base encoder ``source`` on the chosen dataset (cached per encoder,
    dataset content and mode)."""
    from profiling.inputs import finetune

    kind = ", ".join(getattr(config, "architectures", None) or []) or config.model_type
    if use is None or use.dataset is None:
        raise ModelError(
            f"{what} is a base encoder ({kind}) with no classification head: choose a dataset to fine-tune it "
            f"on (fine-tuning mode: {' or '.join(finetune.FINETUNE_MODES)}), and it becomes a classifier first"
        )
    data = use.dataset
    encoder_dir = Path(source)
    if hub:  # fetch the encoder once into a plain folder (weights as safetensors, a fast tokenizer)
        encoder_dir = build_cached(import_target.with_name(import_target.name + "-encoder"),
                                   lambda out: _save_encoder(source, out, what, local_only, hub))
        encoder_dir = encoder_dir.path
    elif not (encoder_dir / "tokenizer.json").is_file():
        raise ModelError(
            f"{what} has no tokenizer.json (a fast tokenizer); save it with "
            "AutoTokenizer.from_pretrained(folder).save_pretrained(folder) and retry"
        )
    content = hashlib.sha256(repr((data.label_names, data.train_texts, data.train_labels)).encode()).hexdigest()
    recipe = finetune.base_encoder_recipe(data)
    key = hashlib.sha256(repr((import_target.name, content, use.mode, sorted(recipe.items()))).encode())
    target = paths.models_dir() / f"finetuned-{import_target.name[:60]}-{use.mode}-{key.hexdigest()[:12]}"
    name = source if hub else path_name(source)
    return build_cached(
        target,
        lambda out: finetune.finetune_encoder(
            encoder_dir,
            data,
            out,
            progress=use.progress,
            mode=use.mode,
            source_name=f"{kind} {name}",
            base_name=name,
            extra_meta={"source": ("hub:" if hub else "path:") + source, "base_encoder": kind},
            **recipe,
        ),
    )


def _save_encoder(source: str, out_dir: Path, what: str, local_only: bool, hub: bool) -> dict[str, Any]:
    import torch
    from transformers import AutoModel, AutoTokenizer

    try:
        model = AutoModel.from_pretrained(source, dtype=torch.float32, local_files_only=local_only)
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
    except Exception as exc:
        raise _load_error(exc, what, hub) from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(f"{what} has only a slow (Python) tokenizer; a fast tokenizer (tokenizer.json) is needed")
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return {"base": source, "source": "hub:" + source, "base_encoder": True}


def path_name(source: str) -> str:
    return Path(source).resolve().name


def _load_config(source: str, what: str, local_only: bool, hub: bool):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source, local_files_only=local_only)
    except Exception as exc:
        raise _load_error(exc, what, hub) from exc


def _load_error(exc: BaseException, what: str, hub: bool) -> ModelError:
    """Turn a from_pretrained failure into a user-facing ModelError."""
    from huggingface_hub import errors as hf

    chain = []
    cur: BaseException | None = exc
    while cur is not None and len(chain) < 10:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    text = " ".join(str(e) for e in chain)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, ModelError):
        return exc
    if any(isinstance(e, hf.GatedRepoError) for e in chain):
        return ModelError(f"{what} is gated on the Hugging Face Hub: accept its terms and log in first")
    if (
        any(isinstance(e, hf.RepositoryNotFoundError) for e in chain)
        or "is not a local folder and is not a valid model identifier" in text
    ):
        return ModelError(f"model {what} not found on the Hugging Face Hub (or it is private)")
    if any(isinstance(e, hf.RevisionNotFoundError) for e in chain):
        return ModelError(f"{what}: revision not found on the Hugging Face Hub")
    if "trust_remote_code" in text:
        return ModelError(
            f"{what} needs custom code from its repository (trust_remote_code), which this tool never "
            "runs; pick a model built into transformers"
        )
    if hub and (
        any(
            isinstance(e, (hf.LocalEntryNotFoundError, hf.OfflineModeIsEnabled, ConnectionError, TimeoutError))
            for e in chain
        )
        or "couldn't connect" in text
        or "offline mode" in text.lower()
    ):
        why = (
            "offline mode (HF_HUB_OFFLINE=1)" if _hub_offline() else f"{urlparse(_endpoint()).hostname} is unreachable"
        )
        return ModelError(
            f"cannot reach the Hugging Face Hub to fetch {what}: {why}, and it is not in the local "
            "cache. Use the offline default, a preset or a local folder"
        )
    if "Unrecognized model" in text or "model_type" in text:
        return ModelError(f"{what}: unsupported model type ({first})")
    if any(type(e).__name__ == "SafetensorError" for e in chain) or "deserializing header" in text:
        return ModelError(f"cannot load {what}: its weights file (*.safetensors) is damaged or incomplete ({first}); "
                          "download or save the model again")
    return ModelError(f"cannot load {what}: {first}")


def _check_classifier(config: Any, what: str) -> None:
    from transformers import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING

    archs = list(getattr(config, "architectures", None) or [])
    if not any(a.endswith("ForSequenceClassification") for a in archs):
        kind = ", ".join(archs) if archs else f"a {config.model_type} model that declares no architecture"
        raise ModelError(
            f"{what} is not a sequence classifier: it is {kind}. Pick a model fine-tuned for text "
            "classification (its config lists a *ForSequenceClassification architecture)"
        )
    if type(config) not in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING:
        raise ModelError(
            f"{what}: transformers has no sequence-classification class for model type {config.model_type!r}"
        )


def _check_ram(config: Any, what: str) -> int:
    import psutil

    try:
        params = meta_parameters(config)
    except Exception as exc:
        raise ModelError(f"{what}: cannot build its architecture from config.json: {exc}") from exc
    need = params * 4  # fp32 weights
    available = psutil.virtual_memory().available
    if need > RAM_FRACTION_LIMIT * available:
        raise ModelError(
            f"{what} is too big for this machine: {params / 1e6:.0f}M parameters need about "
            f"{need / 2**30:.1f} GiB as fp32 weights, more than {RAM_FRACTION_LIMIT:.0%} of the "
            f"{available / 2**30:.1f} GiB of RAM available (compressing it needs several copies)"
        )
    return params


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on") or os.environ.get(
        "TRANSFORMERS_OFFLINE", ""
    ).strip().lower() in ("1", "true", "yes", "on")


def _endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def _hub_reachable() -> bool:
    """A quick TCP probe, so an unreachable Hub fails in seconds instead of after minutes of retries."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # a proxy decides; let huggingface_hub try
    url = urlparse(_endpoint())
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=HUB_PROBE_TIMEOUT_S):
            return True
    except OSError as exc:
        log.info("Hugging Face Hub unreachable: %s", exc)
        return False


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "--", text).strip("-")[:80]


def _check_labels(spec: str, artifact: Artifact, dataset: LabeledData) -> None:
    n_model = int(artifact.meta.get("num_labels", 0))
    n_data = len(dataset.label_names)
    if n_model != n_data:
        names = list((artifact.meta.get("id2label") or {}).values())
        raise ModelError(
            f"model {spec!r} predicts {n_model} labels ({', '.join(names)}) but the dataset "
            f"{dataset.name!r} has {n_data} classes ({', '.join(dataset.label_names)}); pick a model "
            "trained for this dataset's classes"
        )

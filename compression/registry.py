"""The technique registry: frozen configs with help text, handlers that write new artifacts, chains."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from compression.artifact import Artifact
from compression.errors import UserError, write_failure

log = logging.getLogger(__name__)


class TechniqueError(UserError):
    """A technique or chain that cannot be applied; the message is shown to the user as is."""


ProgressFn = Callable[[float, str], None]


@dataclass
class Context:
    """What a handler may need beyond its input: labeled train data, progress, seed, threads.

    Handlers must only ever see the train split (never the test split).
    """

    train_texts: Sequence[str] = ()
    train_labels: Sequence[int] = ()
    label_names: Sequence[str] = ()
    progress: ProgressFn = field(default=lambda frac, msg: None)
    seed: int = 0
    threads: int = 2


@dataclass(frozen=True)
class TechniqueConfig:
    """Base of every technique config. Subclasses are frozen dataclasses whose fields carry
    ``metadata={"help": ..., "min": ..., "max": ..., "choices": [...]}`` for the UI and CLI."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    group: ClassVar[str] = ""  # serialization | quantization | pruning | architecture
    help: ClassVar[str] = ""
    accepts: ClassVar[tuple[str, ...]] = ("hf",)
    produces: ClassVar[str] = "hf"
    needs_train_data: ClassVar[bool] = False
    deprecated: ClassVar[str | None] = None  # shown in the UI when the technique uses a deprecated API
    warning: ClassVar[str | None] = None  # other honest caveats (speed, accuracy)
    # The numeric format the result computes in: "int8", "bf16", "fp16", or None (fp32, or not a number format).
    # Every technique declares it (tests/profiling/measure/test_hardware.py checks each against a table); the CPU
    # advice reads it instead of guessing from the technique's name.
    numeric: ClassVar[str | None] = None

    @classmethod
    def numeric_kind(cls, options: Mapping[str, Any] | None = None) -> str | None:
        """Which numeric format this technique computes in with ``options`` (its settings; unused unless a subclass
        decides from them): "int8", "bf16", "fp16" or None."""
        return cls.numeric

    @classmethod
    def takes_exclude_layers(cls) -> bool:
        """Whether the technique has an ``exclude_layers`` option (layers kept out of it, by module name)."""
        return any(f.name == "exclude_layers" for f in fields(cls))

    def require_whole_numbers(self, *names: str) -> None:
        """ValueError (how a config refuses an option) unless each named field holds an int (a bool does not)."""
        for name in names:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"{name} must be a whole number, got {v!r}")  # noqa: TRY004

    def require_bools(self, *names: str) -> None:
        """ValueError unless each named field holds True or False."""
        for name in names:
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")  # noqa: TRY004

    def to_json(self) -> dict[str, Any]:
        return {"technique": self.name, **dataclasses.asdict(self)}

    def spec(self) -> str:
        """Short human/CLI form, e.g. ``prune-heads:fraction=0.5,method=random``; defaults omitted."""
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value != f.default:
                parts.append(f"{f.name}={value}")
        return self.name + (":" + ",".join(parts) if parts else "")

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:16]

    def build_salt(self) -> str:
        """What else the built artifact depends on besides the config (e.g. a recipe chosen for this CPU); part of
        the cache key, so an artifact built for another machine's choice is never reused. Empty by default."""
        return ""

    def uses_train_data(self) -> bool:
        """Whether this config's result depends on the train split (then the cache key includes the data)."""
        return self.needs_train_data


Handler = Callable[[Artifact, Any, Path, Context], Artifact]


@dataclass(frozen=True)
class Technique:
    config_cls: type[TechniqueConfig]
    handler: Handler


REGISTRY: dict[str, Technique] = {}


def register(config_cls: type[TechniqueConfig]) -> Callable[[Handler], Handler]:
    """Decorator registering ``handler(src, cfg, out_dir, ctx) -> Artifact`` for ``config_cls``."""

    def deco(handler: Handler) -> Handler:
        if not config_cls.name:
            raise ValueError(f"{config_cls.__name__} has no name")
        REGISTRY[config_cls.name] = Technique(config_cls, handler)
        return handler

    return deco


def _coerce(value: str, f: dataclasses.Field) -> Any:
    typ = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if "bool" in typ:
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise TechniqueError(f"{f.name} must be true or false, got {value!r}")
    if "float" in typ:
        try:
            return float(value)
        except ValueError:
            raise TechniqueError(f"{f.name} must be a number, got {value!r}") from None
    if "int" in typ and "tuple" not in typ:
        try:
            return int(value)
        except ValueError:
            raise TechniqueError(f"{f.name} must be a whole number, got {value!r}") from None
    return value


def make_config(name: str, **kwargs: Any) -> TechniqueConfig:
    if name not in REGISTRY:
        known = ", ".join(sorted(REGISTRY))
        raise TechniqueError(f"unknown technique {name!r}; known techniques: {known}")
    cls = REGISTRY[name].config_cls
    names = {f.name for f in fields(cls)}
    unknown = set(kwargs) - names
    if unknown:
        raise TechniqueError(f"{name} has no option {', '.join(sorted(unknown))}; options: {', '.join(sorted(names)) or 'none'}")
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise TechniqueError(f"{name}: {exc}") from exc


def parse_spec(spec: str) -> TechniqueConfig:
    """``onnx``, ``prune-heads:0.5`` (first field positional) or ``prune-heads:fraction=0.5,method=importance``."""
    spec = spec.strip()
    name, _, rest = spec.partition(":")
    name = name.strip()
    if name not in REGISTRY:
        return make_config(name)  # raises with the list of known names
    cls = REGISTRY[name].config_cls
    flds = list(fields(cls))
    kwargs: dict[str, Any] = {}
    if rest:
        for i, part in enumerate(p for p in rest.split(",") if p.strip()):
            key, eq, value = part.partition("=")
            if not eq:
                if i != 0 or not flds:
                    raise TechniqueError(f"cannot read {part!r} in {spec!r}: use option=value")
                key, value = flds[0].name, key
            key = key.strip()
            f = next((f for f in flds if f.name == key), None)
            if f is None:
                return make_config(name, **{key: value})  # raises: unknown option
            kwargs[key] = _coerce(value.strip(), f)
    return make_config(name, **kwargs)


def config_from_json(data: dict[str, Any]) -> TechniqueConfig:
    data = dict(data)
    name = data.pop("technique", None)
    if name is None:
        raise TechniqueError("technique config without a 'technique' name")
    cls = REGISTRY.get(name)
    if cls is None:
        return make_config(name)
    kwargs = {}
    for f in fields(cls.config_cls):
        if f.name in data:
            v = data[f.name]
            kwargs[f.name] = tuple(v) if isinstance(v, list) else v
    return make_config(name, **kwargs)


def check_chain(start_format: str, configs: Sequence[TechniqueConfig], meta: dict[str, Any] | None = None) -> None:
    """Raise TechniqueError naming the first step that cannot take the previous step's output."""
    fmt = start_format
    prev = "the original model"
    for i, cfg in enumerate(configs):
        if i == 0 and fmt != "hf":
            reason = format_refusal(cfg.name, fmt)
            if reason:
                raise TechniqueError(reason)
        if fmt not in cfg.accepts:
            raise TechniqueError(
                f"step {i + 1} ({cfg.spec()}) cannot follow {prev}: it needs "
                f"{' or '.join(_FORMAT_NAMES.get(a, a) for a in cfg.accepts)}, "
                f"but gets {_FORMAT_NAMES.get(fmt, fmt)}"
            )
        check = getattr(cfg, "check", None)
        if check is not None and meta is not None:
            check(meta)  # technique-specific applicability (e.g. enough heads/layers)
        if meta is not None:
            from compression.structure import check as check_structure

            check_structure(cfg.name, meta)  # the architecture itself rules it out (e.g. heads shared across layers)
        fmt = cfg.produces
        prev = f"step {i + 1} ({cfg.spec()})"


# Why a technique needs the PyTorch (Hugging Face) weights, for the refusal on a model that is given in another format.
_NEEDS_WEIGHTS = {
    "pruning": "it edits the PyTorch modules and weights",
    "architecture": "it trains a smaller PyTorch student from the PyTorch model",
    "quantization": "it quantizes or casts the PyTorch weights (or fine-tunes them)",
    "serialization": "it converts the PyTorch model",
}


_GRAPH_NAMES = {"onnx": "an ONNX graph", "openvino": "an OpenVINO IR graph"}


def format_refusal(technique: str, fmt: str) -> str | None:
    """Why ``technique`` cannot start from an original model given as ``fmt`` (e.g. "onnx"), naming the format and
    the reason, or None when it can (also for an unknown technique: make_config refuses that with its own message).
    The one place this is decided: the runner, the CLI and the Run page's picker all ask here."""
    entry = REGISTRY.get(technique)
    if entry is None or fmt in entry.config_cls.accepts:
        return None
    cls = entry.config_cls
    what = _GRAPH_NAMES.get(fmt) or _FORMAT_NAMES.get(fmt, fmt)
    if fmt in _GRAPH_NAMES and "hf" in cls.accepts:
        why = _NEEDS_WEIGHTS.get(cls.group, "it works on the PyTorch model")
        can = ", ".join(sorted(n for n, t in REGISTRY.items() if fmt in t.config_cls.accepts))
        return (f"{cls.label or technique} ({technique}) cannot follow the original model: it needs a PyTorch "
                f"model's weights ({why}); this model is {what}, from which they cannot be recovered. The techniques "
                f"that take {what}: {can}")
    needs = " or ".join(_FORMAT_NAMES.get(a, a) for a in cls.accepts)
    return f"{cls.label or technique} ({technique}) cannot follow the original model: it needs {needs}; this model is {what}"


_FORMAT_NAMES = {
    "hf": "a PyTorch (Hugging Face) model",
    "onnx": "an ONNX model",
    "torchscript": "a TorchScript model",
    "pt2": "a torch.export (.pt2) program",
    "torch-int8": "a PyTorch int8 model",
    "openvino": "an OpenVINO IR model",
}


def _data_key(cfg: TechniqueConfig, ctx: Context) -> str:
    """A hash of the train texts, labels and seed for a technique that trains or calibrates on them, so the same
    model fine-tuned on another dataset is never served from the cache; empty for data-free techniques."""
    if not cfg.uses_train_data():
        return ""
    h = hashlib.sha256(json.dumps([list(ctx.train_texts), [int(x) for x in ctx.train_labels], ctx.seed]).encode())
    return "/data:" + h.hexdigest()[:16]


PARTIAL = ".partial-"  # an artifact being built: <name>.partial-<host>-<pid>, renamed to <name> when complete


def remove_orphaned_partials(cache_root: Path) -> list[Path]:
    """Delete the temp folders of builds whose process is gone (killed mid-build: ``kill -9`` leaves no chance to
    clean up); only this host's (a shared cache on NFS also holds other hosts' builds). Returns what was removed."""
    host = socket.gethostname()
    removed = []
    for tmp in cache_root.glob(f"*{PARTIAL}{host}-*") if cache_root.is_dir() else ():
        pid = tmp.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        log.info("removing %s, left by a build whose process is gone", tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, killed but not yet reaped by its parent, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill(0)
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def apply(src: Artifact, cfg: TechniqueConfig, cache_root: Path, ctx: Context | None = None) -> Artifact:
    """Apply one technique, writing a new artifact under ``cache_root``; reuse it if already built.

    The cache key hashes the input artifact's key, the config and (for techniques that learn from it) the train
    data, so the same chain on the same base and data is built once. The input artifact is never modified. A half-written output is never reused:
    it is built in a temporary folder and renamed into place only when complete.
    """
    ctx = ctx or Context()
    check_chain(src.format, [cfg], src.meta)
    parent_key = src.meta.get("artifact_key") or hashlib.sha256(str(src.path.resolve()).encode()).hexdigest()[:16]
    salt = cfg.build_salt()
    key = hashlib.sha256(
        f"{parent_key}/{cfg.key()}{_data_key(cfg, ctx)}{'/build:' + salt if salt else ''}".encode()
    ).hexdigest()[:16]
    out = Path(cache_root) / f"{cfg.name}-{key}"
    if (out / "artifact.json").is_file():
        try:
            art = Artifact.load(out)
            log.info("reusing cached artifact %s", out)
            ctx.progress(1.0, "reused cached artifact")
            return art
        except (ValueError, FileNotFoundError):
            shutil.rmtree(out, ignore_errors=True)
    remove_orphaned_partials(Path(cache_root))
    tmp = out.with_name(f"{out.name}{PARTIAL}{socket.gethostname()}-{os.getpid()}")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        result = REGISTRY[cfg.name].handler(src, cfg, tmp, ctx)
        meta = {**result.meta, "artifact_key": key}
        result = Artifact(path=tmp, format=result.format, lineage=result.lineage, meta=meta)
        result.write_manifest()
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    except BaseException as exc:  # nothing half-written stays: the temp folder goes, the cache keeps only whole ones
        shutil.rmtree(tmp, ignore_errors=True)
        disk = write_failure(exc, f"the {cfg.name} artifact {out.name}", out.parent) if isinstance(exc, Exception) \
            else None
        if disk is not None:
            raise disk from exc
        raise
    return Artifact(path=out, format=result.format, lineage=result.lineage, meta=meta)


def apply_chain(src: Artifact, configs: Sequence[TechniqueConfig], cache_root: Path, ctx: Context | None = None) -> Artifact:
    check_chain(src.format, configs, src.meta)
    art = src
    for cfg in configs:
        art = apply(art, cfg, cache_root, ctx)
    return art

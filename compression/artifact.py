"""An artifact: a directory holding one model variant, its format, lineage and metadata."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Format = Literal["hf", "onnx", "torchscript", "pt2", "torch-int8", "openvino"]
FORMATS: tuple[str, ...] = ("hf", "onnx", "torchscript", "pt2", "torch-int8", "openvino")
MANIFEST = "artifact.json"


@dataclass(frozen=True)
class Artifact:
    """A model variant on disk.

    ``path`` is a directory with ``artifact.json`` (format, lineage, meta), the model files, and the
    tokenizer files (``tokenizer.json`` at least) so any process can load it without its parent.
    ``lineage`` lists the technique specs applied since the base model, oldest first.
    ``meta`` holds: ``num_labels``, ``id2label`` (str keys), ``max_length``, ``model_type``,
    ``num_layers``, ``heads_per_layer`` (list[int]), ``hidden_size``, ``random_weights`` (bool),
    ``base`` (human name of the base model), ``notes`` (list[str]) and technique-specific keys.
    """

    path: Path
    format: Format
    lineage: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    def write_manifest(self) -> None:
        data = {"format": self.format, "lineage": list(self.lineage), "meta": self.meta}
        tmp = self.path / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        tmp.replace(self.path / MANIFEST)

    @classmethod
    def load(cls, path: str | Path) -> Artifact:
        path = Path(path)
        manifest = path / MANIFEST
        if not manifest.is_file():
            raise FileNotFoundError(f"{path} is not an artifact folder (no {MANIFEST})")
        try:
            data = json.loads(manifest.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"corrupt artifact manifest {manifest}: {exc}") from exc
        if data.get("format") not in FORMATS:
            raise ValueError(f"unknown artifact format {data.get('format')!r} in {manifest}")
        return cls(path=path, format=data["format"], lineage=tuple(data.get("lineage", [])), meta=data.get("meta", {}))

    def derive(self, path: Path, format: Format, step: str, **meta_updates: Any) -> Artifact:
        """A new artifact descended from this one (the caller writes the files, then the manifest)."""
        meta = {**self.meta, **meta_updates}
        return Artifact(path=Path(path), format=format, lineage=(*self.lineage, step), meta=meta)

    @property
    def label(self) -> str:
        return " -> ".join(self.lineage) if self.lineage else "original"

    def disk_bytes(self) -> int:
        """Bytes of the model files, excluding the tokenizer and the manifest."""
        skip = set(TOKENIZER_FILES) | {MANIFEST}
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file() and p.name not in skip)


TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
)


def copy_tokenizer(src: Path, dst: Path) -> None:
    """Copy the tokenizer files so the new artifact is self-contained."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (Path(src) / name).is_file():
            shutil.copy2(Path(src) / name, Path(dst) / name)

"""The shared text encoder: an artifact's tokenizer turned into int64 numpy batches (tokenizers + numpy only)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from compression.errors import UserError

log = logging.getLogger(__name__)

BASE_INPUTS: tuple[str, ...] = ("input_ids", "attention_mask")
WITH_TYPES: tuple[str, ...] = ("input_ids", "attention_mask", "token_type_ids")
# Model types whose checkpoints use segment (token type) embeddings; RoBERTa-style models do not.
_TOKEN_TYPE_MODELS = {"bert", "electra", "albert", "xlnet", "megatron-bert", "mobilebert", "squeezebert", "convbert"}
_DEFAULT_MAX_LENGTH = 512


class TokenizerError(UserError):
    """The artifact has no usable tokenizer; the message says which files were looked for."""


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        log.warning("could not read %s", path)
        return {}


def model_inputs_for(meta: dict[str, Any], config: dict[str, Any] | None = None) -> tuple[str, ...]:
    """The input names a model takes: meta ``model_inputs`` if set, else decided from the model type/config."""
    if meta.get("model_inputs"):
        return tuple(meta["model_inputs"])
    config = config or {}
    model_type = meta.get("model_type") or config.get("model_type")
    if "type_vocab_size" in config:
        return WITH_TYPES if int(config["type_vocab_size"]) > 1 else BASE_INPUTS
    return WITH_TYPES if model_type in _TOKEN_TYPE_MODELS else BASE_INPUTS


def max_positions(config: dict[str, Any]) -> int | None:
    """The longest sequence the position embeddings allow (RoBERTa-style models offset positions by pad+1)."""
    if "max_position_embeddings" not in config:
        return None
    n = int(config["max_position_embeddings"])
    if config.get("model_type") in ("roberta", "xlm-roberta", "camembert"):
        n -= int(config.get("pad_token_id", 1)) + 1
    return n


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def _load_tokenizer(folder: Path):
    from tokenizers import Tokenizer

    if (folder / "tokenizer.json").is_file():
        return Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok_cfg = _read_json(folder / "tokenizer_config.json")
    if (folder / "vocab.txt").is_file():
        from tokenizers import BertWordPieceTokenizer

        return BertWordPieceTokenizer(str(folder / "vocab.txt"), lowercase=bool(tok_cfg.get("do_lower_case", True)))
    if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        from tokenizers import ByteLevelBPETokenizer
        from tokenizers.processors import RobertaProcessing

        tok = ByteLevelBPETokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
        tok.post_processor = RobertaProcessing(("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")))
        return tok
    raise TokenizerError(f"no tokenizer in {folder}: expected tokenizer.json, vocab.txt or vocab.json + merges.txt")


def _pad_token(tok, folder: Path) -> tuple[int, str]:
    """The pad id/token: the tokenizer's own padding setting, else the special tokens maps, else common names."""
    padding = getattr(tok, "padding", None)
    if padding and padding.get("pad_token") is not None and tok.token_to_id(padding["pad_token"]) is not None:
        return int(padding["pad_id"]), padding["pad_token"]
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        text = _token_text(_read_json(folder / name).get("pad_token"))
        if text is not None and tok.token_to_id(text) is not None:
            return int(tok.token_to_id(text)), text
    for text in ("[PAD]", "<pad>"):
        if tok.token_to_id(text) is not None:
            return int(tok.token_to_id(text)), text
    log.warning("no pad token found in %s; padding with id 0", folder)
    return 0, "[PAD]"


class TextEncoder:
    """Encodes texts to int64 arrays, padded to the longest text in the batch and truncated at ``max_length``."""

    def __init__(self, tokenizer, max_length: int, input_names: Sequence[str], pad_id: int, pad_token: str):
        self.max_length = int(max_length)
        self.input_names = tuple(input_names)
        self.pad_id = pad_id
        self._pad_token = pad_token
        self._tok = tokenizer
        self._tok.no_padding()
        self._tok.enable_truncation(max_length=self.max_length)
        self._tok.enable_padding(pad_id=pad_id, pad_token=pad_token)  # no length: pad to the longest (dynamic)

    def encode(self, texts: Sequence[str], length: int | None = None) -> dict[str, np.ndarray]:
        """Padded to the longest text in the batch (dynamic padding); with ``length``, every row is truncated and
        padded to exactly ``length`` tokens (a fixed shape, e.g. to compare with the dynamic case)."""
        texts = [str(t) for t in texts]
        if not texts:
            return {name: np.zeros((0, 0), dtype=np.int64) for name in self.input_names}
        if length is not None:
            if int(length) < 2 or int(length) > self.max_length:
                raise ValueError(f"length must be between 2 and max_length {self.max_length}, got {length}")
            self._tok.enable_truncation(max_length=int(length))
            self._tok.enable_padding(pad_id=self.pad_id, pad_token=self._pad_token, length=int(length))
            try:
                encodings = self._tok.encode_batch(texts)
            finally:  # back to dynamic padding
                self._tok.enable_truncation(max_length=self.max_length)
                self._tok.enable_padding(pad_id=self.pad_id, pad_token=self._pad_token)
        else:
            encodings = self._tok.encode_batch(texts)
        out = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        }
        if "token_type_ids" in self.input_names:
            out["token_type_ids"] = np.array([e.type_ids for e in encodings], dtype=np.int64)
        return out

    def lengths(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text (special tokens included, after truncation), without padding."""
        if not texts:
            return []
        return [int(sum(e.attention_mask)) for e in self._tok.encode_batch([str(t) for t in texts])]


def load_encoder(artifact_dir: Path, max_length: int | None = None) -> TextEncoder:
    """The encoder of the artifact at ``artifact_dir``; ``max_length`` defaults to the artifact's meta."""
    folder = Path(artifact_dir)
    meta = _read_json(folder / "artifact.json").get("meta", {})
    config = _read_json(folder / "config.json")
    if max_length is None:
        max_length = meta.get("max_length")
    if max_length is None:
        model_max = _read_json(folder / "tokenizer_config.json").get("model_max_length")
        max_length = (
            int(model_max) if isinstance(model_max, int | float) and model_max < 100_000 else _DEFAULT_MAX_LENGTH
        )
    limit = max_positions(config)
    if limit is not None and int(max_length) > limit:
        log.warning("max_length %s exceeds the model's %s positions; truncating at %s", max_length, limit, limit)
        max_length = limit
    if int(max_length) < 2:
        raise TokenizerError(f"max_length must be at least 2 (room for the special tokens), got {max_length}")
    tok = _load_tokenizer(folder)
    pad_id, pad_token = _pad_token(tok, folder)
    return TextEncoder(tok, int(max_length), model_inputs_for(meta, config), pad_id, pad_token)

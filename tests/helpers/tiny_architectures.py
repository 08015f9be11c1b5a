"""Tiny random sequence classifiers of every architecture the engine claims, built offline from config classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compression.artifact import Artifact, copy_tokenizer
from tests.helpers.tiny_classifiers import minilm_dir

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
}
ALL = tuple(ARCHS)


def tiny_config(arch: str, num_labels: int = 2) -> Any:
    """The architecture's config: 2 layers, hidden 32, 4 heads of 8, a large init so heads visibly matter."""
    import transformers as tf

    cfg_cls, _, extra = ARCHS[arch]
    common: dict[str, Any] = {"vocab_size": VOCAB, "num_labels": num_labels, "initializer_range": 0.2}
    if arch == "distilbert":
        common.update(dim=HIDDEN, n_layers=LAYERS, n_heads=HEADS, hidden_dim=INTER)
    else:
        common.update(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS, intermediate_size=INTER)
    common.update(extra)
    return getattr(tf, cfg_cls)(**common)


def tiny_classifier(arch: str, seed: int = 0, num_labels: int = 2) -> Any:
    """A tiny random ``*ForSequenceClassification`` in eval mode, biases random (a dropped bias shows)."""
    import torch
    import transformers as tf

    torch.manual_seed(seed)
    model = getattr(tf, ARCHS[arch][1])(tiny_config(arch, num_labels)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.05)
    return model


def save_artifact(model: Any, path: Path, arch: str) -> Artifact:
    """The model as an hf artifact with the shared MiniLM tokenizer and the meta a base model carries."""
    from compression.hf_io import save_model

    path.mkdir(parents=True, exist_ok=True)
    meta = save_model(model, path)
    copy_tokenizer(minilm_dir(), path)
    n = model.config.num_labels
    art = Artifact(path=path, format="hf", meta={
        **meta, "num_labels": n, "id2label": {str(i): f"label{i}" for i in range(n)}, "max_length": 32,
        "random_weights": True, "base": f"tiny-{arch}",
    })
    art.write_manifest()
    return art


def build(arch: str, path: Path, seed: int = 0) -> Artifact:
    return save_artifact(tiny_classifier(arch, seed), path, arch)

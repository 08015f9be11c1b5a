"""A base encoder (no classification head) becomes a classifier: fine-tuned on the dataset's train split, head only
or full, for every architecture the engine claims; sentence-transformers folders load as their encoder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from profiling.inputs import finetune
from profiling.inputs.datasets import LabeledData
from profiling.inputs.models import ModelError, encoder_folder, resolve_model
from profiling.jobs.runner import RequestError, normalize_request
from tests.helpers.tiny_architectures import ALL, MINILM, tiny_classifier
from tests.helpers.toy_data import toy_texts

# architectures whose new classification head is one module (the others spread it: DistilBERT's pre_classifier +
# classifier, DeBERTa's pooler + classifier, ModernBERT's head + classifier)
ONE_MODULE_HEADS = {"bert", "roberta", "xlm-roberta", "electra", "albert", "mpnet"}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("COMPRESSION_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "data"


def toy_data(n_train: int = 64) -> LabeledData:
    train_texts, train_labels = toy_texts(n_train, seed=0)
    test_texts, test_labels = toy_texts(24, seed=1)
    return LabeledData("toy", ["neg", "pos"], train_texts, train_labels, test_texts, test_labels)


def save_encoder(arch: str, folder: Path) -> Path:
    """The encoder of a tiny random ``arch`` classifier saved as a base model (``*Model``, no head) with a
    tokenizer, as save_pretrained writes it."""
    model = tiny_classifier(arch, seed=0)
    encoder = getattr(model, model.base_model_prefix)
    encoder.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy2(MINILM / name, folder / name)
    return folder


@pytest.mark.parametrize("arch", ALL)
@pytest.mark.parametrize("mode", ["head", "full"])
def test_every_architecture_fine_tunes_from_its_base_encoder(arch: str, mode: str, tmp_path: Path,
                                                             data_dir: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    src = save_encoder(arch, tmp_path / f"{arch}-encoder")
    assert not json.loads((src / "config.json").read_text())["architectures"][0].endswith("ForSequenceClassification")
    art = resolve_model(f"path:{src}", toy_data(), finetune=mode)

    assert art.path.parent == data_dir / "models" and art.path.name.startswith("finetuned-")
    assert art.meta["num_labels"] == 2 and art.meta["id2label"] == {"0": "neg", "1": "pos"}
    assert art.meta["finetune"]["mode"] == mode and art.meta["random_weights"] is False
    assert 0.0 <= art.meta["finetune_test_accuracy"] <= 1.0
    model = AutoModelForSequenceClassification.from_pretrained(art.path)
    assert model.config.architectures[0].endswith("ForSequenceClassification")
    prefix = model.base_model_prefix + "."
    before = load_file(str(src / "model.safetensors"))
    after = {k.removeprefix(prefix): v for k, v in model.state_dict().items() if k.startswith(prefix)}
    shared = sorted(set(before) & set(after))
    assert len(shared) >= 0.9 * len(before), "the encoder's weights were not loaded into the classifier"
    changed = [k for k in shared if not torch.equal(before[k], after[k])]
    embeddings = model.get_input_embeddings().weight
    word_key = next(k for k in shared if after[k].data_ptr() == embeddings.data_ptr()
                    or (after[k].shape == embeddings.shape and torch.equal(after[k], embeddings)))
    assert torch.equal(before[word_key], after[word_key]), "the word embeddings stay as pretrained in both modes"
    if mode == "head":
        assert changed == [], f"head-only fine-tuning changed encoder weights: {changed[:3]}"
        # a head that is one module trains on the frozen encoder's outputs, taken in one pass
        cached = art.meta["finetune"]["head_epochs_on_cached_inputs"]
        assert (cached is not None) == (arch in ONE_MODULE_HEADS), cached
        assert art.meta["finetune"]["trained_parameters"] < 0.2 * art.meta["param_count"]
    else:
        assert len(changed) > len(shared) // 2, "full fine-tuning left most encoder weights untouched"


def test_the_fine_tuned_classifier_is_cached_per_dataset_and_mode(tmp_path: Path, data_dir: Path) -> None:
    src = save_encoder("bert", tmp_path / "enc")
    head = resolve_model(f"path:{src}", toy_data(), finetune="head")
    assert resolve_model(f"path:{src}", toy_data(), finetune="head").path == head.path
    assert resolve_model(f"path:{src}", toy_data(), finetune="full").path != head.path
    assert resolve_model(f"path:{src}", toy_data(n_train=48), finetune="head").path != head.path


def test_sentence_transformers_layouts_load_as_their_encoder(tmp_path: Path, data_dir: Path) -> None:
    assert encoder_folder(MINILM) == MINILM.resolve()  # modules.json names the folder itself ("path": "")
    root = tmp_path / "st-model"
    save_encoder("bert", root / "0_Transformer")
    (root / "1_Pooling").mkdir()
    (root / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    (root / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "0_Transformer", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]))
    assert encoder_folder(root) == (root / "0_Transformer").resolve()
    art = resolve_model(f"path:{root}", toy_data(), finetune="head")
    assert art.meta["finetune"]["mode"] == "head" and art.meta["source"].endswith("0_Transformer")

    (root / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "../../etc", "type": "sentence_transformers.models.Transformer"}]))
    with pytest.raises(ModelError, match="points outside its folder"):
        resolve_model(f"path:{root}", toy_data())
    (root / "modules.json").write_text(json.dumps([{"idx": 0, "path": "1_Pooling", "type": "x.models.Pooling"}]))
    with pytest.raises(ModelError, match="names no sentence_transformers Transformer module"):
        resolve_model(f"path:{root}", toy_data())


def test_a_base_encoder_without_a_fast_tokenizer_is_refused_with_the_fix(tmp_path: Path, data_dir: Path) -> None:
    src = save_encoder("bert", tmp_path / "enc")
    (src / "tokenizer.json").unlink()
    with pytest.raises(ModelError, match="no tokenizer.json"):
        resolve_model(f"path:{src}", toy_data())


def test_the_run_request_carries_the_fine_tuning_mode(tmp_path: Path, data_dir: Path) -> None:
    from tests.helpers.toy_data import write_csv

    src = save_encoder("bert", tmp_path / "enc")
    rows = [(t, ["neg", "neu", "pos"][i % 3]) for i, t in enumerate(toy_texts(30)[0])]
    csv = {"kind": "csv", "path": str(write_csv(tmp_path / "three.csv", rows)), "text_column": "text",
           "label_column": "label"}
    # a 3-class CSV against a base encoder's config (2 default labels) is not a label mismatch: it gets a new head
    request = normalize_request({"model": f"path:{src}", "dataset": csv, "finetune": "head"})
    assert request["finetune"] == "head"
    assert "finetune" not in normalize_request({"model": f"path:{src}", "dataset": csv})
    with pytest.raises(RequestError, match="unknown fine-tuning mode 'partial': choose one of full, head"):
        normalize_request({"model": f"path:{src}", "dataset": csv, "finetune": "partial"})
    with pytest.raises(ModelError, match="unknown fine-tuning mode"):
        resolve_model(f"path:{src}", toy_data(), finetune="partial")


def test_finetune_modes_are_described() -> None:
    assert set(finetune.FINETUNE_MODES) == {"full", "head"}
    assert all(mode["lr"] > 0 and mode["label"] for mode in finetune.FINETUNE_MODES.values())


def test_a_hub_base_encoder_is_fetched_once_then_fine_tuned(tmp_path: Path, data_dir: Path, monkeypatch) -> None:
    """The Hub path with the Hub switched off: a base encoder in the local Hugging Face cache (the layout
    huggingface_hub writes) is saved as a plain encoder folder once, then fine-tuned like a local one."""
    cache = tmp_path / "hf-cache"
    snapshot = cache / "models--org--tiny-encoder" / "snapshots" / ("0" * 40)
    save_encoder("roberta", snapshot)
    (cache / "models--org--tiny-encoder" / "refs").mkdir()
    (cache / "models--org--tiny-encoder" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(ModelError, match="base encoder"):
        resolve_model("hub:org/tiny-encoder")
    art = resolve_model("hub:org/tiny-encoder", toy_data(), finetune="head")
    assert art.meta["source"] == "hub:org/tiny-encoder" and art.meta["finetune"]["mode"] == "head"
    encoders = [p for p in (data_dir / "models").iterdir() if p.name.endswith("-encoder")]
    assert len(encoders) == 1 and (encoders[0] / "model.safetensors").is_file()

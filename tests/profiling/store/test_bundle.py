"""Run bundles: a round trip keeps everything; malformed, hostile or oversized bundles are refused, store untouched."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from profiling.store import bundle
from profiling.store.bundle import BundleError, export_bytes, import_bundle, read_bundle
from profiling.store.runs import ReadOnlyError, RunStore
from tests.helpers.fake_runs import fake_store


def _snapshot(store: RunStore) -> list:
    """Everything stored, to check that a refused import changed nothing."""
    out = []
    for r in store.list_runs():
        rid = r["id"]
        out.append((store.get_run(rid), store.variants(rid), store.timelines(rid), store.examples(rid),
                    [store.predictions(rid, v["idx"]) for v in store.variants(rid)]))
    return out


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _rezip(members: dict[str, bytes], fix_manifest: bool = True) -> bytes:
    """A bundle with edited members (the manifest checksums updated, so the content checks are what refuses)."""
    import hashlib

    members = dict(members)
    if fix_manifest and "manifest.json" in members:
        manifest = json.loads(members["manifest.json"])
        for name in bundle.FILES:
            if name in members:
                manifest["files"][name] = {"sha256": hashlib.sha256(members[name]).hexdigest()}
        members["manifest.json"] = json.dumps(manifest).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _edit(data: bytes, name: str, fn) -> bytes:
    members = _members(data)
    doc = json.loads(members[name])
    fn(doc)  # edits in place
    members[name] = json.dumps(doc).encode()
    return _rezip(members)


@pytest.fixture
def two_stores(tmp_path):
    src, run_id = fake_store(tmp_path / "a", with_failed=True)
    dst = RunStore(tmp_path / "b" / "runs.sqlite")
    return src, run_id, dst


def test_round_trip_keeps_records_metrics_timelines_predictions(two_stores, tmp_path):
    src, run_id, dst = two_stores
    path = bundle.export_run(src, run_id, tmp_path / "x.zip")
    assert set(_members(path.read_bytes())) == {"manifest.json", *bundle.FILES}
    new_id = import_bundle(dst, path)
    assert new_id == run_id  # no collision: the id is kept
    a, b = src.get_run(run_id), dst.get_run(new_id)
    for key in ("created_at", "finished_at", "status", "error", "request"):
        assert a[key] == b[key]
    assert b["env"]["imported"]["from_run"] == run_id
    assert {k: v for k, v in b["env"].items() if k != "imported"} == a["env"]
    va, vb = src.variants(run_id), dst.variants(new_id)
    strip = ("artifact",)
    assert [{k: v for k, v in x.items() if k not in strip} for x in va] == [
        {k: v for k, v in x.items() if k not in strip} for x in vb]
    assert all(v["artifact"] is None for v in vb)  # model files do not travel
    assert src.timelines(run_id) == dst.timelines(new_id)
    assert src.examples(run_id) == dst.examples(new_id)
    for v in va:
        assert src.predictions(run_id, v["idx"]) == dst.predictions(new_id, v["idx"])


def test_collision_gets_a_new_id_or_a_clear_refusal(two_stores):
    src, run_id, _ = two_stores
    # another run under the same id (its figures differ): an id collision, not the same content
    data = _edit(export_bytes(src, run_id), "variants.json", lambda vs: vs[1]["metrics"].update(disk_mib=1.5))
    before = _snapshot(src)
    with pytest.raises(BundleError, match=f"a run with id {run_id} is already in the store"):
        import_bundle(src, data, on_collision="refuse")
    assert _snapshot(src) == before
    new_id = import_bundle(src, data)
    assert new_id != run_id and src.get_run(new_id)["status"] == "done"
    assert len(src.list_runs()) == 2
    assert "copy_of" not in src.get_run(new_id)["env"]["imported"]


def test_a_bundle_already_stored_is_recognised_and_a_copy_is_marked(two_stores):
    from profiling.report.frames import run_label
    from profiling.store.bundle import AlreadyStored

    src, run_id, dst = two_stores
    data = export_bytes(src, run_id)
    before = _snapshot(src)
    with pytest.raises(AlreadyStored, match=f"already in the store as run {run_id}") as info:
        import_bundle(src, data)  # the run it was exported from, same store
    assert info.value.run_id == run_id and _snapshot(src) == before
    first = import_bundle(dst, data)
    with pytest.raises(AlreadyStored) as again:  # imported once already: recognised by the recorded digest
        import_bundle(dst, data, on_collision="new")
    assert again.value.run_id == first and again.value.digest == dst.get_run(first)["env"]["imported"]["digest"]
    # re-exported from the other store (a new export time, an import record): still the same content
    with pytest.raises(AlreadyStored, match=run_id):
        import_bundle(src, export_bytes(dst, first))
    copy = import_bundle(dst, data, duplicate="copy")
    assert copy != first and dst.get_run(copy)["env"]["imported"]["copy_of"] == first
    labels = {r["id"]: run_label(r) for r in dst.list_runs()}
    assert labels[copy].endswith(f"imported copy of {first}") and labels[first].endswith("\u00b7 imported")
    with pytest.raises(BundleError, match="duplicate must be one of refuse, copy"):
        import_bundle(dst, data, duplicate="twice")


def test_unfinished_or_unknown_runs_are_not_exported(tmp_path):
    store, run_id = fake_store(tmp_path, status="running")
    with pytest.raises(BundleError, match="still running"):
        export_bytes(store, run_id)
    with pytest.raises(BundleError, match="no run 'nope'"):
        export_bytes(store, "nope")


def _refused(dst: RunStore, data: bytes, match: str, **kw) -> None:
    before = _snapshot(dst)
    with pytest.raises(BundleError, match=match):
        import_bundle(dst, data, **kw)
    assert _snapshot(dst) == before


def test_malformed_inputs_are_refused_and_nothing_is_stored(two_stores):
    src, run_id, dst = two_stores
    good = export_bytes(src, run_id)
    import_bundle(dst, good)  # something already stored, to check it stays as it was
    members = _members(good)
    _refused(dst, b"this is not a zip", "not a zip archive")
    _refused(dst, good[: len(good) // 2], "not a zip archive|damaged")
    _refused(dst, _rezip({k: v for k, v in members.items() if k != "manifest.json"}), "no manifest.json")
    _refused(dst, _rezip({k: v for k, v in members.items() if k != "timelines.json"}), "lacks timelines.json")
    _refused(dst, _rezip({**members, "variants.json": b"{not json"}), "variants.json is not valid JSON")
    tampered = dict(members)
    tampered["run.json"] = members["run.json"].replace(b'"done"', b'"failed"')
    _refused(dst, _rezip(tampered, fix_manifest=False), "does not match its checksum")


def test_wrong_format_or_version_is_refused(two_stores):
    src, run_id, dst = two_stores
    good = export_bytes(src, run_id)
    _refused(dst, _edit(good, "manifest.json", lambda m: m.update(version=bundle.VERSION + 1)), "newer than")
    _refused(dst, _edit(good, "manifest.json", lambda m: m.update(version="1")), "whole number")
    _refused(dst, _edit(good, "manifest.json", lambda m: m.update(format="something-else")), "not a run bundle")


def test_path_traversal_and_unexpected_entries_are_refused(two_stores):
    src, run_id, dst = two_stores
    members = _members(export_bytes(src, run_id))
    for name in ("../evil.json", "/etc/passwd", "sub/../../x.json", "C:/windows.json", "..\\x.json"):
        _refused(dst, _rezip({**members, name: b"{}"}), "path traversal")
    _refused(dst, _rezip({**members, "payload.pkl": b"\x80\x04"}), "unexpected entry 'payload.pkl'")


def test_oversize_and_zip_bombs_are_refused(two_stores):
    src, run_id, dst = two_stores
    good = export_bytes(src, run_id)
    _refused(dst, good, "over the 100 byte limit", max_bundle=100)
    _refused(dst, good, "unpacks to .* over the 200 byte limit", max_member=200)
    members = _members(good)
    # 20 MiB of spaces inside examples.json: valid JSON, compresses > 1000:1
    bomb = members["examples.json"][:-1] + b" " * (20 * 1024 * 1024) + b"}"
    _refused(dst, _rezip({**members, "examples.json": bomb}), "zip bomb")


def test_bad_types_are_refused(two_stores):
    src, run_id, dst = two_stores
    good = export_bytes(src, run_id)
    cases = [
        ("run.json", lambda r: r.update(id="../../etc"), "bad run id"),
        ("run.json", lambda r: r.update(status="running"), "only finished runs"),
        ("run.json", lambda r: r.update(request=["not", "a", "dict"]), "'request' must be an object"),
        ("variants.json", lambda v: v[1].update(idx="1"), "'idx' must be a whole number"),
        ("variants.json", lambda v: v[1].update(idx=0), "appears twice"),
        ("variants.json", lambda v: v[1].update(metrics={"disk_mib": "87 MiB"}), "metric 'disk_mib' must be a number"),
        ("variants.json", lambda v: v[2].update(notes="a note"), "'notes' must be a list of text"),
        ("variants.json", lambda v: v.pop(0), "no variant 0"),
        ("timelines.json", lambda t: t["0"].update(mib=t["0"]["mib"][:-1]), "times but"),
        ("timelines.json", lambda t: t.update({"99": {"t": [], "mib": []}}), "not a variant of the run"),
        ("examples.json", lambda e: e.update(labels=[5] * len(e["labels"])), "'labels' must be class numbers"),
        ("predictions.json", lambda p: p["1"].update(preds=p["1"]["preds"][:3]), "predictions for 12 examples"),
        ("predictions.json", lambda p: p["1"].update(probs=[[0.5]] * 12), "rows of 2 numbers"),
    ]
    for name, fn, match in cases:
        _refused(dst, _edit(good, name, fn), match)
    assert dst.list_runs() == []


def test_read_only_store_refuses_imports(two_stores, monkeypatch):
    src, run_id, dst = two_stores
    data = export_bytes(src, run_id)
    monkeypatch.setenv("COMPRESSION_READ_ONLY", "1")
    with pytest.raises(ReadOnlyError, match="cannot import a run"):
        import_bundle(dst, data)
    assert dst.list_runs() == []
    assert read_bundle(data)["run"]["id"] == run_id  # reading (validating) still works


def test_cli_export_and_import(two_stores, tmp_path, capsys):
    from profiling.cli import main

    src, run_id, dst = two_stores
    out = tmp_path / "b.zip"
    assert main(["export", run_id, "-o", str(out), "--store", str(src.path)]) == 0
    assert main(["import", str(out), "--store", str(dst.path)]) == 0
    assert dst.get_run(run_id) is not None
    assert main(["import", str(out), "--store", str(dst.path), "--on-collision", "refuse"]) == 2
    assert f"already in the store as run {run_id}" in capsys.readouterr().err
    assert main(["import", str(out), "--store", str(dst.path), "--as-copy"]) == 0
    assert "a marked copy of run" in capsys.readouterr().out
    assert len(dst.list_runs()) == 2
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"nope")
    assert main(["import", str(bad), "--store", str(dst.path)]) == 2
    assert "not a zip archive" in capsys.readouterr().err

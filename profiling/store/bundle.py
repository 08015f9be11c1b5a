"""Run bundles: export a run to one zip of JSON files (manifest + version) and import it, validated, into a store."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import re
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

from compression.errors import UserError
from profiling.schema import METRICS, SETTING_METRICS, RunStatus
from profiling.store.runs import RUN_STATUSES, VARIANT_STATUSES, RunStore, check_writable, now_iso

log = logging.getLogger(__name__)

FORMAT = "compression-explorer-run-bundle"
VERSION = 1
MANIFEST = "manifest.json"
FILES = ("run.json", "variants.json", "timelines.json", "examples.json", "predictions.json")
SUFFIX = ".zip"

MAX_BUNDLE_BYTES = 200 * 1024 * 1024  # the zip file itself
MAX_MEMBER_BYTES = 200 * 1024 * 1024  # one member, uncompressed
MAX_TOTAL_BYTES = 400 * 1024 * 1024  # all members, uncompressed
MAX_RATIO = 200  # uncompressed / compressed above this (for members over 1 MiB) is a zip bomb
MAX_VARIANTS = 1000
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
COLLISIONS = ("new", "refuse")
DUPLICATES = ("refuse", "copy")
# Metrics the dashboard reads as numbers: in a bundle they must be numbers (or null). Every figure of the registry,
# plus the numeric settings stored with them.
NUMERIC_METRICS = (*(m.key for m in METRICS), *SETTING_METRICS)


class BundleError(UserError):
    """A bundle that cannot be exported or imported; the message says what is wrong (nothing was stored)."""


class AlreadyStored(BundleError):
    """The bundle's run is already in the store (same content digest): nothing was stored. Import it again with
    ``duplicate="copy"`` to keep a second, marked copy."""

    def __init__(self, run_id: str, digest: str) -> None:
        self.run_id, self.digest = run_id, digest
        super().__init__(f"this bundle is already in the store as run {run_id} (same content, digest "
                         f"{digest[:12]}); import it as a copy to keep a second one")


# ---- export ---------------------------------------------------------------------------------------------------


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def bundle_contents(store: RunStore, run_id: str) -> dict[str, Any]:
    """The JSON documents of a bundle for a stored run (raises BundleError for an unknown or unfinished run)."""
    run = store.get_run(run_id)
    if run is None:
        raise BundleError(f"no run {run_id!r} in the store {store.path}")
    if run["status"] not in (RunStatus.DONE, RunStatus.FAILED):
        raise BundleError(f"run {run_id} is still {run['status']}: export it once it has finished")
    variants = store.variants(run_id)
    keep = ("idx", "name", "chain", "lineage", "status", "stage", "progress", "error", "metrics", "notes",
            "started_at", "finished_at")
    preds = {str(v["idx"]): store.predictions(run_id, v["idx"]) for v in variants}
    return {
        "run.json": {k: run.get(k) for k in ("id", "created_at", "finished_at", "status", "error", "stage", "request",
                                             "env")},
        "variants.json": [{k: v.get(k) for k in keep} for v in variants],
        "timelines.json": {str(idx): tl for idx, tl in store.timelines(run_id).items() if tl.get("t")},
        "examples.json": store.examples(run_id),
        "predictions.json": {k: p for k, p in preds.items() if p is not None},
    }


def export_bytes(store: RunStore, run_id: str) -> bytes:
    """The bundle of ``run_id`` as zip bytes: manifest.json (format, version, sha256 of each file) + the JSON files.
    Model files are not included (they can be hundreds of MiB; the bundle carries the measurements)."""
    docs = {name: _json_bytes(value) for name, value in bundle_contents(store, run_id).items()}
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "run_id": run_id,
        "exported_at": now_iso(),
        "files": {name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)} for name, data in docs.items()},
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(MANIFEST, _json_bytes(manifest))
        for name, data in docs.items():
            zf.writestr(name, data)
    return buf.getvalue()


def export_run(store: RunStore, run_id: str, path: Path | str) -> Path:
    """Write the bundle of ``run_id`` to ``path``; returns the path."""
    data = export_bytes(store, run_id)
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    log.info("exported run %s to %s (%d bytes)", run_id, path, len(data))
    return path


# ---- reading and validating -----------------------------------------------------------------------------------


def _raw(source: Path | str | bytes, max_bundle: int) -> bytes:
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise BundleError(f"no bundle file at {path}")
        if path.stat().st_size > max_bundle:
            raise BundleError(f"the bundle {path.name} is {path.stat().st_size:,} bytes, over the {max_bundle:,} "
                              "byte limit")
        data = path.read_bytes()
    if len(data) > max_bundle:
        raise BundleError(f"the bundle is {len(data):,} bytes, over the {max_bundle:,} byte limit")
    return data


def _member_name_problem(name: str) -> str | None:
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in re.split(r"[\\/]", name):
        return f"refused: the entry {name!r} points outside the bundle (path traversal)"
    if name not in (MANIFEST, *FILES):
        return f"refused: unexpected entry {name!r} (a bundle holds only {MANIFEST} and {', '.join(FILES)})"
    return None


def _read_members(data: bytes, max_member: int, max_total: int) -> dict[str, bytes]:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise BundleError("not a run bundle: the file is not a zip archive") from None
    out: dict[str, bytes] = {}
    total = 0
    with zf:
        infos = zf.infolist()
        for info in infos:  # names first: a traversal attempt is named as such
            problem = _member_name_problem(info.filename)
            if problem:
                raise BundleError(problem)
        if len(infos) > len(FILES) + 1:
            raise BundleError(f"refused: {len(infos)} entries, a bundle has at most {len(FILES) + 1}")
        for info in infos:
            if info.filename in out:
                raise BundleError(f"refused: the entry {info.filename!r} appears twice")
            if info.flag_bits & 0x1:
                raise BundleError(f"refused: the entry {info.filename!r} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise BundleError(f"refused: the entry {info.filename!r} uses an unsupported compression method")
            if info.file_size > max_member:
                raise BundleError(f"refused: {info.filename} unpacks to {info.file_size:,} bytes, over the "
                                  f"{max_member:,} byte limit")
            total += info.file_size
            if total > max_total:
                raise BundleError(f"refused: the bundle unpacks to over {max_total:,} bytes")
            if info.file_size > 1024 * 1024 and info.file_size > MAX_RATIO * max(info.compress_size, 1):
                raise BundleError(f"refused: {info.filename} is compressed more than {MAX_RATIO}:1 (a zip bomb?)")
            try:
                with zf.open(info) as fh:
                    body = fh.read(max_member + 1)  # the header may lie: never read past the limit
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
                raise BundleError(f"refused: {info.filename} is damaged ({exc})") from None
            if len(body) > max_member or len(body) != info.file_size:
                raise BundleError(f"refused: {info.filename} is larger than its header says")
            out[info.filename] = body
    return out


def _load(name: str, body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BundleError(f"{name} is not valid JSON: {exc}") from None


def _is_num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _need(cond: bool, msg: str) -> None:
    if not cond:
        raise BundleError(msg)


def _str_or_none(value: Any, what: str) -> None:
    _need(value is None or isinstance(value, str), f"{what} must be text or null, got {type(value).__name__}")


def _check_manifest(manifest: Any, members: dict[str, bytes]) -> None:
    _need(isinstance(manifest, dict), "manifest.json must be a JSON object")
    _need(manifest.get("format") == FORMAT, f"not a run bundle: manifest format is {manifest.get('format')!r}, "
          f"expected {FORMAT!r}")
    version = manifest.get("version")
    _need(isinstance(version, int) and not isinstance(version, bool), f"manifest version must be a whole number, "
          f"got {version!r}")
    _need(version <= VERSION, f"the bundle has version {version}, newer than this installation reads ({VERSION}); "
          "update this installation")
    _need(version >= 1, f"unknown bundle version {version}")
    files = manifest.get("files")
    _need(isinstance(files, dict), "manifest.json: 'files' must be an object")
    for name in FILES:
        _need(name in members, f"the bundle lacks {name}")
        entry = files.get(name)
        _need(isinstance(entry, dict) and isinstance(entry.get("sha256"), str), f"manifest.json: no sha256 for {name}")
        digest = hashlib.sha256(members[name]).hexdigest()
        _need(digest == entry["sha256"], f"{name} does not match its checksum in the manifest (damaged or edited)")


def _check_run(run: Any) -> None:
    _need(isinstance(run, dict), "run.json must be a JSON object")
    rid = run.get("id")
    _need(isinstance(rid, str) and bool(RUN_ID.match(rid)), f"run.json: bad run id {rid!r} (letters, digits, '.', "
          "'_' and '-', at most 64)")
    _need(run.get("status") in RUN_STATUSES, f"run.json: unknown status {run.get('status')!r}")
    _need(run.get("status") in (RunStatus.DONE, RunStatus.FAILED), f"run.json: the run is {run.get('status')}; only finished runs "
          "can be imported")
    _need(isinstance(run.get("created_at"), str), "run.json: 'created_at' must be text")
    for key in ("finished_at", "error", "stage"):
        _str_or_none(run.get(key), f"run.json: {key!r}")
    _need(isinstance(run.get("request"), dict), "run.json: 'request' must be an object")
    _need(isinstance(run.get("env"), dict | None), "run.json: 'env' must be an object")


def _check_metrics(metrics: Any, what: str) -> None:
    _need(isinstance(metrics, dict), f"{what}: 'metrics' must be an object")
    for key in NUMERIC_METRICS:
        value = metrics.get(key)
        _need(value is None or _is_num(value), f"{what}: metric {key!r} must be a number, got {value!r}")
    for key in ("latency_b1_ms", "latency_bN_ms"):
        raw = metrics.get(key)
        _need(raw is None or (isinstance(raw, list) and all(_is_num(x) for x in raw)),
              f"{what}: metric {key!r} must be a list of numbers")


def _check_variants(variants: Any) -> list[int]:
    _need(isinstance(variants, list) and variants, "variants.json must be a non-empty list")
    _need(len(variants) <= MAX_VARIANTS, f"variants.json: {len(variants)} variants, over the {MAX_VARIANTS} limit")
    seen: list[int] = []
    for n, v in enumerate(variants):
        what = f"variants.json: entry {n}"
        _need(isinstance(v, dict), f"{what} must be an object")
        idx = v.get("idx")
        _need(isinstance(idx, int) and not isinstance(idx, bool) and 0 <= idx < MAX_VARIANTS,
              f"{what}: 'idx' must be a whole number 0..{MAX_VARIANTS - 1}, got {idx!r}")
        _need(idx not in seen, f"{what}: variant {idx} appears twice")
        seen.append(idx)
        _need(isinstance(v.get("name"), str) and v["name"].strip() != "", f"{what}: 'name' must be non-empty text")
        _need(v.get("status") in VARIANT_STATUSES, f"{what}: unknown status {v.get('status')!r}")
        _need(isinstance(v.get("chain"), list) and all(isinstance(c, dict) for c in v["chain"]),
              f"{what}: 'chain' must be a list of objects")
        for key in ("lineage", "notes"):
            _need(isinstance(v.get(key), list) and all(isinstance(x, str) for x in v[key]),
                  f"{what}: {key!r} must be a list of text")
        _need(v.get("progress") is None or _is_num(v["progress"]), f"{what}: 'progress' must be a number")
        for key in ("stage", "error", "started_at", "finished_at"):
            _str_or_none(v.get(key), f"{what}: {key!r}")
        _check_metrics(v.get("metrics"), f"{what} ({v['name']})")
    _need(0 in seen, "variants.json: no variant 0 (the original model)")
    return seen


def _idx_key(key: str, known: list[int], what: str) -> int:
    _need(isinstance(key, str) and key.isdigit() and int(key) in known, f"{what}: {key!r} is not a variant of the run")
    return int(key)


def _check_timelines(timelines: Any, known: list[int]) -> dict[int, dict]:
    _need(isinstance(timelines, dict), "timelines.json must be an object")
    out = {}
    for key, tl in timelines.items():
        idx = _idx_key(key, known, "timelines.json")
        what = f"timelines.json: variant {idx}"
        _need(isinstance(tl, dict), f"{what} must be an object")
        t, mib, phases = tl.get("t"), tl.get("mib"), tl.get("phases", [])
        _need(isinstance(t, list) and all(_is_num(x) and math.isfinite(x) for x in t), f"{what}: 't' must be numbers")
        _need(isinstance(mib, list) and all(_is_num(x) and math.isfinite(x) for x in mib),
              f"{what}: 'mib' must be numbers")
        _need(len(t) == len(mib), f"{what}: {len(t)} times but {len(mib)} values")
        _need(isinstance(phases, list) and all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str)
                                               and _is_num(p[1]) for p in phases),
              f"{what}: 'phases' must be [name, seconds] pairs")
        out[idx] = {"t": t, "mib": mib, "phases": phases}
    return out


def _check_examples(ex: Any) -> dict:
    _need(isinstance(ex, dict), "examples.json must be an object")
    texts, labels, names = ex.get("texts"), ex.get("labels"), ex.get("label_names")
    _need(isinstance(texts, list) and all(isinstance(x, str) for x in texts), "examples.json: 'texts' must be text")
    _need(isinstance(names, list) and all(isinstance(x, str) for x in names),
          "examples.json: 'label_names' must be text")
    _need(isinstance(labels, list) and all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < max(len(names), 1)
                                           for x in labels),
          f"examples.json: 'labels' must be class numbers 0..{len(names) - 1}")
    _need(len(texts) == len(labels), f"examples.json: {len(texts)} texts but {len(labels)} labels")
    return {"texts": texts, "labels": labels, "label_names": names}


def _check_predictions(preds: Any, known: list[int], examples: dict) -> dict[int, dict]:
    _need(isinstance(preds, dict), "predictions.json must be an object")
    n, k = len(examples["texts"]), len(examples["label_names"])
    out = {}
    for key, p in preds.items():
        idx = _idx_key(key, known, "predictions.json")
        what = f"predictions.json: variant {idx}"
        _need(isinstance(p, dict), f"{what} must be an object")
        pr, pb = p.get("preds"), p.get("probs")
        _need(isinstance(pr, list) and all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < max(k, 1)
                                           for x in pr), f"{what}: 'preds' must be class numbers 0..{k - 1}")
        _need(isinstance(pb, list) and all(isinstance(row, list) and len(row) == k and all(_is_num(x) for x in row)
                                           for row in pb), f"{what}: 'probs' must be rows of {k} numbers")
        _need(len(pr) == n and len(pb) == n, f"{what}: {len(pr)} predictions for {n} examples")
        out[idx] = {"preds": pr, "probs": pb}
    return out


def read_bundle(source: Path | str | bytes, max_bundle: int = MAX_BUNDLE_BYTES, max_member: int = MAX_MEMBER_BYTES,
                max_total: int = MAX_TOTAL_BYTES) -> dict[str, Any]:
    """Open and validate a bundle (a path or the zip bytes) without storing anything; returns
    ``{"manifest", "run", "variants", "timelines", "examples", "predictions"}``. Raises BundleError saying what is
    wrong. Only JSON is parsed: nothing in a bundle is ever executed or unpickled."""
    members = _read_members(_raw(source, max_bundle), max_member, max_total)
    _need(MANIFEST in members, "not a run bundle: no manifest.json")
    manifest = _load(MANIFEST, members[MANIFEST])
    _check_manifest(manifest, members)
    run = _load("run.json", members["run.json"])
    _check_run(run)
    variants = _load("variants.json", members["variants.json"])
    known = _check_variants(variants)
    examples = _check_examples(_load("examples.json", members["examples.json"]))
    return {
        "manifest": manifest,
        "run": run,
        "variants": variants,
        "timelines": _check_timelines(_load("timelines.json", members["timelines.json"]), known),
        "examples": examples,
        "predictions": _check_predictions(_load("predictions.json", members["predictions.json"]), known, examples),
    }


# ---- content digest -------------------------------------------------------------------------------------------


def content_digest(run: dict, variants: list, timelines: dict, examples: dict, predictions: dict) -> str:
    """sha256 of what a run measured (its request, environment, variants, figures, timelines, examples and
    predictions), without its id and the record of its import: the same run in two stores, or a bundle imported
    twice, has one digest."""
    env = {k: v for k, v in (run.get("env") or {}).items() if k != "imported"}
    core = {k: run.get(k) for k in ("created_at", "finished_at", "status", "error", "request")}
    keep = ("idx", "name", "chain", "status", "error", "metrics")
    doc = {
        "run": {**core, "env": env},
        "variants": [{k: v.get(k) for k in keep} for v in variants],
        "timelines": {str(k): v for k, v in timelines.items()},
        "examples": examples,
        "predictions": {str(k): v for k, v in predictions.items()},
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                                     default=str).encode("utf-8")).hexdigest()


def _stored_digest(store: RunStore, run_id: str) -> str | None:
    run = store.get_run(run_id)
    if run is None:
        return None
    recorded = ((run.get("env") or {}).get("imported") or {}).get("digest")
    if recorded and not (run.get("env") or {}).get("imported", {}).get("copy_of"):
        return str(recorded)
    docs = bundle_contents(store, run_id)
    return content_digest(docs["run.json"], docs["variants.json"], docs["timelines.json"], docs["examples.json"],
                          docs["predictions.json"])


def find_stored(store: RunStore, content: dict[str, Any]) -> tuple[str | None, str]:
    """(id of the stored run with the bundle's content or None, the bundle's digest). Only runs created at the
    same moment can match, so a large store is not re-read."""
    digest = content_digest(content["run"], content["variants"], content["timelines"], content["examples"],
                            {str(k): v for k, v in content["predictions"].items()})
    created = content["run"].get("created_at")
    for r in store.list_runs():
        if r["created_at"] != created or r["status"] not in (RunStatus.DONE, RunStatus.FAILED):
            continue
        if _stored_digest(store, r["id"]) == digest:
            return r["id"], digest
    return None, digest


# ---- import ---------------------------------------------------------------------------------------------------


def import_bundle(store: RunStore, source: Path | str | bytes, on_collision: str = "new", duplicate: str = "refuse",
                  **limits: int) -> str:
    """Validate a bundle and store its run (all or nothing); returns the run id it got.

    ``on_collision``: "new" stores the run under a new id when its id is taken, "refuse" raises BundleError.
    ``duplicate``: when the store already holds the same run (same content digest), "refuse" raises AlreadyStored
    (naming it), "copy" stores a second copy marked as a copy of it (``env.imported.copy_of``).
    Model files are not part of a bundle: imported variants record no artifact (the live A/B box says so)."""
    if on_collision not in COLLISIONS:
        raise BundleError(f"on_collision must be one of {', '.join(COLLISIONS)}, got {on_collision!r}")
    if duplicate not in DUPLICATES:
        raise BundleError(f"duplicate must be one of {', '.join(DUPLICATES)}, got {duplicate!r}")
    check_writable("import a run")
    content = read_bundle(source, **limits)
    same, digest = find_stored(store, content)
    if same is not None and duplicate == "refuse":
        raise AlreadyStored(same, digest)
    run = dict(content["run"])
    source_id = run["id"]
    if store.get_run(source_id) is not None or same is not None:
        if on_collision == "refuse":
            raise BundleError(f"a run with id {source_id} is already in the store; import it under a new id or "
                              "delete that run first")
        run["id"] = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
    env = dict(run.get("env") or {})
    env["imported"] = {
        "from_run": source_id,
        "exported_at": str(content["manifest"].get("exported_at", "?")),
        "imported_at": now_iso(),
        "bundle_version": content["manifest"]["version"],
        "digest": digest,
    }
    if same is not None:
        env["imported"]["copy_of"] = same
    run["env"] = env
    variants = [{**v, "artifact": None} for v in content["variants"]]
    store.insert_run(run, variants, content["timelines"], content["examples"], content["predictions"])
    log.info("imported run %s as %s", source_id, run["id"])
    return run["id"]

"""The run store: runs, variants, RSS timelines, examples and predictions in SQLite (WAL, append-only timelines)."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from profiling import paths
from profiling.schema import (
    JobKind,
    JobRecord,
    JobStatus,
    RunRecord,
    RunStatus,
    RunSummary,
    VariantRecord,
    VariantStatus,
    status_of,
)
from profiling.store import recovery as store_recovery

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # 2: the jobs table (sweeps, sensitivity maps); a schema-1 store gains it on opening
# The statuses as tuples of their StrEnum members (each equal to the string the store holds).
RUN_STATUSES = tuple(RunStatus)
VARIANT_STATUSES = tuple(VariantStatus)
JOB_STATUSES = tuple(JobStatus)
JOB_KINDS = tuple(JobKind)
UNREADABLE = "stored record unreadable"
# A queued run that never got a process after this long is failed by the reaper.
NEVER_STARTED_S = 300.0
# An I/O error with less free space than this where the store lives is a full disk (SQLite needs 32 KiB for its
# WAL index and a few pages for a transaction).
LOW_SPACE_BYTES = 256 * 1024
RECOVERY_KEY = "recovery"  # meta key of the notice about a damaged store this one replaced
# Store files this process has checked for damage, by (path, device, inode): the check reads the whole file once.
_CHECKED: set[tuple[str, int, int]] = set()

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    created_ts REAL NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    error TEXT,
    stage TEXT,
    request TEXT NOT NULL,
    env TEXT,
    pid INTEGER,
    pid_started REAL
);
CREATE TABLE IF NOT EXISTS variants (
    run_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    name TEXT NOT NULL,
    chain TEXT NOT NULL DEFAULT '[]',
    lineage TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL DEFAULT 'pending',
    stage TEXT,
    progress REAL NOT NULL DEFAULT 0,
    error TEXT,
    metrics TEXT NOT NULL DEFAULT '{}',
    notes TEXT NOT NULL DEFAULT '[]',
    artifact TEXT,
    started_at TEXT,
    finished_at TEXT,
    PRIMARY KEY (run_id, idx)
);
CREATE TABLE IF NOT EXISTS timeline (
    run_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    t TEXT NOT NULL,
    mib TEXT NOT NULL,
    phases TEXT NOT NULL,
    PRIMARY KEY (run_id, idx, seq)
);
CREATE TABLE IF NOT EXISTS examples (
    run_id TEXT PRIMARY KEY,
    texts TEXT NOT NULL,
    labels TEXT NOT NULL,
    label_names TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS predictions (
    run_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    preds TEXT NOT NULL,
    probs TEXT NOT NULL,
    PRIMARY KEY (run_id, idx)
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    run_id TEXT,
    created_at TEXT NOT NULL,
    created_ts REAL NOT NULL,
    started_at TEXT,
    started_ts REAL,
    finished_at TEXT,
    finished_ts REAL,
    status TEXT NOT NULL,
    stage TEXT,
    progress REAL NOT NULL DEFAULT 0,
    request TEXT NOT NULL,
    result TEXT,
    error TEXT,
    pid INTEGER,
    pid_started REAL
);
"""

# Variant columns a writer may set, and which of them hold JSON.
_VARIANT_FIELDS = {"name", "chain", "lineage", "status", "stage", "progress", "error", "metrics", "notes", "artifact",
                   "started_at", "finished_at"}
_VARIANT_JSON = {"chain", "lineage", "metrics", "notes"}
# Table -> its columns, read from _SCHEMA: what recovery salvages from a damaged store (meta is written afresh).
_TABLE_COLUMNS: dict[str, list[str]] = {
    name: [w[0] for part in body.split("PRIMARY KEY (")[0].split(",")
           if (w := part.split()) and re.fullmatch(r"[a-z_]+", w[0])]
    for name, body in re.findall(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*?)\);", _SCHEMA, re.DOTALL)
    if name != "meta"
}


class StoreError(RuntimeError):
    """The store file cannot be used (not a SQLite database, corrupt, or from a newer version)."""


READ_ONLY_ENV = "COMPRESSION_READ_ONLY"


class ReadOnlyError(StoreError):
    """The app runs read-only (``COMPRESSION_READ_ONLY=1``): runs cannot be created, imported, deleted, stopped
    or written to (their status, variants, timelines, examples and predictions)."""


def read_only() -> bool:
    """Whether ``$COMPRESSION_READ_ONLY`` makes this installation read-only (1, true, yes or on)."""
    return os.environ.get(READ_ONLY_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def check_writable(action: str) -> None:
    """Refuse a mutation (``action``, e.g. "delete a run") in read-only mode with a clear message."""
    if read_only():
        raise ReadOnlyError(f"cannot {action}: this installation is read-only ({READ_ONLY_ENV} is set)")


def now_iso() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


def _new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def _loads(text: str | None, default: Any, what: str) -> tuple[Any, bool]:
    """Parse a JSON field; on failure log a warning and return (default, False) instead of raising."""
    if text is None:
        return default, True
    try:
        return json.loads(text), True
    except (TypeError, ValueError) as exc:
        log.warning("skipping unreadable %s in the run store: %s", what, exc)
        return default, False


def _dumps(value: Any) -> str:
    # allow_nan=False would reject NaN metrics; keep them as JSON NaN, which json.loads reads back.
    return json.dumps(value, separators=(",", ":"))


def _free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 1 << 62  # cannot tell: not called full


def _read_only_folder(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _process_start(pid: int) -> float | None:
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:  # noqa: BLE001 - gone or inaccessible: unknown start time
        return None


def process_alive(pid: int | None, started: float | None) -> bool:
    """True when ``pid`` runs and is the same process (start time matches: guards against pid reuse)."""
    if not pid:
        return False
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or abs(proc.create_time() - started) <= 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


class RunStore:
    """SQLite run store. Every call opens its own short-lived connection, so a runner process can write
    while the dashboard (other processes, other threads) reads; WAL keeps readers from blocking the writer."""

    def __init__(self, path: Path | str | None = None, timeout_s: float = 30.0):
        self.path = Path(path) if path is not None else paths.store_path()
        self.timeout_s = timeout_s
        # The notice when opening this store found the file damaged, moved it aside and started a new one.
        self.recovery: dict[str, Any] | None = None
        self._check_file()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._recover_if_damaged()

    def _open(self) -> None:
        """Create or check the schema; a store from a newer schema is refused before anything is written to it."""
        try:
            version = self._schema_version()
            if version is not None and version > SCHEMA_VERSION:
                raise StoreError(self._newer(version))
            con = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
            try:  # WAL is a property of the file: set once, outside any transaction
                con.execute(f"PRAGMA busy_timeout={int(self.timeout_s * 1000)}")
                con.execute("PRAGMA journal_mode=WAL")
            finally:
                con.close()
            if version == SCHEMA_VERSION:
                return  # up to date: opening a store for reading takes no write lock
            with self._connect(write=True) as con:
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        con.execute(stmt)
                row = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
                if row is None:
                    con.execute("INSERT INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                elif int(row[0]) > SCHEMA_VERSION:
                    raise StoreError(self._newer(int(row[0])))
                elif int(row[0]) < SCHEMA_VERSION:  # migrations only add tables: existing rows are not touched
                    log.info("run store %s: schema %s -> %d", self.path, row[0], SCHEMA_VERSION)
                    con.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
        except sqlite3.DatabaseError as exc:
            named = self._named(exc, "open")
            if named is None and store_recovery.is_damage(exc):
                self._refuse_text()
            raise (named or StoreError(f"{self.path} is not a usable run store: {exc}")) from None

    def _named(self, exc: sqlite3.Error, doing: str) -> StoreError | None:
        """A StoreError that says what stopped a store read or write (``doing``: "read", "write", "open"): a full
        disk, a read-only file or folder, a lock held by another process, a file that cannot be opened; None for
        other errors (damage is handled by recovery). SQLite's own text stays at the end."""
        name = str(getattr(exc, "sqlite_errorname", "") or "")
        text = str(exc).lower()
        where = f"the run store {self.path}"
        full = name.startswith("SQLITE_FULL") or "database or disk is full" in text
        if not full and (name.startswith("SQLITE_IOERR") or "disk i/o error" in text):
            full = _free_bytes(self.path.parent) < LOW_SPACE_BYTES  # e.g. no room for the WAL index (-shm)
        if full:
            return StoreError(f"disk full: no space left while writing {where}; nothing of this write was stored "
                              f"and earlier runs are intact: free space in {self.path.parent} and try again")
        cant_open = name.startswith("SQLITE_CANTOPEN") or "unable to open database file" in text
        if cant_open and _read_only_folder(self.path.parent):
            return StoreError(f"read-only: cannot open {where}: its folder is on a read-only file system, and "
                              "SQLite writes the store's index file (-shm) beside it even to read it; mount it "
                              "writable or point COMPRESSION_STORE at a writable file")
        if name.startswith("SQLITE_READONLY") or "readonly database" in text:
            return StoreError(f"read-only: cannot {doing if doing != 'read' else 'write'} {where} (the file or its "
                              "folder is read-only); point COMPRESSION_STORE at a writable file")
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "database is locked" in text:
            return StoreError(f"locked: {where} is locked by another process (waited {self.timeout_s:g} s for its "
                              "lock); try again when that process has finished")
        if cant_open:
            return StoreError(f"cannot open {where}: its folder is missing, read-only or not permitted ({exc})")
        if name.startswith("SQLITE_IOERR") or "disk i/o error" in text:
            return StoreError(f"disk error while {doing.removesuffix('e')}ing {where} ({exc}); check the disk "
                              f"holding {self.path.parent} (full, removed or failing?)")
        return None

    def _newer(self, version: int) -> str:
        return (f"the run store {self.path} was written by a newer version of this tool (schema {version}, this "
                f"code knows {SCHEMA_VERSION}); it is left as it is: use that version, or another store file")

    # ---- damage ----------------------------------------------------------------------------------------

    def _recover_if_damaged(self) -> None:
        """Open the store; a damaged file (malformed, truncated, not a database) is moved aside and replaced by a
        new store holding what SQLite can still read from it, with a notice (``self.recovery``, recovery_notice).

        Checked once per process and file (the check reads the whole file); a second process finding the same
        damage waits on a lock and then opens the store the first one made."""
        key = self._file_key()
        if key is None or key in _CHECKED:
            self._open()
            return
        reason = store_recovery.damage(self.path)
        if reason is None:
            self._open()
            _CHECKED.add(key)
            return
        from profiling.filelock import file_lock

        with file_lock(self.path.parent / f".{self.path.name}.recover.lock"):
            reason = store_recovery.damage(self.path)  # another process may have replaced it meanwhile
            if reason is None:
                self._open()
                return
            version = store_recovery.schema_version(self.path)
            if version is not None and version > SCHEMA_VERSION:
                raise StoreError(f"{self._newer(version)}. It is also damaged ({reason})")
            moved = store_recovery.move_aside(self.path)
            self._open()
            rows, problems = store_recovery.salvage(moved, _TABLE_COLUMNS)
            n_runs, n_variants = self._restore(rows)
            self.recovery = {"damaged": str(self.path), "moved_to": str(moved), "reason": reason, "at": now_iso(),
                             "runs": n_runs, "variants": n_variants, "problems": problems}
            self._write([("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                          (RECOVERY_KEY, _dumps(self.recovery)))])
            log.info("%s", store_recovery.describe(self.recovery))
        if (key := self._file_key()) is not None:
            _CHECKED.add(key)

    def _file_key(self) -> tuple[str, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (str(self.path.resolve()), st.st_dev, st.st_ino)

    def _restore(self, rows: dict[str, list[dict[str, Any]]]) -> tuple[int, int]:
        """Insert salvaged rows: runs that kept at least one variant, and only their variants, timelines, examples
        and predictions (a row that breaks a constraint is skipped). Returns (runs, variants) restored."""
        variant_runs = {v.get("run_id") for v in rows.get("variants", [])}
        runs = [r for r in rows.get("runs", []) if r.get("id") in variant_runs]
        kept: set[str] = set()
        counts = {"runs": 0, "variants": 0}
        with self._connect(write=True) as con:
            for table in ("runs", "variants", "timeline", "examples", "predictions", "jobs"):
                for row in runs if table == "runs" else rows.get(table, []):
                    if table not in ("runs", "jobs") and row.get("run_id") not in kept:
                        continue
                    cols = list(row)
                    try:
                        cur = con.execute(f"INSERT OR IGNORE INTO {table} ({', '.join(cols)}) VALUES "
                                          f"({', '.join('?' * len(cols))})", [row[c] for c in cols])
                    except sqlite3.Error as exc:
                        log.warning("skipping an unrecoverable %s row: %s", table, exc)
                        continue
                    if table == "runs" and cur.rowcount:
                        kept.add(row["id"])
                    if table in counts and cur.rowcount:
                        counts[table] += 1
        return counts["runs"], counts["variants"]

    def recovery_notice(self) -> dict[str, Any] | None:
        """The notice left when this store replaced a damaged file (until dismissed), else None."""
        rows = self._query("SELECT value FROM meta WHERE key=?", (RECOVERY_KEY,))
        return _loads(rows[0]["value"], None, "recovery notice")[0] if rows else None

    def dismiss_recovery_notice(self) -> None:
        """Forget the recovery notice (the damaged file stays where it was moved)."""
        check_writable("dismiss the store recovery notice")
        self._write([("DELETE FROM meta WHERE key=?", (RECOVERY_KEY,))])

    def _schema_version(self) -> int | None:
        with self._connect() as con:
            if con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone() is None:
                return None
            row = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0]) if row else None

    def _check_file(self) -> None:
        """Refuse a folder given as the store (someone's text file is refused by _open, binary garbage where the
        store should be is damage, handled by _recover_if_damaged). The file's bytes are not read here: see
        store_recovery.read_head for why a healthy store is only ever read through SQLite."""
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a folder, not a run store file")

    def _refuse_text(self) -> None:
        """After SQLite refused the file: someone's text file (notes, a CSV) is left untouched with its own message."""
        head = store_recovery.read_head(self.path, 512)
        if head and not head.startswith(store_recovery.MAGIC) and store_recovery.looks_like_text(head):
            raise StoreError(f"{self.path} is not a SQLite database (not a run store); move it or pick another path")

    @contextmanager
    def _connect(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """One connection per call: commit on success, roll back on error, always close.

        Writers take the write lock up front (BEGIN IMMEDIATE) so they wait on busy_timeout instead of
        failing when upgrading a read transaction."""
        try:
            con = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
        except sqlite3.Error as exc:
            raise (self._named(exc, "open") or StoreError(f"cannot open the run store {self.path}: {exc}")) from None
        try:
            con.execute(f"PRAGMA busy_timeout={int(self.timeout_s * 1000)}")
            con.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            yield con
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        finally:
            con.close()

    def _query(self, sql: str, args: Sequence[Any] = (), retry: bool = True) -> list[sqlite3.Row]:
        try:
            with self._connect() as con:
                con.row_factory = sqlite3.Row
                return con.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as exc:
            if retry and self._damaged_meanwhile(exc):
                return self._query(sql, args, retry=False)
            raise (self._named(exc, "read") or StoreError(f"cannot read the run store {self.path}: {exc}")) from None

    def _damaged_meanwhile(self, exc: sqlite3.DatabaseError) -> bool:
        """The file was damaged after this store checked it: recover it now (same as on opening); True if done."""
        if not store_recovery.is_damage(exc):
            return False
        if (key := self._file_key()) is not None:
            _CHECKED.discard(key)
        self._recover_if_damaged()
        return self.recovery is not None

    def _write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Run the statements in one transaction (all or nothing)."""
        try:
            with self._connect(write=True) as con:
                for sql, args in statements:
                    con.execute(sql, args)
        except sqlite3.DatabaseError as exc:
            if self._damaged_meanwhile(exc):
                raise StoreError(f"{store_recovery.describe(self.recovery or {})} Try again.") from None
            raise (self._named(exc, "write") or StoreError(f"cannot write the run store {self.path}: {exc}")) from None

    # ---- runs ----------------------------------------------------------------------------------------

    def create_run(self, request: dict) -> str:
        """Store a new queued run and its pending variants; variant 0 is always the original model."""
        check_writable("launch a run")
        variants = list(request.get("variants") or [])
        if not variants or variants[0].get("chain"):
            variants.insert(0, {"name": "original", "chain": []})
        request = {**request, "variants": variants}
        run_id = _new_run_id()
        stmts: list[tuple[str, Sequence[Any]]] = [(
            "INSERT INTO runs(id, created_at, created_ts, status, stage, request) VALUES (?, ?, ?, 'queued', ?, ?)",
            (run_id, now_iso(), time.time(), "waiting to start", _dumps(request)),
        )]
        for idx, v in enumerate(variants):
            chain = list(v.get("chain") or [])
            lineage = v.get("lineage") or [c.get("technique", "?") for c in chain if isinstance(c, dict)]
            stmts.append((
                "INSERT INTO variants(run_id, idx, name, chain, lineage) VALUES (?, ?, ?, ?, ?)",
                (run_id, idx, str(v.get("name") or f"variant {idx}"), _dumps(chain), _dumps(list(lineage))),
            ))
        self._write(stmts)
        return run_id

    def _run_dict(self, row: sqlite3.Row) -> RunRecord:
        request, ok_req = _loads(row["request"], {}, f"request of run {row['id']}")
        env, _ = _loads(row["env"], {}, f"environment of run {row['id']}")
        error = row["error"]
        if not ok_req and not error:
            error = UNREADABLE
        status = status_of(RunStatus, row["status"], RunStatus.FAILED)
        if status != row["status"] and not error:
            error = f"unknown status {row['status']!r} (a store written by another version?)"
        return {
            "id": row["id"],
            "created_at": row["created_at"],
            "finished_at": row["finished_at"],
            "status": status,
            "error": error,
            "stage": row["stage"],
            "request": request if isinstance(request, dict) else {},
            "env": env if isinstance(env, dict) else {},
            "pid": row["pid"],
        }

    def get_run(self, run_id: str) -> RunRecord | None:
        rows = self._query("SELECT * FROM runs WHERE id=?", (run_id,))
        return self._run_dict(rows[0]) if rows else None

    def list_runs(self) -> list[RunSummary]:
        """Every run, newest first, with a summary of its request and progress."""
        rows = self._query("SELECT * FROM runs ORDER BY created_ts DESC, rowid DESC")
        counts = {
            r["run_id"]: (r["n"], r["n_done"])
            for r in self._query(
                "SELECT run_id, COUNT(*) AS n, SUM(status='done') AS n_done FROM variants GROUP BY run_id"
            )
        }
        out: list[RunSummary] = []
        for row in rows:
            run = self._run_dict(row)
            req = run["request"]
            variants = req.get("variants") if isinstance(req.get("variants"), list) else []
            n, n_done = counts.get(run["id"], (0, 0))
            out.append({
                "id": run["id"],
                "created_at": run["created_at"],
                "finished_at": run["finished_at"],
                "status": run["status"],
                "error": run["error"],
                "stage": run["stage"],
                "model": str(req.get("model", "?")),
                "dataset": describe_dataset(req.get("dataset")),
                "techniques": [str(v.get("name", "?")) for v in variants[1:] if isinstance(v, dict)],
                "n_variants": n,
                "n_done": n_done or 0,
                "imported": (run.get("env") or {}).get("imported") or None,  # from a bundle: its origin
            })
        return out

    def delete_run(self, run_id: str) -> None:
        """Remove a run and everything stored for it (its sweeps included), in one transaction."""
        check_writable("delete a run")
        self._write([(f"DELETE FROM {table} WHERE {col}=?", (run_id,)) for table, col in (
            ("timeline", "run_id"), ("predictions", "run_id"), ("examples", "run_id"), ("variants", "run_id"),
            ("jobs", "run_id"), ("runs", "id"))])

    def insert_run(self, run: dict, variants: Sequence[dict], timelines: dict[int, dict], examples: dict | None,
                   predictions: dict[int, dict]) -> None:
        """Store a whole finished run under ``run["id"]`` (profiling.store.bundle validates it first), in ONE transaction:
        all of it is stored or, on any error (e.g. the id exists), nothing."""
        check_writable("import a run")
        stmts: list[tuple[str, Sequence[Any]]] = [(
            ("INSERT INTO runs(id, created_at, created_ts, finished_at, status, error, stage, request, env) "
             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"),
            (run["id"], run["created_at"], time.time(), run.get("finished_at"), run["status"], run.get("error"),
             run.get("stage"), _dumps(run["request"]), _dumps(run.get("env") or {})),
        )]
        for v in variants:
            stmts.append((
                ("INSERT INTO variants(run_id, idx, name, chain, lineage, status, stage, progress, error, metrics, "
                 "notes, artifact, started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                (run["id"], v["idx"], v["name"], _dumps(v.get("chain") or []), _dumps(v.get("lineage") or []),
                 v["status"], v.get("stage"), float(v.get("progress") or 0.0), v.get("error"),
                 _dumps(v.get("metrics") or {}), _dumps(v.get("notes") or []), v.get("artifact"),
                 v.get("started_at"), v.get("finished_at")),
            ))
        for idx, tl in timelines.items():
            stmts.append(("INSERT INTO timeline(run_id, idx, seq, t, mib, phases) VALUES (?, ?, 0, ?, ?, ?)",
                          (run["id"], idx, _dumps(tl["t"]), _dumps(tl["mib"]), _dumps(tl["phases"]))))
        if examples and examples.get("texts"):
            stmts.append(("INSERT INTO examples(run_id, texts, labels, label_names) VALUES (?, ?, ?, ?)",
                          (run["id"], _dumps(examples["texts"]), _dumps(examples["labels"]),
                           _dumps(examples["label_names"]))))
        for idx, p in predictions.items():
            stmts.append(("INSERT INTO predictions(run_id, idx, preds, probs) VALUES (?, ?, ?, ?)",
                          (run["id"], idx, _dumps(p["preds"]), _dumps(p["probs"]))))
        self._write(stmts)

    def set_run_status(self, run_id: str, status: str, error: str | None = None) -> None:
        check_writable("record run progress")
        if status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        status = RunStatus(status).value  # a plain str in the store, whether given a member or its string
        finished = now_iso() if status in (RunStatus.DONE, RunStatus.FAILED) else None
        self._write([("UPDATE runs SET status=?, error=?, finished_at=? WHERE id=?", (status, error, finished, run_id))])

    def set_run_stage(self, run_id: str, stage: str) -> None:
        check_writable("record run progress")
        self._write([("UPDATE runs SET stage=? WHERE id=?", (stage, run_id))])

    def set_run_env(self, run_id: str, env: dict) -> None:
        check_writable("record run progress")
        self._write([("UPDATE runs SET env=? WHERE id=?", (_dumps(env), run_id))])

    def set_run_pid(self, run_id: str, pid: int) -> None:
        """Record the process doing the run and its start time (so a reused pid is not taken for it)."""
        check_writable("record run progress")
        self._write([("UPDATE runs SET pid=?, pid_started=? WHERE id=?", (pid, _process_start(pid), run_id))])

    def process_is_alive(self, run_id: str) -> bool:
        """Whether the process recorded for the run is still the one running it."""
        rows = self._query("SELECT pid, pid_started FROM runs WHERE id=?", (run_id,))
        return bool(rows) and process_alive(rows[0]["pid"], rows[0]["pid_started"])

    def fail_run(self, run_id: str, error: str) -> None:
        """Mark the run failed, and every variant not finished yet failed with the same reason."""
        check_writable("stop a run")
        self._write([
            ("UPDATE runs SET status='failed', error=?, finished_at=? WHERE id=?", (error, now_iso(), run_id)),
            (("UPDATE variants SET status='failed', error=?, finished_at=? "
              "WHERE run_id=? AND status NOT IN ('done', 'failed')"), (error, now_iso(), run_id)),
        ])

    def reap_dead_runs(self) -> int:
        """Fail queued/running runs whose process is gone; finished runs are never touched. Returns the count.

        Read-only, nothing is written (0): the runs are shown as stored; a writable process reaps them."""
        if read_only():
            return 0
        rows = self._query("SELECT id, status, stage, pid, pid_started, created_ts FROM runs "
                           "WHERE status IN ('queued', 'running')")
        reaped = 0
        for row in rows:
            if row["pid"]:
                if process_alive(row["pid"], row["pid_started"]):
                    continue
                stage = row["stage"] or row["status"]
                reason = f"the run's process ended unexpectedly (killed or crashed) during {stage}"
            elif time.time() - row["created_ts"] > NEVER_STARTED_S:
                reason = "the run never started (no process picked it up)"
            else:
                continue
            # Re-check the status inside the write so a run that just finished is left alone.
            self._write([
                (("UPDATE variants SET status='failed', error=?, finished_at=? WHERE run_id=? AND "
                  "status NOT IN ('done', 'failed') AND (SELECT status FROM runs WHERE id=?) IN ('queued', 'running')"),
                 (reason, now_iso(), row["id"], row["id"])),
                ("UPDATE runs SET status='failed', error=?, finished_at=? WHERE id=? AND status IN ('queued', 'running')",
                 (reason, now_iso(), row["id"])),
            ])
            log.warning("run %s marked failed: %s", row["id"], reason)
            reaped += 1
        if reaped:  # a run killed mid-build left its temp artifact folder: nothing half-written stays
            from compression.registry import remove_orphaned_partials

            remove_orphaned_partials(paths.artifacts_dir())
        return reaped

    # ---- jobs (sweeps, sensitivity maps) -------------------------------------------------------------

    def create_job(self, kind: str, request: dict, run_id: str | None = None, job_id: str | None = None) -> str:
        """Store a new queued job of ``kind`` (a JobKind) with its request; ``run_id``: the run it belongs to."""
        check_writable(f"launch a {kind} job")
        if kind not in JOB_KINDS:
            raise ValueError(f"unknown job kind {kind!r}")
        job_id = job_id or _new_run_id()
        self._write([(
            ("INSERT INTO jobs(id, kind, run_id, created_at, created_ts, status, stage, request) "
            "VALUES (?, ?, ?, ?, ?, 'queued', ?, ?)"),
            (job_id, JobKind(kind).value, run_id, now_iso(), time.time(), "waiting to start", _dumps(request)),
        )])
        return job_id

    def _job_dict(self, row: sqlite3.Row) -> JobRecord:
        what = f"job {row['id']}"
        request, ok_req = _loads(row["request"], {}, f"request of {what}")
        result, ok_res = _loads(row["result"], None, f"result of {what}")
        error = row["error"]
        ok = ok_req and ok_res
        return {
            "id": row["id"], "kind": row["kind"], "run_id": row["run_id"],
            "created_at": row["created_at"], "started_at": row["started_at"], "finished_at": row["finished_at"],
            "started_ts": row["started_ts"], "finished_ts": row["finished_ts"],
            "status": status_of(JobStatus, row["status"], JobStatus.FAILED) if ok else JobStatus.FAILED,
            "stage": row["stage"],
            "progress": row["progress"] or 0.0, "error": error if ok else (error or UNREADABLE),
            "request": request if isinstance(request, dict) else {},
            "result": result if ok and isinstance(result, dict) else None, "pid": row["pid"],
        }

    def get_job(self, job_id: str) -> JobRecord | None:
        rows = self._query("SELECT * FROM jobs WHERE id=?", (job_id,))
        return self._job_dict(rows[0]) if rows else None

    def list_jobs(self, kind: str | None = None, run_id: str | None = None, with_results: bool = False) -> list[JobRecord]:
        """Jobs newest first, of one kind and/or one run if given; results left out (None) unless asked for."""
        where, args = [], []
        if kind is not None:
            where.append("kind=?")
            args.append(str(kind))
        if run_id is not None:
            where.append("run_id=?")
            args.append(run_id)
        cols = "*" if with_results else "id, kind, run_id, created_at, created_ts, started_at, started_ts, " \
            "finished_at, finished_ts, status, stage, progress, request, NULL AS result, error, pid, pid_started"
        sql = f"SELECT {cols} FROM jobs" + (" WHERE " + " AND ".join(where) if where else "")
        return [self._job_dict(r) for r in self._query(sql + " ORDER BY created_ts DESC, rowid DESC", args)]

    def start_job(self, job_id: str) -> None:
        """The job got the measuring lock: running from now."""
        check_writable("record job progress")
        self._write([("UPDATE jobs SET status='running', started_at=?, started_ts=?, stage=? WHERE id=?",
                      (now_iso(), time.time(), "starting", job_id))])

    def set_job_progress(self, job_id: str, progress: float, stage: str) -> None:
        check_writable("record job progress")
        self._write([("UPDATE jobs SET progress=?, stage=? WHERE id=?",
                      (min(max(float(progress), 0.0), 1.0), stage, job_id))])

    def finish_job(self, job_id: str, result: dict) -> None:
        """Store the job's result and mark it done."""
        check_writable("record job progress")
        self._write([(("UPDATE jobs SET status='done', result=?, progress=1, stage='done', error=NULL, "
                      "finished_at=?, finished_ts=? WHERE id=?"), (_dumps(result), now_iso(), time.time(), job_id))])

    def fail_job(self, job_id: str, error: str) -> None:
        check_writable("stop a job")
        self._write([(("UPDATE jobs SET status='failed', error=?, finished_at=?, finished_ts=? WHERE id=? "
                      "AND status IN ('queued', 'running')"), (error, now_iso(), time.time(), job_id))])

    def set_job_pid(self, job_id: str, pid: int) -> None:
        check_writable("record job progress")
        self._write([("UPDATE jobs SET pid=?, pid_started=? WHERE id=?", (pid, _process_start(pid), job_id))])

    def job_process_is_alive(self, job_id: str) -> bool:
        rows = self._query("SELECT pid, pid_started FROM jobs WHERE id=?", (job_id,))
        return bool(rows) and process_alive(rows[0]["pid"], rows[0]["pid_started"])

    def delete_job(self, job_id: str) -> None:
        check_writable("delete a job")
        self._write([("DELETE FROM jobs WHERE id=?", (job_id,))])

    def insert_job(self, job: dict) -> bool:
        """Store a finished job as given (an imported result file); False when its id is already stored."""
        check_writable("import a job")
        with self._connect(write=True) as con:
            cur = con.execute(
                "INSERT OR IGNORE INTO jobs(id, kind, run_id, created_at, created_ts, started_at, finished_at, "
                "status, stage, progress, request, result) VALUES (?, ?, ?, ?, ?, ?, ?, 'done', 'done', 1, ?, ?)",
                (job["id"], JobKind(job["kind"]).value, job.get("run_id"), job["created_at"], job["created_ts"],
                 job["created_at"], job["created_at"], _dumps(job.get("request") or {}), _dumps(job["result"])))
            return bool(cur.rowcount)

    def reap_dead_jobs(self) -> int:
        """Fail queued/running jobs whose process is gone (as reap_dead_runs does for runs); returns the count."""
        if read_only():
            return 0
        reaped = 0
        for row in self._query("SELECT id, status, stage, pid, pid_started, created_ts FROM jobs "
                               "WHERE status IN ('queued', 'running')"):
            if row["pid"]:
                if process_alive(row["pid"], row["pid_started"]):
                    continue
                reason = f"the job's process ended unexpectedly (killed or crashed) during {row['stage'] or 'start-up'}"
            elif time.time() - row["created_ts"] > NEVER_STARTED_S:
                reason = "the job never started (no process picked it up)"
            else:
                continue
            self.fail_job(row["id"], reason)
            log.warning("job %s marked failed: %s", row["id"], reason)
            reaped += 1
        return reaped

    def active_records(self) -> list[dict[str, Any]]:
        """The queued and running runs and jobs, oldest first: ``kind`` ('run' or the job kind), ``id``, ``status``,
        ``stage``, ``created_ts``, ``pid``, ``pid_started`` (what the measuring queue is made of), in one read."""
        rows = self._query(
            "SELECT 'run' AS kind, id, status, stage, created_ts, pid, pid_started, rowid AS n FROM runs "
            "WHERE status IN ('queued', 'running') UNION ALL "
            "SELECT kind, id, status, stage, created_ts, pid, pid_started, rowid AS n FROM jobs "
            "WHERE status IN ('queued', 'running') ORDER BY created_ts, n")
        return [{k: v for k, v in dict(row).items() if k != "n"} for row in rows]

    def meta_value(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key=?", (key,))
        return rows[0]["value"] if rows else None

    def set_meta_value(self, key: str, value: str) -> None:
        check_writable("record store metadata")
        self._write([("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))])

    # ---- variants ------------------------------------------------------------------------------------

    def upsert_variant(self, run_id: str, idx: int, **fields: Any) -> None:
        """Set some columns of a variant (creating it if missing); JSON columns take Python values."""
        check_writable("record run progress")
        unknown = set(fields) - _VARIANT_FIELDS
        if unknown:
            raise ValueError(f"unknown variant fields {sorted(unknown)}")
        if "status" in fields and fields["status"] not in VARIANT_STATUSES:
            raise ValueError(f"unknown variant status {fields['status']!r}")
        values = {k: _dumps(v) if k in _VARIANT_JSON else v for k, v in fields.items()}
        cols = list(values)
        insert_cols = ["run_id", "idx", *cols] + ([] if "name" in values else ["name"])
        insert_vals = [run_id, idx, *values.values()] + ([] if "name" in values else [f"variant {idx}"])
        update = ", ".join(f"{c}=excluded.{c}" for c in cols) or "name=name"
        sql = (f"INSERT INTO variants({', '.join(insert_cols)}) VALUES ({', '.join('?' * len(insert_cols))}) "
               f"ON CONFLICT(run_id, idx) DO UPDATE SET {update}")
        self._write([(sql, insert_vals)])

    def add_variant_note(self, run_id: str, idx: int, note: str) -> None:
        notes = next((v["notes"] for v in self.variants(run_id) if v["idx"] == idx), [])
        if note not in notes:
            self.upsert_variant(run_id, idx, notes=[*notes, note])

    def variants(self, run_id: str) -> list[VariantRecord]:
        """The run's variants in order; a variant whose stored JSON is unreadable shows as failed."""
        out: list[VariantRecord] = []
        for row in self._query("SELECT * FROM variants WHERE run_id=? ORDER BY idx", (run_id,)):
            what = f"variant {row['idx']} of run {run_id}"
            metrics, ok_m = _loads(row["metrics"], {}, f"metrics of {what}")
            lineage, ok_l = _loads(row["lineage"], [], f"lineage of {what}")
            notes, ok_n = _loads(row["notes"], [], f"notes of {what}")
            chain, ok_c = _loads(row["chain"], [], f"chain of {what}")
            ok = ok_m and ok_l and ok_n and ok_c
            out.append({
                "idx": row["idx"],
                "name": row["name"],
                "lineage": lineage if isinstance(lineage, list) else [],
                "chain": chain if isinstance(chain, list) else [],
                "status": status_of(VariantStatus, row["status"], VariantStatus.FAILED) if ok
                else VariantStatus.FAILED,
                "stage": row["stage"],
                "progress": row["progress"] or 0.0,
                "error": row["error"] if ok else UNREADABLE,
                "metrics": metrics if ok and isinstance(metrics, dict) else {},
                "notes": notes if isinstance(notes, list) else [],
                "artifact": row["artifact"],
                "started_at": row["started_at"],
                "finished_at": row["finished_at"],
            })
        return out

    # ---- timelines -----------------------------------------------------------------------------------

    def append_timeline(self, run_id: str, idx: int, samples: Sequence[Sequence[float]],
                        phases: Sequence[Sequence[Any]] = ()) -> None:
        """Append a chunk of RSS samples ``[(t_s, mib), ...]`` and phase marks ``[(name, t_s), ...]``."""
        check_writable("record run progress")
        if not samples and not phases:
            return
        t = [float(s[0]) for s in samples]
        mib = [float(s[1]) for s in samples]
        ph = [[str(p[0]), float(p[1])] for p in phases]
        self._write([(
            ("INSERT INTO timeline(run_id, idx, seq, t, mib, phases) VALUES (?, ?, "
             "(SELECT COALESCE(MAX(seq), -1) + 1 FROM timeline WHERE run_id=? AND idx=?), ?, ?, ?)"),
            (run_id, idx, run_id, idx, _dumps(t), _dumps(mib), _dumps(ph)),
        )])

    def replace_timeline(self, run_id: str, idx: int, samples: Sequence[Sequence[float]],
                         phases: Sequence[Sequence[Any]]) -> None:
        """Make the variant's timeline exactly these samples and phase marks (one transaction): what was streamed
        live is only a preview, and a complete record from the measurement replaces it."""
        check_writable("record run progress")
        t = [float(s[0]) for s in samples]
        mib = [float(s[1]) for s in samples]
        ph = [[str(p[0]), float(p[1])] for p in phases]
        self._write([
            ("DELETE FROM timeline WHERE run_id=? AND idx=?", (run_id, idx)),
            ("INSERT INTO timeline(run_id, idx, seq, t, mib, phases) VALUES (?, ?, 0, ?, ?, ?)",
             (run_id, idx, _dumps(t), _dumps(mib), _dumps(ph))),
        ])

    def timeline(self, run_id: str, idx: int) -> dict:
        """The variant's whole RSS timeline; an unreadable chunk is skipped with a warning."""
        out: dict[str, list] = {"t": [], "mib": [], "phases": []}
        rows = self._query("SELECT seq, t, mib, phases FROM timeline WHERE run_id=? AND idx=? ORDER BY seq",
                           (run_id, idx))
        for row in rows:
            what = f"timeline chunk {row['seq']} of variant {idx} of run {run_id}"
            t, ok_t = _loads(row["t"], [], what)
            mib, ok_m = _loads(row["mib"], [], what)
            phases, ok_p = _loads(row["phases"], [], what)
            if not (ok_t and ok_m and ok_p) or len(t) != len(mib):
                if ok_t and ok_m and ok_p:
                    log.warning("skipping %s: %d times but %d values", what, len(t), len(mib))
                continue
            out["t"].extend(t)
            out["mib"].extend(mib)
            out["phases"].extend(phases)
        return out

    def timelines(self, run_id: str) -> dict[int, dict]:
        """Timelines of every variant of the run, by idx."""
        return {v["idx"]: self.timeline(run_id, v["idx"]) for v in self.variants(run_id)}

    # ---- examples and predictions -------------------------------------------------------------------

    def set_examples(self, run_id: str, texts: Sequence[str], labels: Sequence[int], label_names: Sequence[str]) -> None:
        check_writable("record run progress")
        self._write([(
            "INSERT OR REPLACE INTO examples(run_id, texts, labels, label_names) VALUES (?, ?, ?, ?)",
            (run_id, _dumps(list(texts)), _dumps([int(x) for x in labels]), _dumps(list(label_names))),
        )])

    def examples(self, run_id: str) -> dict:
        """``{"texts", "labels", "label_names"}`` of the evaluation sample (empty lists if missing/unreadable)."""
        rows = self._query("SELECT texts, labels, label_names FROM examples WHERE run_id=?", (run_id,))
        empty = {"texts": [], "labels": [], "label_names": []}
        if not rows:
            return empty
        what = f"examples of run {run_id}"
        values = {}
        for key in empty:
            values[key], ok = _loads(rows[0][key], [], what)
            if not ok:
                return empty
        return values

    def set_predictions(self, run_id: str, idx: int, preds: Sequence[int], probs: Sequence[Sequence[float]]) -> None:
        check_writable("record run progress")
        self._write([(
            "INSERT OR REPLACE INTO predictions(run_id, idx, preds, probs) VALUES (?, ?, ?, ?)",
            (run_id, idx, _dumps([int(p) for p in preds]), _dumps([[float(x) for x in row] for row in probs])),
        )])

    def predictions(self, run_id: str, idx: int) -> dict | None:
        rows = self._query("SELECT preds, probs FROM predictions WHERE run_id=? AND idx=?", (run_id, idx))
        if not rows:
            return None
        what = f"predictions of variant {idx} of run {run_id}"
        preds, ok_a = _loads(rows[0]["preds"], None, what)
        probs, ok_b = _loads(rows[0]["probs"], None, what)
        if not (ok_a and ok_b):
            return None
        return {"preds": preds, "probs": probs}


def describe_dataset(spec: Any) -> str:
    """A short human name for a dataset spec."""
    if not isinstance(spec, dict):
        return "?"
    if spec.get("kind") == "bundled":
        return str(spec.get("name", "?"))
    if spec.get("kind") == "csv":
        return os.path.basename(str(spec.get("path", "?")))
    return "?"

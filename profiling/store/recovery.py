"""Damaged run store files: detect the damage, move the file aside (never delete it), salvage the readable rows."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAGIC = b"SQLite format 3\x00"
MAX_SKIPS = 24  # per table: how many unreadable stretches of rows to jump over before giving up on the rest
_TEXT_BYTES = set(range(32, 127)) | {9, 10, 13}


def looks_like_text(head: bytes) -> bool:
    """Whether the first bytes of a file look like someone's text (notes, a CSV), not a damaged binary store."""
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut at the end of the sample
            return False
    return sum(b in _TEXT_BYTES or b >= 128 for b in head) >= 0.95 * len(head)


def is_damage(exc: BaseException) -> bool:
    """A SQLite error that means the file's content is damaged (not a lock, a permission or a full disk)."""
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    text = str(exc).lower()
    return (name.startswith("SQLITE_CORRUPT") or name == "SQLITE_NOTADB" or "malformed" in text
            or "not a database" in text)


def damage(path: Path) -> str | None:
    """Why ``path`` is a damaged SQLite store, or None: absent, empty, healthy, or not ours to judge (a text file
    is refused untouched by the store; a locked or unreadable file is not damaged).

    SQLite itself reads a file it can open: its raw bytes are read (read_head) only once SQLite has refused it."""
    try:
        size = path.stat().st_size
    except OSError:
        return None
    if size == 0:
        return None
    try:
        con = sqlite3.connect(path, timeout=5.0)
        try:
            problems = [row[0] for row in con.execute("PRAGMA quick_check").fetchall() if row[0] != "ok"]
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        if not is_damage(exc):
            return None  # locked, busy, unreadable: not damage
        head = read_head(path, 100)
        if head is None:
            return None
        if not head.startswith(MAGIC):
            if len(head) < len(MAGIC) and MAGIC.startswith(head):
                return f"truncated to {size} bytes"
            return None if looks_like_text(head) else "file is not a database (its first bytes are not SQLite's)"
        if size < 100:
            return f"truncated to {size} bytes (a SQLite header alone is 100)"
        return _with_size(str(exc), head, size)
    if problems:
        more = f" and {len(problems) - 1} more problems" if len(problems) > 1 else ""
        head = read_head(path, 100) or b""
        return _with_size(f"database disk image is malformed ({problems[0]}{more})", head, size)
    return None


def read_head(path: Path, n: int) -> bytes | None:
    """The first ``n`` bytes of a store file that SQLite refused (None when it cannot be read).

    Never call this on a store SQLite can open: POSIX record locks belong to the process, and closing ANY
    descriptor of a file drops every lock this process holds on it, SQLite's included (sqlite.org/howtocorrupt.html
    2.2). In WAL mode that lets another process's closing connection take itself for the last one, checkpoint and
    delete the -wal and -shm files under this process's open connections, whose later commits are lost."""
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError:
        return None


def _with_size(reason: str, head: bytes, size: int) -> str:
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    declared = page_size * int.from_bytes(head[28:32], "big")
    if declared > size:
        return f"{reason}; the file is truncated: {size} bytes of the {declared} its header declares"
    return reason


def schema_version(path: Path) -> int | None:
    """The schema version a (possibly damaged) store file records, when that much can still be read."""
    try:
        con = _open_readonly(path)
    except sqlite3.Error:
        return None
    try:
        row = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0]) if row else None
    except (sqlite3.Error, TypeError, ValueError):
        return None
    finally:
        con.close()


def move_aside(path: Path) -> Path:
    """Rename ``path`` (and its -wal/-shm files, which hold committed data) to ``<name>.damaged-<timestamp>``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    os.rename(path, target)
    for suffix in ("-wal", "-shm"):
        side = Path(f"{path}{suffix}")
        if side.exists():
            os.rename(side, Path(f"{target}{suffix}"))
    log.info("moved the damaged run store %s to %s", path, target)
    return target


def salvage(path: Path, tables: dict[str, list[str]]) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """Every row SQLite can still read from ``tables`` (name -> wanted columns) of the store file at ``path``.

    Rows are read in rowid order; where a stretch cannot be read, reading jumps ahead (1, 4, 16, ... rowids) up to
    MAX_SKIPS times. Returns (rows per table, problems met)."""
    problems: list[str] = []
    try:
        con = _open_readonly(path)
    except sqlite3.Error as exc:
        return {}, [f"cannot open it at all: {exc}"]
    out: dict[str, list[dict[str, Any]]] = {}
    try:
        for table, wanted in tables.items():
            try:
                have = {r[1] for r in con.execute(f"PRAGMA table_info({table})").fetchall()}
            except sqlite3.Error as exc:
                problems.append(f"table {table}: {exc}")
                continue
            columns = [c for c in wanted if c in have]
            if not have and _absent(con, table):  # a table of a later schema (e.g. jobs in a schema-1 store)
                continue
            if not columns:
                problems.append(f"table {table}: not readable" if not have else f"table {table}: no known column")
                continue
            rows, skipped = _read_rows(con, table, columns)
            out[table] = rows
            if skipped:
                problems.append(f"table {table}: {skipped} unreadable stretch(es) skipped")
    finally:
        con.close()
    return out, problems


def _absent(con: sqlite3.Connection, table: str) -> bool:
    """Whether the file's schema has no such table (as opposed to one that cannot be read)."""
    try:
        return con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)).fetchone() is None
    except sqlite3.Error:
        return False


def _read_rows(con: sqlite3.Connection, table: str, columns: list[str]) -> tuple[list[dict[str, Any]], int]:
    rows: list[dict[str, Any]] = []
    last, step, skipped = -(2**63), 1, 0
    sql = f"SELECT rowid, {', '.join(columns)} FROM {table} WHERE rowid > ? ORDER BY rowid"
    while skipped <= MAX_SKIPS:
        try:
            for row in con.execute(sql, (last,)):
                last, step = row[0], 1
                rows.append(dict(zip(columns, row[1:])))
            break
        except sqlite3.DatabaseError:
            skipped += 1
            last = max(last, 0) + step
            step *= 4
    return rows, skipped


def _open_readonly(path: Path) -> sqlite3.Connection:
    """Read-only, so salvaging never changes the damaged copy (immutable when its WAL index cannot be opened)."""
    last: sqlite3.Error | None = None
    for mode in ("mode=ro", "immutable=1"):
        con = sqlite3.connect(f"file:{path}?{mode}", uri=True, timeout=5.0)
        # Lets the schema be read when a table's root page lies past the end of a truncated file (which would
        # make every statement fail as "malformed"); harmless on a read-only connection.
        con.execute("PRAGMA writable_schema=ON")
        try:
            con.execute("SELECT name FROM sqlite_master").fetchall()
            return con
        except sqlite3.DatabaseError as exc:
            if is_damage(exc):  # even with a damaged schema page some tables may still be readable
                return con
            con.close()
            last = exc
    assert last is not None
    raise last


def describe(notice: dict[str, Any]) -> str:
    """One paragraph for the app and the CLI: which file was damaged, where it went, what was recovered."""
    text = (f"The run store {notice.get('damaged')} was damaged ({notice.get('reason')}). It was moved to "
            f"{notice.get('moved_to')} (not deleted) and a new store was started")
    runs, variants = notice.get("runs", 0), notice.get("variants", 0)
    if runs:
        text += f" with what SQLite could still read: {runs} run(s) and {variants} variant(s)"
    else:
        text += "; no run could be read from the damaged file"
    if notice.get("problems"):
        text += f" (not read: {'; '.join(notice['problems'][:3])})"
    return text + "."

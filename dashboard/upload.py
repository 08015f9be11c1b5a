"""The CSV upload on the Run page: size limit, content-addressed storage, column choice and a summary."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import streamlit as st

from compression.errors import DiskWriteError, UserError, write_failure
from dashboard import state
from dashboard.guard import problem
from profiling import paths
from profiling.inputs.datasets import SNIFF_BYTES

MAX_UPLOAD_MIB = 200  # the same limit as .streamlit/config.toml's server.maxUploadSize


def upload_picker() -> tuple[dict[str, Any] | None, list[str]]:
    upload = st.file_uploader(
        "CSV file",
        type=["csv", "tsv"],
        key="dataset_upload",
        help=f"A header row, one text column and one label column (names or integers). Up to {MAX_UPLOAD_MIB} MiB. "
        "The file is stored in the data folder and read as plain text.",
    )
    if upload is None:
        return None, problem("Upload a CSV file, or pick a bundled dataset.", missing=True)
    try:
        path, digest, columns = accept_upload(upload.getvalue(), upload.name)
    except UploadRefused as exc:
        return None, problem(str(exc))
    c1, c2 = st.columns(2)
    text_col = c1.selectbox(
        "Text column",
        columns,
        index=_guess(columns, ("text", "sentence", "review", "tweet", "content")),
        key=f"csv_text_{digest}",
        help="The column holding the texts to classify.",
    )
    label_col = c2.selectbox(
        "Label column",
        columns,
        index=_guess(columns, ("label", "labels", "category", "class", "sentiment", "target"), fallback=1),
        key=f"csv_label_{digest}",
        help="The column holding each text's class (a name or an integer).",
    )
    if text_col == label_col:
        return None, problem("Choose different columns for the text and the label.")
    try:
        summary = summarize_upload(path, digest, upload.name, text_col, label_col)
    except UploadRefused as exc:
        return None, problem(str(exc))
    st.caption(
        f"{summary['n_train']} train / {summary['n_test']} test rows; classes: "
        f"{', '.join(summary['label_names'][:12])}{' …' if len(summary['label_names']) > 12 else ''}. {summary['note']}"
    )
    return {"kind": "csv", "path": str(path), "text_column": text_col, "label_column": label_col}, []


class UploadRefused(UserError):
    """An uploaded file that cannot be used as a dataset; the message says why (shown as is)."""


def accept_upload(data: bytes, name: str) -> tuple[Path, str, list[str]]:
    """What the upload widget does with an uploaded file: refuse it when empty, over the size limit or not text
    (an executable, an archive, ...: nothing is stored then), store it, and read its header. Returns (path, digest,
    columns); raises UploadRefused with the message for the page."""
    from profiling.inputs.datasets import binary_kind, describe_binary

    if not data.strip():
        raise UploadRefused(f"{name} is empty: there is nothing to read.")
    if len(data) > MAX_UPLOAD_MIB * 2**20:
        raise UploadRefused(f"{name} is {len(data):,} bytes ({len(data) / 2**20:.1f} MiB); the limit is "
                            f"{MAX_UPLOAD_MIB:g} MiB. It was not stored: upload a sample of it.")
    kind = binary_kind(data[:SNIFF_BYTES])
    if kind is not None:
        raise UploadRefused(f"{name} is {describe_binary(kind)}, not a CSV text file; it was not stored.")
    try:
        path, digest = save_upload(data, name)
    except DiskWriteError as exc:
        raise UploadRefused(f"Cannot store {name}: {exc}") from None
    try:
        columns = state.csv_columns(str(path), digest)
    except ValueError as exc:
        raise UploadRefused(f"Cannot read {name}: {exc}") from None
    if len(columns) < 2:
        raise UploadRefused(
            f"{name} has {len(columns)} column(s) ({', '.join(map(repr, columns)) or 'none'}); it needs a "
            "text column and a label column (is it comma-, semicolon- or tab-separated with a header row?)."
        )
    return path, digest, columns


def summarize_upload(path: Path, digest: str, name: str, text_col: str, label_col: str) -> dict[str, Any]:
    """Load a stored upload with the chosen columns: rows, classes and the reader's note (delimiter, encoding,
    rows dropped); raises UploadRefused when it cannot be used."""
    try:
        summary = state.csv_summary(str(path), digest, text_col, label_col)
    except ValueError as exc:
        raise UploadRefused(f"{name} cannot be used: {exc}") from None
    if len(summary["label_names"]) < 2:
        raise UploadRefused(f"{name}: the label column {label_col!r} has a single class; it needs at least two.")
    return summary


def save_upload(data: bytes, name: str) -> tuple[Path, str]:
    """Store the uploaded bytes as ``<data>/uploads/<hash>.csv`` (content-addressed; never unpickled)."""
    digest = hashlib.sha256(data).hexdigest()[:16]
    folder = paths.data_dir() / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".tsv" if name.lower().endswith(".tsv") else ".csv"
    path = folder / f"{digest}{suffix}"
    if not path.is_file():
        tmp = path.with_suffix(suffix + ".partial")
        try:
            tmp.write_bytes(data)
            tmp.replace(path)
        except OSError as exc:  # e.g. a full disk: no half-written upload stays
            tmp.unlink(missing_ok=True)
            disk = write_failure(exc, f"the upload {name}", folder)
            if disk is not None:
                raise disk from exc
            raise
    return path, digest


def _guess(columns: list[str], names: tuple[str, ...], fallback: int = 0) -> int:
    lower = [c.lower() for c in columns]
    for name in names:
        if name in lower:
            return lower.index(name)
    return min(fallback, len(columns) - 1)

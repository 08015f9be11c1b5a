"""PNG and SVG download buttons under a chart, for slides (profiling.report.export does the drawing)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from profiling.report import export


def buttons(fig: Any, name: str, key: str) -> None:
    """"PNG" and "SVG" download buttons for ``fig`` (drawn only when clicked), or why they cannot be offered."""
    reason = export.unavailable()
    if reason:
        st.caption(f"PNG/SVG export is off here: {reason}. The camera icon above the chart still saves a PNG.")
        return
    cols = st.columns([1, 1, 6])
    for col, fmt in zip(cols, export.FORMATS, strict=False):
        col.download_button(
            fmt.upper(),
            data=lambda f=fmt: export.figure_bytes(fig, f),
            file_name=f"{name}.{fmt}",
            mime=export.FORMATS[fmt],
            icon=":material/image:",
            key=f"{key}_{fmt}",
            on_click="ignore",
            help=f"This chart as a {fmt.upper()} file for slides (drawn here, offline; takes a few seconds).",
        )

"""Charts as PNG and SVG files for slides: plotly's static export through kaleido, which draws the figure in a
local headless Chromium. Nothing is fetched: plotly.js comes from the installed plotly package and MathJax (only
needed for LaTeX labels, which no chart here has) is switched off, so it works in a room without internet."""

from __future__ import annotations

import importlib.util
from typing import Any

from compression.errors import UserError

FORMATS = {"png": "image/png", "svg": "image/svg+xml"}
WIDTH_PX = 1200  # a slide-wide chart; PNGs are drawn at twice this for a sharp projector image
PNG_SCALE = 2


class ExportUnavailable(UserError):
    """Static export cannot run here (kaleido or a Chromium is missing); the message says what to install."""


def unavailable() -> str | None:
    """Why PNG/SVG export cannot run here, or None when it can (kaleido installed; it finds Chromium itself)."""
    if importlib.util.find_spec("kaleido") is None:
        return "the kaleido package is not installed (pip install -r requirements.txt)"
    return None


def page_scripts() -> list[Any]:
    """The scripts of the page kaleido draws in (plotly.js from the installed package, no MathJax)."""
    from kaleido import PageGenerator

    return list(PageGenerator(mathjax=False)._scripts)


def figure_bytes(fig: Any, fmt: str, width: int = WIDTH_PX, height: int | None = None) -> bytes:
    """The figure as PNG or SVG bytes (the figure's own height unless given)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    reason = unavailable()
    if reason:
        raise ExportUnavailable(f"PNG/SVG export needs kaleido: {reason}")
    import kaleido
    import plotly.graph_objects as go
    from kaleido.errors import ChromeNotFoundError

    fig = go.Figure(fig)  # a copy: the page's figure keeps its tight margins
    fig.update_layout(margin={"l": 80, "r": 30, "t": 90, "b": 60})  # the app's automargin does not apply here
    height = height or int(fig.layout.height or 450)
    opts = {"format": fmt, "width": width, "height": height, "scale": PNG_SCALE if fmt == "png" else 1}
    try:
        return bytes(kaleido.calc_fig_sync(fig, opts=opts, kopts={"mathjax": False}))
    except ChromeNotFoundError as exc:
        raise ExportUnavailable("PNG/SVG export needs a Chrome or Chromium for kaleido to draw in (e.g. apt-get "
                                "install chromium, or set BROWSER_PATH to its executable)") from exc

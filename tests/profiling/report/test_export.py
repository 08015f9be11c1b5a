"""PNG/SVG export of the charts: drawn by kaleido in a local Chromium, with nothing fetched from the network."""

from __future__ import annotations

import pytest

from profiling.report import export
from profiling.report import figures as plots
from tests.profiling.report.test_plots import _frame


def test_the_export_page_loads_no_script_from_the_network():
    scripts = [s[0] if isinstance(s, tuple) else str(s) for s in export.page_scripts()]
    assert scripts and all(s.startswith("file:") for s in scripts), scripts  # plotly.js of the installed package
    assert not any("mathjax" in s.lower() for s in scripts)


def test_bad_format_is_refused():
    with pytest.raises(ValueError, match="format must be one of png, svg"):
        export.figure_bytes(plots.tradeoff_scatter(_frame(), "disk_mib"), "gif")


@pytest.mark.slow
def test_a_chart_exports_as_png_and_svg():
    fig = plots.tradeoff_scatter(_frame(), "latency_b1_median_ms")
    svg = export.figure_bytes(fig, "svg")
    assert svg.lstrip().startswith(b"<svg") and b"onnx-int8" in svg  # the labels are text in the SVG
    png = export.figure_bytes(fig, "png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width = int.from_bytes(png[16:20], "big")
    assert width == export.WIDTH_PX * export.PNG_SCALE

"""The HTML report: one self-contained file (plotly.js inline, no remote scripts) with every section and chart."""

from __future__ import annotations

import re
import subprocess
import sys

from profiling.report.html import build_html, write_html
from tests.helpers.fake_runs import INT8_CHANGED, TEXTS, fake_store


def test_report_is_self_contained_and_has_the_charts(tmp_path):
    store, run_id = fake_store(tmp_path, with_failed=True)
    page = build_html(store, run_id)
    # no script, stylesheet or image is fetched from the network
    assert not re.search(r"<script[^>]+src=[\"']?(https?:)?//", page, re.IGNORECASE)
    assert not re.search(r"<link[^>]+href=[\"']?(https?:)?//", page, re.IGNORECASE)
    assert len(re.findall(r"\* plotly\.js v\d", page)) == 1  # the library itself is inline, exactly once
    assert len(page) > 1_000_000  # plotly.min.js is ~4.6 MB: it must be in the file
    # charts: 2 tradeoff scatters + memory + original confusion + 2 differences (onnx, onnx-int8)
    assert page.count('class="plotly-graph-div"') == 6
    assert page.count("Pareto frontier") >= 2
    for section in ("Summary", "Tradeoffs", "Memory timelines", "Prediction changes", "Environment fingerprint",
                    "Methodology"):
        assert f"<h2>{section}</h2>" in page
    # the table has the ratios; onnx-int8 is 22 / 87 = 0.25x the size of the original
    assert "Size ratio" in page and "0.25\u00d7" in page
    # the changed examples are listed, text escaped
    for i in INT8_CHANGED:
        assert TEXTS[i] in page
    assert "onnx-int8: 3 of 12 predictions changed" in page
    assert "Fake CPU" in page  # environment
    assert "resident set size" in page and "2 CPU thread(s)" in page  # methodology
    assert "torch.jit.trace failed" in page  # the failed variant's reason
    # it opens with the Results page's headline: the recommendation (no limits: within noise assumed), first
    head = page.index('<p class="headline"')
    assert head < page.index("<h2>Summary</h2>")
    line = page[head:page.index("</p>", head)]
    assert "<b>Recommended: onnx-int8</b>" in line and "<b>0.25\u00d7 the size</b> on disk" in line
    assert "accuracy \u22128.3 points (95 % CI" in line and "within noise of the original" in line


def test_report_escapes_stored_text_and_cli_writes_it(tmp_path, capsys):
    from profiling.cli import main

    store, run_id = fake_store(tmp_path)
    store.add_variant_note(run_id, 1, "<script>alert('x')</script>")
    page = build_html(store, run_id)
    assert "<script>alert('x')</script>" not in page
    assert "&lt;script&gt;alert(" in page
    out = tmp_path / "r.html"
    assert main(["report", run_id, "-o", str(out), "--store", str(store.path)]) == 0
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert main(["report", "nope", "--store", str(store.path)]) == 2
    assert "no run 'nope'" in capsys.readouterr().err
    assert write_html(store, run_id, tmp_path / "sub" / "x.html").is_file()


def test_report_module_does_not_import_streamlit():
    code = "import sys, profiling.report.html, profiling.store.bundle; print('streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

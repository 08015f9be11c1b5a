"""A page started without app.py goes through it; the dashboard package itself loads no Streamlit."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO


def test_a_page_started_without_app_py_runs_it_once(monkeypatch):
    """Streamlit's legacy pages/ mode (a deep link on a fresh server, an AppTest page switch): app.py runs first."""
    from streamlit.runtime.pages_manager import PagesManager

    from dashboard import entry

    ran, stopped = [], []
    monkeypatch.setattr(entry.runpy, "run_path", lambda path, run_name: ran.append((path, run_name)))
    monkeypatch.setattr(entry.st, "stop", lambda: stopped.append(True))
    monkeypatch.setattr(PagesManager, "uses_pages_directory", True)
    entry.through_app()
    assert ran == [(str(entry.APP), "__main__")] and stopped == [True]
    assert PagesManager.uses_pages_directory is False  # never loops
    entry.through_app()  # app.py's st.navigation has run: nothing more to do
    assert len(ran) == 1 and len(stopped) == 1


def test_the_html_report_builds_without_streamlit(tmp_path):
    """profiling.report.html (the CLI's report) loads no Streamlit, and neither does importing the dashboard package."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from tests.helpers.fake_runs import fake_store\n"
        "from profiling.report.html import build_html\n"
        "import dashboard\n"
        "store, run_id = fake_store(Path(sys.argv[1]), with_failed=True)\n"
        "page = build_html(store, run_id)\n"
        "assert '<html' in page.lower() and run_id in page, page[:200]\n"
        "assert 'streamlit' not in sys.modules, sorted(m for m in sys.modules if 'streamlit' in m)[:5]\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], check=False, cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "ok"

"""Streamlit-side helpers for the dashboard pages (the engine lives in compression/ and profiling/)."""


def _leave_legacy_pages_mode() -> None:
    """Make a deep link on a fresh server go through app.py.

    Why: a folder named ``pages/`` next to ``app.py`` makes Streamlit start in its legacy multipage mode, which
    lasts until app.py has called ``st.navigation`` once. The first visit after a server start to ``/results?run=...``
    or ``/history`` would run that page file alone (legacy sidebar, no page config). Every page imports this
    package, so the first such run switches the mode off, as st.navigation itself does, and reruns the same page
    (same page hash, same query) through app.py. Outside a script run (unit tests, the CLI) it does nothing.

    Still needed beside dashboard.entry.through_app (which runs app.py in place on later such runs): without this
    first rerun a fresh server answers a deep link with "Page not found" (tests/browser/test_share_browser.py).
    It loads no Streamlit of its own: the CLI and profiling.report.html stay free of it (tests/dashboard/test_entry.py)."""
    import sys

    if "streamlit" not in sys.modules:  # no Streamlit loaded (the CLI, a script): nothing to fix
        return
    try:
        from streamlit.runtime.pages_manager import PagesManager
        from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx
    except ImportError:  # another Streamlit layout: nothing to fix
        return
    if PagesManager.uses_pages_directory and get_script_run_ctx(suppress_warning=True) is not None:
        import streamlit as st

        PagesManager.uses_pages_directory = False
        st.rerun()


_leave_legacy_pages_mode()

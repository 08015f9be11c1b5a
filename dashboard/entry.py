"""Every page is drawn through app.py (login, read-only page list, share view): a page started without it runs it."""

from __future__ import annotations

import logging
import runpy
from pathlib import Path

import streamlit as st

log = logging.getLogger(__name__)

APP = Path(__file__).resolve().parents[1] / "app.py"


def through_app() -> None:
    """Run app.py in place (then stop) when this page script was started without it.

    A ``pages/`` folder beside app.py puts Streamlit in its legacy multipage mode until the first
    ``st.navigation`` call (a process-wide flag): until then a request for a page (a tab reconnecting after a
    restart; every page switch of AppTest, which resets the flag per run) runs ``pages/<name>.py`` directly,
    skipping app.py's login gate and its read-only page list. app.py's ``st.navigation`` clears the flag, so
    seeing it set here means app.py has not run: run it now, in this same script run (a click is not lost, as it
    would be by a rerun); its navigation draws the page it allows, and this outer copy draws nothing."""
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a Streamlit without the legacy mode: every run starts in app.py
        return
    if not PagesManager.uses_pages_directory:
        return
    PagesManager.uses_pages_directory = False  # app.py's st.navigation would clear it too; never loop
    log.debug("a page was started without app.py (legacy pages/ mode): running app.py first")
    runpy.run_path(str(APP), run_name="__main__")
    st.stop()

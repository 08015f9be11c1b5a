"""Compression Explorer: the Streamlit entry point (`streamlit run app.py`); registers the pages."""

from pathlib import Path

import streamlit as st

from dashboard import auth, build_status, share, store_health

ICON = Path(__file__).parent / "dashboard" / "assets" / "icon.png"  # served by the app: a demo room may be offline

st.set_page_config(page_title="Compression Explorer", page_icon=str(ICON), layout="wide")
auth.require_login()  # with an [auth] section in .streamlit/secrets.toml: a login prompt and nothing else
pg = st.navigation(
    share.allowed_pages([
        st.Page("pages/run.py", title="Run", default=True, icon=":material/play_circle:"),
        st.Page("pages/results.py", title="Results", icon=":material/insights:"),
        st.Page("pages/history.py", title="History", icon=":material/history:"),
        st.Page("pages/sensitivity.py", title="Sensitivity", icon=":material/grid_on:"),
        st.Page("pages/demo.py", title="Demo", icon=":material/slideshow:"),
    ]),
    position=share.nav_position(),
)
store_health.notice()  # a damaged store moved aside and recovered: said once per session, on any page
if not share.shared_view():
    build_status.status_box()  # the default classifiers' build while it runs or after it failed, on every page
pg.run()

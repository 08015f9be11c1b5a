"""The app shell's word on the run store: a damaged file that was moved aside and recovered, or a store it cannot use."""

from __future__ import annotations

import logging

import streamlit as st

from dashboard import state

log = logging.getLogger(__name__)

SEEN_KEY = "store_notice_seen"


def notice() -> None:
    """Show the recovery notice once per browser session (any page), or why the store cannot be used at all."""
    from profiling.store.recovery import describe
    from profiling.store.runs import StoreError, read_only

    try:
        store = state.get_store()
        found = store.recovery_notice()
    except StoreError as exc:  # e.g. a store from a newer version: refused, left as it is
        st.error(f"The run store cannot be used: {exc}", icon=":material/database:")
        return
    except Exception:  # the shell must never break the app: the page's own guard shows what is wrong
        log.exception("cannot check the run store")
        return
    if not found or st.session_state.get(SEEN_KEY) == found.get("at"):
        return
    st.session_state[SEEN_KEY] = found.get("at")
    st.warning(describe(found), icon=":material/healing:")
    if not read_only():
        st.button("Don't show this again", key="dismiss_store_notice", on_click=store.dismiss_recovery_notice,
                  help="Forgets the notice for every session; the damaged file stays where it was moved.")

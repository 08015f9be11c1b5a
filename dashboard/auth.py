"""Login before any page when ``.streamlit/secrets.toml`` has an ``[auth]`` section (Streamlit's OIDC ``st.login``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import streamlit as st

log = logging.getLogger(__name__)

PROVIDER_KEYS = ("client_id", "server_metadata_url")  # an [auth] section with these is the default provider


class _Unreadable(Exception):
    """A secrets file exists but cannot be read: fail closed (it may hold the [auth] section)."""


def _auth_section() -> Mapping | None:
    """The ``[auth]`` secrets, or None when there is none; _Unreadable when a secrets file exists but won't parse."""
    try:
        return st.secrets.get("auth")  # read at call time: AppTest swaps st.secrets for at.secrets
    except FileNotFoundError:  # StreamlitSecretNotFoundError: no secrets file, or one that cannot be parsed
        from streamlit import config

        present = [p for p in config.get_option("secrets.files") or [] if Path(p).expanduser().is_file()]
        if present:
            raise _Unreadable(", ".join(present)) from None
        return None


def configured() -> bool:
    """Whether the app requires a login (an ``[auth]`` secrets section); an unreadable secrets file counts as yes."""
    try:
        return _auth_section() is not None
    except _Unreadable:
        return True


def providers(section: Mapping) -> list[str | None]:
    """The providers to offer: None for the default one (keys directly under [auth]), else the named sub-sections."""
    named = [str(k) for k, v in section.items() if isinstance(v, Mapping)]
    if any(k in section for k in PROVIDER_KEYS) or not named:
        return [None, *named]
    return named


def _logged_in() -> bool:
    try:
        return bool(st.user.get("is_logged_in", False))
    except Exception:  # noqa: BLE001 - no user info at all: not logged in
        return False


def _login(provider: str | None) -> None:
    from streamlit.errors import StreamlitAuthError

    try:
        st.login(provider) if provider else st.login()
    except StreamlitAuthError as exc:  # Authlib missing, or incomplete credentials: say so, stay locked
        log.warning("login failed: %s", exc)
        st.error(f"Cannot log in: {exc}", icon=":material/lock:")


def _sidebar() -> None:
    who = st.user.get("name") or st.user.get("email") or "signed in"
    with st.sidebar:
        st.caption(f"Signed in as {who}")
        st.button("Log out", icon=":material/logout:", key="auth_logout", on_click=st.logout)


def require_login() -> None:
    """Stop the script with only a login prompt until the user has logged in; a no-op without an [auth] section."""
    try:
        section = _auth_section()
    except _Unreadable as exc:
        st.error(f"The secrets file cannot be read ({exc}), so the login it may configure cannot be checked: the "
                 "app stays locked. Fix the file (TOML) and reload.", icon=":material/lock:")
        st.stop()
        return
    if section is None:
        return
    if _logged_in():
        _sidebar()
        return

    def login() -> None:
        st.title("Compression Explorer")
        st.markdown("This dashboard is shared with a team: log in to see it.")
        for provider in providers(section):
            label = "Log in" if provider is None else f"Log in with {provider}"
            if st.button(label, icon=":material/login:", key=f"auth_login_{provider or 'default'}", type="primary"):
                _login(provider)

    # The login page is the only page there is (no navigation shows the others' names; any address lands here).
    st.navigation([st.Page(login, title="Log in", default=True)], position="hidden").run()
    st.stop()

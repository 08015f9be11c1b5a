"""Errors on a page: the page guard (a UserError as its message, anything else short with details folded away),
and a problem shown beside the control it is about."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import streamlit as st

from compression.errors import UserError

log = logging.getLogger(__name__)


@contextmanager
def page_guard(what: str = "this page", *, headline: str | None = None, advice: str = "") -> Iterator[None]:
    """Go through app.py if this page was started without it, then turn any exception into a short st.error.

    A UserError (the user's input) shows its message only. Anything else (a bug) shows its type and message,
    with where it was raised in a "Details" expander; the full traceback goes to the server log, not the
    browser. ``headline`` replaces "Something went wrong while showing <what>"; ``advice`` follows the message.
    Streamlit's own rerun/stop signals derive from BaseException and pass through untouched."""
    from dashboard.entry import through_app

    through_app()  # a page started without app.py (login, read-only page list) goes through it
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - the last line of defence for a live demo
        show_error(exc, what, headline=headline, advice=advice)


def show_error(exc: Exception, what: str = "this page", *, headline: str | None = None, advice: str = "") -> None:
    """Log ``exc`` and draw it as page_guard does."""
    user_error = isinstance(exc, UserError)
    if user_error:  # the user's input: its message is the whole story
        log.info("refused while drawing %s: %s", what, exc)
    else:
        log.exception("error while drawing %s", what, exc_info=exc)
    text = f"{headline or f'Something went wrong while showing {what}'}: {_message(exc)}"
    if advice:
        text = f"{text}{'' if text.endswith(('.', '!', '?')) else '.'} {advice}"
    st.error(text, icon=":material/error:")
    if not user_error:
        with st.expander("Details"):
            st.code(_details(exc), language=None)


def problem(msg: str, missing: bool = False) -> list[str]:
    """Show a problem next to its control (st.error for bad input, st.info for input not given yet); returns it."""
    if missing:
        st.info(msg, icon=":material/info:")
    else:
        st.error(msg, icon=":material/error:")
    return [msg]


def _message(exc: BaseException) -> str:
    """The exception's text; a bug (not a UserError) is prefixed with its type."""
    text = str(exc).strip() or type(exc).__name__
    return text if isinstance(exc, UserError) else f"{type(exc).__name__}: {text}"


def _details(exc: BaseException) -> str:
    """The type and the innermost frame (file, line, function): enough to report the bug, no source or locals."""
    lines = [f"{type(exc).__module__}.{type(exc).__qualname__}: {str(exc).strip()}"]
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        lines.append(f"raised in {last.name} ({Path(last.filename).name}:{last.lineno})")
    lines.append("The full traceback is in the server log.")
    return "\n".join(lines)

"""dashboard.guard: a UserError is shown as its message; a bug as a short error with its details folded away."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def _guarded(exc_kind: str) -> AppTest:
    def script(kind):
        import streamlit as st

        from compression.errors import UserError
        from dashboard.guard import page_guard

        with page_guard("the test page"):
            st.write("drawn before the failure")
            if kind == "user":
                raise type("FolderRefused", (UserError,), {})("no such folder: /x")
            if kind == "bug":
                raise RuntimeError("disk on fire")

    return AppTest.from_function(script, args=(exc_kind,)).run()


def test_a_user_error_is_its_message_only():
    at = _guarded("user")
    assert not at.exception
    assert [e.value for e in at.error] == ["Something went wrong while showing the test page: no such folder: /x"]
    assert not at.expander  # nothing to report: the message is the whole story


def test_a_bug_is_a_short_error_with_details_in_an_expander():
    at = _guarded("bug")
    assert not at.exception
    assert [e.value for e in at.error] == ["Something went wrong while showing the test page: RuntimeError: disk on fire"]
    assert [x.label for x in at.expander] == ["Details"]
    details = at.expander[0].code[0].value
    assert "builtins.RuntimeError: disk on fire" in details and "raised in script" in details
    assert "/" not in details.split("raised in", 1)[1].split("\n", 1)[0]  # a file name, not the server's paths
    assert at.markdown[0].value == "drawn before the failure"  # what was drawn before stays


def test_no_error_draws_nothing_extra():
    at = _guarded("none")
    assert not at.exception and not at.error and not at.expander


def test_headline_and_advice_replace_the_default_words():
    def script():
        from dashboard.guard import page_guard

        with page_guard("this run", headline="The Results page could not show this run", advice="Reload."):
            raise ValueError("math domain error")

    at = AppTest.from_function(script).run()
    assert [e.value for e in at.error] == ["The Results page could not show this run: ValueError: math domain error. Reload."]


def test_streamlit_control_signals_pass_through():
    def script():
        import streamlit as st

        from dashboard.guard import page_guard

        st.session_state["runs"] = st.session_state.get("runs", 0) + 1
        with page_guard("the test page"):
            if st.session_state["runs"] == 1:
                st.rerun()
            st.stop()
        st.write("never drawn")

    at = AppTest.from_function(script).run()
    assert not at.exception and not at.error
    assert at.session_state["runs"] == 2 and not at.markdown

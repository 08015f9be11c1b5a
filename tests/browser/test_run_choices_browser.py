"""Real browser: the Run page's choices (a ticked technique, batch size, evaluation size) survive going to History
and back in the same session, and a reload of the page."""

from __future__ import annotations

import pytest

from tests.browser.conftest import ARTIFACTS

pytestmark = pytest.mark.browser
TECHNIQUE = "Dynamic int8 quantization (ONNX Runtime)"


def _number(page, key: str):
    return page.locator(f".st-key-{key} input")


def _tick(page):
    return page.locator(".st-key-tick_onnx-int8 input[type=checkbox]")


def _assert_choices(page, where: str) -> None:
    _number(page, "set_batch_size").wait_for(timeout=60_000)
    page.wait_for_timeout(1500)  # the restored values are drawn with the form
    assert _tick(page).is_checked(), where
    assert _number(page, "set_batch_size").input_value() == "4", where
    assert _number(page, "set_eval_size").input_value() == "40", where
    assert not page.locator(".st-key-tick_onnx input[type=checkbox]").is_checked(), where


def test_run_page_choices_survive_navigation_and_reload(app_server, browser_page, screenshot):
    url, _ = app_server
    page = browser_page
    page.set_default_timeout(60_000)
    page.goto(url + "/")
    page.get_by_role("heading", name="Compression Explorer").wait_for()
    page.get_by_role("button", name="Clear techniques").click()
    page.wait_for_timeout(1000)
    page.get_by_text(TECHNIQUE, exact=True).click()
    page.wait_for_timeout(1000)
    for key, value in (("set_batch_size", "4"), ("set_eval_size", "40")):
        box = _number(page, key)
        box.fill(value)
        box.press("Enter")
        page.wait_for_timeout(1000)
    _assert_choices(page, "as chosen")

    # another page of the same session (the sidebar), then back
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="History").click()
    page.get_by_role("heading", name="History").wait_for()
    assert not _number(page, "set_batch_size").count()
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Run").click()
    page.get_by_role("heading", name="Compression Explorer").wait_for()
    _assert_choices(page, "after History and back")
    page.wait_for_function("() => location.search.includes('setup=v1.')", timeout=30_000)

    # a reload: a new session, the URL carries the choices
    page.reload()
    page.get_by_role("heading", name="Compression Explorer").wait_for()
    _assert_choices(page, "after a reload")
    text = page.locator('[data-testid="stMain"]').inner_text()
    assert "ignored" not in text and "no longer apply" not in text
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(".st-key-tick_onnx-int8").scroll_into_view_if_needed()  # the tick and the settings below it
    page.screenshot(path=str(ARTIFACTS / "run-choices-after-reload.png"))
    screenshot(page, "run-choices-after-reload-full-page")

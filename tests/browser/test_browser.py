"""Real-browser test: launch a small real run from the Run page in Chromium, watch it, then check the Results page."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.browser.conftest import ARTIFACTS, REPO

pytestmark = pytest.mark.browser

TECHNIQUES = ("ONNX export (ONNX Runtime)", "Dynamic int8 quantization (ONNX Runtime)")
SETTINGS = {"Repeats": "5", "Evaluation sample": "120"}
RUN_TIMEOUT_S = float(os.environ.get("BROWSER_RUN_TIMEOUT_S", "600"))
CHART = '[data-testid="stPlotlyChart"]'


@pytest.fixture(scope="session")
def default_model() -> None:
    """Build (once, cached in data/models) the default movie-review classifier outside the timed browser run."""
    code = "from profiling.inputs.models import resolve_model; print(resolve_model('default:movie-reviews').path)"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=float(os.environ.get("BROWSER_MODEL_TIMEOUT_S", "5400")),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def _chart(page, title: str):
    return page.locator(CHART).filter(has_text=title)


def _set_up_run(page) -> None:
    page.get_by_role("button", name="Clear techniques").click()
    page.wait_for_timeout(1000)
    for label in TECHNIQUES:
        page.get_by_text(label, exact=True).click()
        page.wait_for_timeout(800)
    for label, value in SETTINGS.items():
        box = page.get_by_label(label, exact=True)
        box.fill(value)
        box.press("Enter")
        page.wait_for_timeout(800)
    launch = page.get_by_role("button", name="Launch")
    launch.wait_for(state="visible")
    assert launch.is_enabled(), page.locator('[data-testid="stMain"]').inner_text()[:3000]


def _wait_for_run(store_path, timeout_s: float) -> dict:
    from profiling.store.runs import RunStore

    store = RunStore(store_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = store.list_runs()
        if runs and runs[0]["status"] in ("done", "failed"):
            return runs[0]
        time.sleep(1.0)
    raise AssertionError(f"the run did not finish within {timeout_s:.0f} s: {store.list_runs()}")


def test_launch_watch_and_explore_results(app_server, browser_page, screenshot, default_model):
    url, store_path = app_server
    page = browser_page
    page.set_default_timeout(60_000)

    # Run page: pick the small real run and launch it.
    page.goto(url + "/")  # the root first: it registers the st.navigation pages for the whole server
    page.get_by_role("heading", name="Compression Explorer").wait_for()
    _set_up_run(page)
    clicked = time.monotonic()
    page.get_by_role("button", name="Launch").click()

    # The live memory timeline appears while the run goes on, then the run finishes.
    page.locator(CHART).first.wait_for(state="visible", timeout=180_000)
    live_after = time.monotonic() - clicked
    run = _wait_for_run(store_path, RUN_TIMEOUT_S)
    finished_after = time.monotonic() - clicked
    assert run["status"] == "done", run
    assert run["n_done"] == run["n_variants"] == 3, run
    results_link = page.get_by_role("link", name="Open the full results")
    results_link.wait_for(state="visible", timeout=30_000)
    assert page.locator(CHART).first.is_visible()
    screenshot(page, "run")

    # Results page: the table, scatters, memory timelines, confusion difference and changed examples.
    results_link.click()
    page.get_by_role("heading", name="Results").wait_for()
    for title in ("Accuracy vs latency", "Accuracy vs size on disk", "Memory (RSS) by phase", "\u2212 original"):
        _chart(page, title).first.wait_for(state="visible", timeout=60_000)
    assert page.locator(".st-key-summary_table [data-testid='stDataFrame']").is_visible()
    assert page.locator(".st-key-changed_examples [data-testid='stDataFrame']").is_visible()
    assert page.get_by_text("changed prediction").first.is_visible()
    memory = _chart(page, "Memory (RSS) by phase").first
    assert memory.locator(".scatterlayer .trace").count() >= 3  # a line per variant (plus peak markers)

    # A click on a cell of the difference heatmap filters the changed examples to that class pair.
    true_box = page.get_by_role("combobox", name="True label")
    assert true_box.input_value() == "any"
    diff = _chart(page, "\u2212 original").first
    diff.scroll_into_view_if_needed()
    box = diff.locator(".nsewdrag").first.bounding_box()
    x, y = box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.75  # (true: 2nd class, predicted: 1st)
    page.mouse.move(x, y)
    page.mouse.click(x, y)
    page.wait_for_function(
        "() => { const e = document.querySelector('input[aria-label=\"True label\"]');"
        " return e && e.value !== 'any'; }",
        timeout=30_000,
    )
    assert page.get_by_role("combobox", name="Predicted as (by the original or the variant)").input_value() != "any"
    screenshot(page, "results")

    timing = {"memory_timeline_visible_after_s": round(live_after, 1), "run_finished_after_s": round(finished_after, 1)}
    (ARTIFACTS / "browser-timing.json").write_text(json.dumps(timing, indent=2))
    print("browser run timing:", timing)

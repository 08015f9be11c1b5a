"""Real browser: a share link shows one run with no Run controls; the HTML report opens with the network off."""

from __future__ import annotations

import pytest

from tests.browser.conftest import ARTIFACTS
from tests.helpers.fake_runs import build_fake_run

pytestmark = pytest.mark.browser
CHART = '[data-testid="stPlotlyChart"]'


def _scenario_run(store) -> str:
    """A finished run of the demo's quick-tour request with fake figures (no model is run)."""
    from dashboard.demo import scenario_request
    from profiling.jobs import runner
    from tests.helpers.fake_runs import METRICS
    request = runner.normalize_request(scenario_request("Quick tour \u00b7 default classifier"))
    run_id = store.create_run(request)
    for idx in range(len(request["variants"])):
        m = {**METRICS[min(idx, 2)], "accuracy": round(0.8 - 0.003 * idx, 3)}
        m["latency_b1_median_ms"] = METRICS[min(idx, 2)]["latency_b1_median_ms"] * (1 - 0.1 * max(idx - 2, 0))
        store.upsert_variant(run_id, idx, status="done", metrics=m, progress=1.0)
    store.set_run_status(run_id, "done")
    return run_id


def test_share_link_and_offline_report(app_server, browser_page, screenshot, tmp_path):
    from profiling.report.html import write_html
    from profiling.store.runs import RunStore

    url, store_path = app_server
    store = RunStore(store_path)
    run_id = build_fake_run(store, with_failed=True)
    _scenario_run(store)
    page = browser_page
    outside: list[str] = []
    page.on("request", lambda req: outside.append(req.url) if not req.url.startswith((url, "data:", "blob:")) else None)

    # 1. the share link: the run's results, no navigation, no Run page controls, no picker. The server has run
    # app.py once before (the app's own page first), as it has for every recipient but the very first: Streamlit
    # then resolves /results by the page's address, which a default page does not have ("Page not found" pop-up).
    page.goto(url)
    page.get_by_role("link", name="Results").first.wait_for(timeout=60_000)
    page.goto(f"{url}/results?run={run_id}&view=shared")
    page.locator(".st-key-summary_table").wait_for(timeout=60_000)
    page.locator(CHART).first.wait_for(timeout=30_000)
    main = page.locator('[data-testid="stMain"]')
    assert "shared, read-only view" in main.inner_text()
    page.wait_for_timeout(1500)  # the pop-up comes with the page's first message: give it time to show
    assert page.get_by_text("Page not found").count() == 0
    assert page.get_by_text("does not exist").count() == 0
    assert outside == []  # nothing fetched from outside the app (the page icon is the app's own file)
    assert page.get_by_role("button", name="Launch").count() == 0
    assert page.get_by_text("Delete run").count() == 0
    assert page.get_by_text("Copy a share link").count() == 0
    assert not page.locator('[data-testid="stSidebarNav"]').is_visible()
    assert page.get_by_role("link", name="Run").count() == 0
    assert page.get_by_role("button", name="Download the HTML report").is_visible()
    screenshot(page, "share-link-view")

    # 2. the demo page shows the stored quick-tour run at once
    page.goto(f"{url}/demo?scenario=quick")
    page.locator(".st-key-demo_table").wait_for(timeout=60_000)
    page.locator(CHART).first.wait_for(timeout=30_000)
    assert "faster than the original" in page.locator('[data-testid="stMain"]').inner_text()
    screenshot(page, "demo-mode")

    # 3. a bundle exported from another store is imported on the History page
    from profiling.store.bundle import export_run

    other = RunStore(tmp_path / "other.sqlite")
    bundle = export_run(other, build_fake_run(other), tmp_path / "colleague.zip")
    page.goto(f"{url}/history")
    page.get_by_text("Import a run bundle").wait_for(timeout=60_000)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(bundle))
    page.get_by_role("button", name="Import", exact=True).click()
    page.get_by_text("Imported as run").wait_for(timeout=30_000)
    assert len(store.list_runs()) == 3
    assert page.get_by_text("3 stored run(s)").is_visible()  # the page was redrawn with the imported run
    screenshot(page, "history-bundle-import")

    # 3b. the same bundle again: recognised by its content digest, nothing stored until a copy is asked for
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(bundle))
    page.get_by_role("button", name="Import", exact=True).click()
    notice = page.locator(".st-key-bundle_already_stored")
    notice.wait_for(timeout=30_000)
    assert "already in the store as run" in notice.inner_text()
    assert len(store.list_runs()) == 3
    screenshot(page, "history-bundle-already-stored")
    page.get_by_role("button", name="Import as a copy").click()
    page.get_by_text("a marked copy of run").wait_for(timeout=30_000)
    assert len(store.list_runs()) == 4
    copies = [r for r in store.list_runs() if (r.get("imported") or {}).get("copy_of")]
    assert len(copies) == 1

    # 4. the report opens from a file with every network request refused
    report = write_html(store, run_id, tmp_path / "report.html")
    context = page.context.browser.new_context(viewport={"width": 1400, "height": 1000})
    blocked: list[str] = []

    def guard(route) -> None:
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    context.set_offline(True)
    offline = context.new_page()
    offline.goto(report.as_uri())
    offline.locator(".js-plotly-plot").nth(5).wait_for(timeout=30_000)
    assert offline.locator(".js-plotly-plot").count() == 6
    assert offline.locator(".js-plotly-plot .main-svg").count() >= 6  # plotly drew them (SVG), not just divs
    assert offline.get_by_text("Pareto frontier").count() >= 1
    assert blocked == []  # it did not even try to reach the network
    ARTIFACTS.mkdir(exist_ok=True)
    offline.screenshot(path=str(ARTIFACTS / "html-report-offline.png"), full_page=True)
    context.close()

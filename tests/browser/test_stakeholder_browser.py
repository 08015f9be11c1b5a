"""Real browser, first screens: the Demo page on an empty store shows the shipped run; Results opens with the
headline and the frontier chart at a 1280-pixel window, its labels not overlapping."""

from __future__ import annotations

import pytest

from tests.browser.conftest import ARTIFACTS

pytestmark = pytest.mark.browser
CHART = '[data-testid="stPlotlyChart"]'


def _overlaps(boxes: list[dict]) -> list[tuple[int, int]]:
    out = []
    for i, a in enumerate(boxes):
        for j, b in enumerate(boxes[i + 1:], start=i + 1):
            if a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"] and \
                    a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]:
                out.append((i, j))
    return out


def test_first_screens_of_demo_and_results(app_server, browser_page, screenshot):
    from profiling.jobs.demo_runs import bundle_path, shipped
    from profiling.store.bundle import import_bundle
    from profiling.store.runs import RunStore

    url, store_path = app_server
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 800})
    ship = shipped("quick")

    # 1. a fresh machine (empty store): the Demo page shows the shipped run at once, saying which one it is
    page.goto(f"{url}/demo")
    notice = page.locator(".st-key-demo_shipped")
    notice.wait_for(timeout=60_000)
    page.locator(CHART).first.wait_for(timeout=30_000)
    assert "not a run made here" in notice.inner_text() and ship.label in notice.inner_text()
    assert "faster than the original" in page.locator('[data-testid="stMain"]').inner_text()
    assert not RunStore(store_path).list_runs()
    ARTIFACTS.mkdir(exist_ok=True)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(ARTIFACTS / "demo-fresh-machine-first-screen.png"))

    # 2. Results of that run (imported): headline and frontier chart on the first screen, labels apart
    run_id = import_bundle(RunStore(store_path), bundle_path("quick"))
    page.goto(f"{url}/results?run={run_id}")
    head = page.locator(".st-key-headline")
    head.wait_for(timeout=60_000)
    chart = page.locator(".st-key-frontier_chart " + CHART)
    chart.locator(".main-svg").first.wait_for(timeout=30_000)
    page.wait_for_timeout(1500)  # plotly lays out its text
    text = head.inner_text()
    assert text.startswith("Recommended: ") and "faster" in text and "the size" in text and "95 % CI" in text
    assert "within noise of the original's accuracy is assumed" in text
    top = chart.bounding_box()
    assert head.bounding_box()["y"] < top["y"] < 800, "the chart starts on the first screen"
    labels = chart.locator(".scatterlayer .textpoint text")
    boxes = [labels.nth(i).bounding_box() for i in range(labels.count())]
    boxes = [b for b in boxes if b and b["width"] > 0]
    assert boxes, "the frontier points are labelled"
    assert _overlaps(boxes) == [], boxes
    assert len(boxes) < len(ship.variants)  # not every bubble: the others are named on hover
    page.screenshot(path=str(ARTIFACTS / "results-first-screen.png"))

    # 2b. the frontier chart saved as a PNG for slides (drawn on the server by kaleido, offline)
    with page.expect_download(timeout=120_000) as download:
        page.locator(".st-key-frontier_export").get_by_role("button", name="PNG").click()
    png = download.value.path().read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and download.value.suggested_filename.endswith(".png")
    (ARTIFACTS / "exported-frontier.png").write_bytes(png)

    # 3. the memory timelines, aligned by phase, each variant's peak marked
    memory = page.locator(".st-key-memory_by_phase " + CHART)
    memory.scroll_into_view_if_needed()
    memory.locator(".main-svg").first.wait_for(timeout=30_000)
    ticks = memory.locator(".xtick text").evaluate_all("els => els.map(e => e.textContent.trim())")
    for phase in ("load", "warm-up", "latency", "evaluation"):
        assert phase in ticks, ticks
    assert memory.locator(".scatterlayer .trace").count() >= 2 * len(ship.variants)  # a line and a peak each
    memory.screenshot(path=str(ARTIFACTS / "memory-by-phase.png"))
    screenshot(page, "results-full-page")

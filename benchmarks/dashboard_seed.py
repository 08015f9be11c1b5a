"""Times the reference sequence launched from the real dashboard: click to full results, in headless Chromium.

Usage: ``python benchmarks/dashboard_seed.py [--timeout 1800]``. Starts ``streamlit run app.py`` on a free port
with a fresh run store (models and cached artifacts come from the data folder), clicks "Reference sequence" and
Launch with every other control at its default, waits until the Results page shows the charts, prints a table
of the timings and per-variant figures, and writes ``<data>/benchmarks/dashboard_seed.json`` plus screenshots.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from profiling import paths
from profiling.report.tables import format_table, results_frame
from profiling.store.runs import RunStore
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, free_port, wait_healthy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args()
    out_dir = paths.data_dir() / "benchmarks"
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="dashboard-seed-"))
    store_path = tmp / "runs.sqlite"
    port = free_port()
    env = {**os.environ, "COMPRESSION_STORE": str(store_path), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port",
           str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    log = open(tmp / "streamlit.log", "w")  # noqa: SIM115
    server = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    timings: dict[str, float] = {}
    try:
        wait_healthy(url, server)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.set_default_timeout(120_000)
            page.goto(url + "/")
            page.get_by_role("heading", name="Compression Explorer").wait_for()
            page.get_by_role("button", name="Reference sequence").click()
            page.wait_for_timeout(1500)
            clicked = time.monotonic()
            page.get_by_role("button", name="Launch").click()
            page.locator('[data-testid="stPlotlyChart"]').first.wait_for(state="visible", timeout=300_000)
            timings["memory_timeline_visible_s"] = time.monotonic() - clicked
            store = RunStore(store_path)
            while time.monotonic() - clicked < args.timeout:
                runs = store.list_runs()
                if runs and runs[0]["status"] in ("done", "failed"):
                    break
                time.sleep(1.0)
            timings["run_finished_s"] = time.monotonic() - clicked
            link = page.get_by_role("link", name="Open the full results")
            link.wait_for(state="visible")
            page.screenshot(path=str(out_dir / "dashboard_seed_run.png"), full_page=True)
            link.click()
            page.get_by_role("heading", name="Results").wait_for()
            page.locator('[data-testid="stPlotlyChart"]').filter(has_text="Accuracy vs latency").first.wait_for()
            timings["full_results_shown_s"] = time.monotonic() - clicked
            page.screenshot(path=str(out_dir / "dashboard_seed_results.png"), full_page=True)
            browser.close()
        run = RunStore(store_path).list_runs()[0]
        table = results_frame(RunStore(store_path), run["id"])
        print(format_table(table))
        print()
        for key, value in timings.items():
            print(f"{key:28s} {value:8.1f} s")
        print(f"run status: {run['status']} ({run['n_done']}/{run['n_variants']} variants)")
        result = {"timings_s": timings, "run": run, "table": json.loads(table.to_json(orient="records"))}
        (out_dir / "dashboard_seed.json").write_text(json.dumps(result, indent=2, default=str))
        print(f"wrote {out_dir / 'dashboard_seed.json'}")
        return 0 if run["status"] == "done" else 1
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=20)
        log.close()


if __name__ == "__main__":
    sys.exit(main())

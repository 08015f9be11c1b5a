"""Browser-test fixtures: a headless `streamlit run app.py` on a free port with a fresh run store, and Chromium."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Self

import pytest

from tests.helpers import REPO

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


class BrowserInBackground:
    """Keeps every thread of this test's Chromium processes at nice BACKGROUND_NICE while the block runs.

    Ten browser sessions in one test put ten renderers and a software-GPU process on the server's two cores, and
    Chromium (run as root here) raises its own browser and GPU threads above normal priority (ps shows nice -8):
    the test then measures the server starved by its own viewers. Viewers of a shared dashboard run their browsers
    on their own machines, so the test gives the server the cores first. Chromium starts processes and threads as
    contexts open, so they are re-niced every ``every_s``."""

    BACKGROUND_NICE = 10

    def __init__(self, every_s: float = 1.0):
        self.every_s = every_s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.reniced: set[int] = set()  # thread ids seen and set, for the test's report

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)

    def _loop(self) -> None:
        import psutil

        me = psutil.Process()
        while not self.stop.is_set():
            try:
                browsers = [p for p in me.children(recursive=True) if "chrom" in (p.name() or "").lower()]
            except psutil.Error:
                browsers = []
            for proc in browsers:
                try:
                    tids = [int(t) for t in os.listdir(f"/proc/{proc.pid}/task")]
                except OSError:
                    continue
                for tid in tids:
                    try:
                        if os.getpriority(os.PRIO_PROCESS, tid) != self.BACKGROUND_NICE:
                            os.setpriority(os.PRIO_PROCESS, tid, self.BACKGROUND_NICE)
                        self.reniced.add(tid)
                    except OSError:  # the thread ended meanwhile
                        pass
            self.stop.wait(self.every_s)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 90.0) -> None:
    """Poll Streamlit's health endpoint until it answers "ok" (or the server dies / time runs out)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as resp:
                if resp.status == 200 and resp.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"streamlit did not become healthy at {url} within {timeout_s:.0f} s")


@pytest.fixture
def app_server(tmp_path) -> Iterator[tuple[str, Path]]:
    """(base URL, store path): the real app on a free port; runs go to a fresh store, models come from data/."""
    store = tmp_path / "runs.sqlite"
    port = free_port()
    env = {
        **os.environ,
        "COMPRESSION_STORE": str(store),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    log = open(tmp_path / "streamlit.log", "w")  # noqa: SIM115 - closed at teardown
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url, store
    finally:
        _stop_runs(store)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the server's own process group (started with a new session)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        print(f"streamlit log: {tmp_path / 'streamlit.log'}")


def _stop_runs(store: Path) -> None:
    """Stop background runs this test launched that are still going (they run in their own session)."""
    if not store.exists():
        return
    from profiling.store.runs import RunStore

    for run in RunStore(store).list_runs():
        pid = (RunStore(store).get_run(run["id"]) or {}).get("pid")
        if run["status"] in ("queued", "running") and pid:
            try:
                os.killpg(pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass


@pytest.fixture
def browser_page() -> Iterator:
    """A Playwright page in Debian's Chromium (sync API)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        try:
            yield page
        finally:
            browser.close()


@pytest.fixture
def screenshot() -> Callable[[object, str], Path]:
    """Save a screenshot of the whole page (Streamlit scrolls inside its main block, so grow the viewport)."""

    def take(page, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        height = page.evaluate(
            "() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
            " return Math.max(m ? m.scrollHeight : 0, document.body.scrollHeight); }"
        )
        size = page.viewport_size
        page.set_viewport_size({"width": size["width"], "height": min(int(height) + 40, 12000)})
        page.wait_for_timeout(1500)  # plotly redraws at the new size
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        page.set_viewport_size(size)
        return path

    return take

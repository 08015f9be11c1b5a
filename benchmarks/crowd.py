"""How the dashboard server holds up with many browser sessions open while runs are queued and one measures.

Usage: ``python benchmarks/crowd.py [--sessions 10] [--page /] [--heading "Compression Explorer"] [--idle-s 30]
[--repo PATH] [--out PATH]``.

It makes a store of its own with a measuring queue: one run measuring (a thread writes its memory timeline every
0.5 s and its progress every 0.3 s, as a real run's process does) and two runs waiting, each owned by a live
``sleep`` process so the reaper leaves them alone. It starts the real server (``streamlit run app.py`` in
``--repo``, so an older checkout can be measured the same way), opens one Chromium session twice for scale, then
``--sessions`` sessions at once (Chromium re-niced to the background, as in the load test), lets them sit for ``--idle-s`` seconds and measures the server's CPU meanwhile: what
the sessions' timers cost with nobody clicking, which a newly opened page has to wait behind. Prints a table and
writes JSON (default ``<data>/benchmarks/crowd.json``). Set ``SPY=1`` to sample the idle server with py-spy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REQUEST = {"model": "default", "dataset": {"kind": "bundled", "name": "tweets"},
           "variants": [{"chain": [{"technique": "torch-int8"}]}]}


def cpu_flags() -> list[str]:
    try:
        line = next(ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags"))
    except (OSError, StopIteration):
        return []
    wanted = ("avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
    return [f for f in line.split(":", 1)[1].split() if f in wanted]


def make_queue(store_path: Path, owner_pid: int) -> list[str]:
    """One running run and two queued ones, all owned by ``owner_pid``."""
    from profiling.jobs.runner import normalize_request
    from profiling.store.runs import RunStore

    store = RunStore(store_path)
    request = normalize_request(REQUEST, precheck=False)
    ids = []
    for n in range(3):
        run_id = store.create_run(request)
        store.set_run_pid(run_id, owner_pid)
        if n == 0:
            store.set_run_status(run_id, "running")
            store.upsert_variant(run_id, 0, status="profiling", stage="latency", progress=0.0)
        ids.append(run_id)
    return ids


def write_like_a_run(store_path: Path, run_id: str, stop: threading.Event) -> None:
    """What a measuring run's process writes: RSS samples every 0.5 s, progress every 0.3 s (UPDATE_EVERY_S). The
    RSS values are this benchmark's own process's, so the chart has real, moving data."""
    import psutil

    from profiling.store.runs import RunStore

    store, me, t0, last_samples = RunStore(store_path), psutil.Process(), time.monotonic(), 0.0
    while not stop.is_set():
        t = time.monotonic() - t0
        store.upsert_variant(run_id, 0, progress=min(t / 600.0, 0.99), stage=f"latency b1: {int(t * 3)} repeats")
        if t - last_samples >= 0.5:
            store.append_timeline(run_id, 0, [(t, me.memory_info().rss / 2**20)])
            last_samples = t
        stop.wait(0.3)


async def drive(url: str, sessions: int, page_path: str, heading: str, idle_s: float, server_pid: int) -> dict:
    import psutil
    from playwright.async_api import async_playwright

    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS

    server = psutil.Process(server_pid)
    out: dict = {}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            pages = [await (await browser.new_context()).new_page() for _ in range(sessions)]

            async def load(page) -> float:
                start = time.monotonic()
                await page.goto(url + page_path, wait_until="commit")
                await page.get_by_role("heading", name=heading).first.wait_for(timeout=600_000)
                return time.monotonic() - start

            out["alone_s"] = [round(await load(pages[0]), 2) for _ in range(2)]
            await pages[0].goto("about:blank")
            out["all_at_once_s"] = [round(t, 2) for t in await asyncio.gather(*(load(p) for p in pages))]
            await asyncio.sleep(5)  # the first draws settle
            spy = None
            if os.environ.get("SPY"):
                spy = await asyncio.create_subprocess_exec(
                    "py-spy", "record", "-p", str(server_pid), "-d", str(int(idle_s) - 2), "-f", "raw", "-o",
                    str(Path(tempfile.gettempdir()) / "crowd-spy.raw"), "-r", "50",
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            c0, w0 = server.cpu_times(), time.monotonic()
            await asyncio.sleep(idle_s)
            c1, w1 = server.cpu_times(), time.monotonic()
            if spy is not None:
                await spy.wait()
            out["server_cores_idle"] = round(((c1.user + c1.system) - (c0.user + c0.system)) / (w1 - w0), 3)
            # one more session opens the page while the others sit there: what a newcomer waits
            newcomer = await (await browser.new_context()).new_page()
            out["newcomer_s"] = round(await load(newcomer), 2)
        finally:
            await browser.close()
    return out


def main(argv: list[str] | None = None) -> int:
    from profiling import paths
    from tests.browser.conftest import free_port, wait_healthy

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=10)
    p.add_argument("--page", default="/", help="the page every session opens (/, /results, /history)")
    p.add_argument("--heading", default="Compression Explorer", help="the heading that says the page is drawn")
    p.add_argument("--idle-s", type=float, default=30.0)
    p.add_argument("--repo", default=str(ROOT), help="the checkout whose app.py is served")
    p.add_argument("--out", help="JSON output (default: <data>/benchmarks/crowd.json)")
    args = p.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="crowd-"))
    store_path = work / "runs.sqlite"
    owner = subprocess.Popen(["sleep", "100000"])
    stop = threading.Event()
    server = None
    try:
        run_ids = make_queue(store_path, owner.pid)
        writer = threading.Thread(target=write_like_a_run, args=(store_path, run_ids[0], stop), daemon=True)
        writer.start()
        port = free_port()
        env = {**os.environ, "COMPRESSION_STORE": str(store_path), "HF_HUB_OFFLINE": "1"}
        with open(work / "server.log", "w") as log:
            server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless",
                                       "true", "--server.port", str(port), "--server.address", "127.0.0.1"],
                                      cwd=args.repo, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, server)
        load_before = os.getloadavg()
        from tests.browser.conftest import BrowserInBackground

        with BrowserInBackground():  # as in the load test: the viewers' browsers would be on their own machines
            figures = asyncio.run(drive(url, args.sessions, args.page, args.heading, args.idle_s, server.pid))
        load_after = os.getloadavg()
    finally:
        stop.set()
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        owner.terminate()

    commit = subprocess.run(["git", "-C", args.repo, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()
    result = {"sessions": args.sessions, "page": args.page, "idle_s": args.idle_s, "repo": args.repo,
              "commit": commit, **figures, "load_average_before": [round(x, 2) for x in load_before],
              "load_average_after": [round(x, 2) for x in load_after], "cpus": os.cpu_count(),
              "cpu": platform.processor() or platform.machine(), "cpu_flags": cpu_flags()}
    loads = figures["all_at_once_s"]
    rows = [("sessions", str(args.sessions)), ("page", args.page), ("commit", commit),
            ("one session alone, cold / warm (s)", " / ".join(map(str, figures["alone_s"]))),
            ("all at once: median / slowest (s)", f"{statistics.median(loads):.2f} / {max(loads):.2f}"),
            (f"server CPU, {args.sessions} sessions idle (cores)", f"{figures['server_cores_idle']:.3f}"),
            ("one more session opens the page (s)", f"{figures['newcomer_s']:.2f}"),
            ("load average before / after", f"{load_before[0]:.2f} / {load_after[0]:.2f}"),
            ("CPU flags", " ".join(result["cpu_flags"]))]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key.ljust(width)}  {value}")
    out = Path(args.out) if args.out else paths.data_dir() / "benchmarks" / "crowd.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The build of the default classifiers (``python -m profiling setup``), one at a time, with a status file.

``run_setup`` holds a lock file in the data folder for the whole build, so a second setup (another ``make run``, the
one before ``make test``, a CLI ``setup``) waits for the first and then finds everything built; each model is still
written atomically by ``build_cached`` (temp folder + rename). While it runs it writes ``setup-status.json`` (stage,
fraction, ETA, a short log, the error) so the dashboard can show it. ``start_background`` starts it as a detached
process (``make run`` does, then starts the dashboard at once). ``read_status`` tells the states apart: done,
running, failed (including a build process that died), missing (nothing built, no build started).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from compression.artifact import MANIFEST
from profiling import paths
from profiling.filelock import file_lock
from profiling.inputs import downloads
from profiling.inputs.datasets import BUNDLED
from profiling.inputs.finetune import ProgressFn, default_model_dir, setup_defaults
from profiling.store.runs import check_writable

log = logging.getLogger(__name__)

STATUS_FILE = "setup-status.json"
LOCK_FILE = ".setup.lock"
LOG_FILE = "setup.log"
LOG_LINES = 12  # lines of the build's own log kept in the status
WRITE_EVERY_S = 0.5  # status file writes at most this often (a stage change is written at once)
START_GRACE_S = 60.0  # a started build that has not taken the lock after this long has failed to start
DATASET_FILES = {"movie-reviews": downloads.MOVIE_REVIEWS_FILE, "tweets": downloads.TWEETS_FILE}


def status_path() -> Path:
    return paths.data_dir() / STATUS_FILE


def lock_path() -> Path:
    return paths.data_dir() / LOCK_FILE


def log_path() -> Path:
    folder = paths.data_dir() / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / LOG_FILE


def readiness() -> dict[str, dict[str, bool]]:
    """Per bundled dataset: whether its raw file is downloaded and its default classifier is built."""
    models, dls = paths.models_dir(), paths.downloads_dir()
    return {
        name: {
            "dataset": (dls / DATASET_FILES[name]).is_file() if name in DATASET_FILES else True,
            "model": (models / default_model_dir(name).name / MANIFEST).is_file(),
        }
        for name in BUNDLED
    }


def all_built() -> bool:
    return all(r["model"] and r["dataset"] for r in readiness().values())


def build_running() -> bool:
    """Whether a setup holds the build lock now (any process, this one included)."""
    path = lock_path()
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a lock this probe took
    return False


# ---- status file ------------------------------------------------------------------------------------------


def read_raw() -> dict[str, Any]:
    """The status file as written (empty when absent or unreadable: a torn file is never trusted)."""
    try:
        raw = json.loads(status_path().read_text())
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def write_raw(status: dict[str, Any]) -> None:
    """Write the status file atomically (temp file + rename: a reader never sees half a file)."""
    target = status_path()
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(status, indent=1))
    os.replace(tmp, target)


def read_status() -> dict[str, Any]:
    """The build's state for a reader: ``state`` is done, running, failed or missing, with the file's fields
    (stage, fraction, eta_s, elapsed_s, log, error) and ``ready`` (readiness())."""
    raw, ready = read_raw(), readiness()
    status = {**raw, "ready": ready}
    if all(r["model"] and r["dataset"] for r in ready.values()):
        return {**status, "state": "done"}
    if build_running():
        status["state"] = "running"
        if raw.get("state") == "running" and raw.get("fraction") is not None and raw.get("started_at"):
            status["elapsed_s"] = max(0.0, time.time() - float(raw["started_at"]))
        return status
    written = raw.get("state")
    if written == "starting":
        age = time.time() - float(raw.get("started_at") or 0)
        if _alive(raw.get("pid")) or (raw.get("pid") is None and age < START_GRACE_S):
            return {**status, "state": "running", "stage": "starting the build process"}
        return {**status, "state": "failed",
                "error": raw.get("error") or "the build process ended before it started building (see its log)",
                "log": raw.get("log") or log_tail()}
    if written == "running":  # the file says running but nobody holds the lock: the process died
        return {**status, "state": "failed",
                "error": "the build process stopped before finishing (killed, out of memory or the machine "
                         "restarted); nothing half-built was kept",
                "log": (raw.get("log") or []) + log_tail(4)}
    if written == "failed":
        return {**status, "state": "failed"}
    return {**status, "state": "missing"}


def log_tail(lines: int = LOG_LINES) -> list[str]:
    """The last lines of the background build's log file (its stdout and stderr)."""
    try:
        text = log_path().read_text(errors="replace")
    except OSError:
        return []
    rows = [r.rstrip() for r in re.split(r"[\r\n]+", text) if r.strip()]
    return rows[-lines:]


class StatusWriter:
    """A setup progress callback that keeps the status file current (throttled; stage changes at once)."""

    def __init__(self, forward: ProgressFn | None = None):
        self.forward = forward
        self.started = time.time()
        self.lines: list[str] = []
        self.last_write = 0.0
        self.status: dict[str, Any] = {"state": "running", "pid": os.getpid(), "started_at": self.started,
                                       "stage": "starting", "fraction": 0.0, "eta_s": None, "log": []}

    def __call__(self, fraction: float, message: str) -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        new_kind = not self.lines or _kind(self.lines[-1]) != _kind(message)
        if new_kind:
            self.lines = [*self.lines, message][-LOG_LINES:]
        else:
            self.lines[-1] = message  # "step 12/188" replaces "step 11/188": one line per stage
        elapsed = time.time() - self.started
        # Linear in the build's fraction (the fractions follow the steps); only once enough is done to tell.
        eta = elapsed * (1 - fraction) / fraction if fraction >= 0.05 and elapsed >= 5 else None
        self.status.update(stage=message, fraction=round(fraction, 4), eta_s=None if eta is None else round(eta, 1),
                           elapsed_s=round(elapsed, 1), log=self.lines, updated_at=time.time())
        now = time.monotonic()
        if new_kind or now - self.last_write >= WRITE_EVERY_S:
            self.last_write = now
            write_raw(self.status)
        if self.forward:
            self.forward(fraction, message)

    def finish(self, error: BaseException | None) -> None:
        elapsed = round(time.time() - self.started, 1)
        if error is None:
            self.status.update(state="done", stage="default classifiers ready", fraction=1.0, eta_s=0.0,
                               elapsed_s=elapsed, error=None)
        else:
            text = str(error).strip() or type(error).__name__
            if isinstance(error, KeyboardInterrupt):
                text = "interrupted (Ctrl+C or a stop signal)"
            self.status.update(state="failed", error=text, error_type=type(error).__name__, elapsed_s=elapsed)
        self.status.update(log=self.lines, updated_at=time.time())
        write_raw(self.status)


def _kind(message: str) -> str:
    """What a progress message is about, without its counters ("fine-tuning tweets: step #/#, ...")."""
    return re.sub(r"\d+(\.\d+)?", "#", message.split(":", 1)[0])


# ---- running it -----------------------------------------------------------------------------------------


def run_setup(progress: ProgressFn | None = None, build: Callable[..., Any] | None = None,
              on_wait: Callable[[], None] | None = None) -> Any:
    """Build what is missing (``build``, default setup_defaults) under the build lock, keeping the status file.

    A second caller waits for the lock (``on_wait`` is called first), then finds the models built and returns their
    folders at once. A failure is written to the status file and raised."""
    build = build or setup_defaults
    if build_running() and on_wait:
        on_wait()
    with file_lock(lock_path()):
        writer = StatusWriter(progress)
        if all_built():  # built while this caller waited (or before): nothing to do
            writer.finish(None)
            return {name: default_model_dir(name) for name in BUNDLED}
        writer(0.0, "starting")
        try:
            result = build(progress=writer)
        except BaseException as exc:
            writer.finish(exc)
            raise
        writer.finish(None)
        return result


def start_background() -> dict[str, Any]:
    """Start ``python -m profiling setup`` detached (own session, log in the data folder) unless everything is
    built or a build is already running; returns ``{"started": bool, "why": str, "pid": int | None}``.

    Refused in read-only mode (ReadOnlyError)."""
    check_writable("build the default classifiers")
    if all_built():
        return {"started": False, "why": "the default classifiers are already built", "pid": None}
    if build_running():
        return {"started": False, "why": "a build is already running", "pid": read_raw().get("pid")}
    write_raw({"state": "starting", "pid": None, "started_at": time.time(), "stage": "starting the build process",
               "fraction": 0.0, "log": []})
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(paths.REPO_ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("HF_HUB_OFFLINE", "1")
    cmd = [sys.executable, "-m", "profiling", "setup", "--plain"]
    try:
        with open(log_path(), "ab") as out:
            proc = subprocess.Popen(cmd, cwd=paths.REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        write_raw({"state": "failed", "error": f"could not start the build process: {exc}", "log": []})
        raise
    raw = read_raw()
    if raw.get("state") == "starting" and raw.get("pid") is None:  # the child may already have written its own
        write_raw({**raw, "pid": proc.pid})
    threading.Thread(target=proc.wait, name="reap-setup", daemon=True).start()  # no zombie in a long-lived app
    log.info("started the default-classifier build in process %d (log %s)", proc.pid, log_path())
    return {"started": True, "why": "started", "pid": proc.pid}


def _alive(pid: Any) -> bool:
    """Whether ``pid`` is a live ``profiling setup`` process (a reused pid running something else is not)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return b"profiling" in cmdline and b"setup" in cmdline

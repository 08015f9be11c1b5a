"""One path for every long job: a detached ``python -m profiling`` process, queued behind the store's one measuring
lock, writing its progress and result to the store.

Runs (profiling.jobs.runner) and the other jobs (sweeps, sensitivity maps: the ``jobs`` table) share the lock file
``<store>.runner.lock``: two measurements on the same cores would distort each other's figures, so whatever is
launched while another job measures waits, its stage saying for what. A job kind is a module with
``normalize_job_request(store, request) -> (request, run_id)`` (validates before anything is stored, raising a
UserError), ``run_job(store, job, progress) -> result`` (the work; ``progress(fraction, stage)``), and
``json_result_files(store)`` / ``json_result(store, path)`` for the result files older versions wrote.
"""

from __future__ import annotations

import fcntl
import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from compression.errors import UserError
from profiling import paths
from profiling.schema import JobKind, RunStatus
from profiling.store.runs import NEVER_STARTED_S, RunStore, StoreError, process_alive, read_only

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".runner.lock"
POLL_LOCK_S = 0.5
UPDATE_EVERY_S = 0.3  # throttle of progress writes to the store, as the runner's
# The module of each job kind (imported when a job of that kind is launched or executed).
KIND_MODULES = {JobKind.SWEEP: "profiling.jobs.sweep", JobKind.SENSITIVITY: "profiling.jobs.sensitivity"}
JSON_IMPORTED_KEY = "json_results_imported"  # meta key: the result files of older versions imported into the store

Progress = Callable[[float, str], None]


class JobError(UserError):
    """A job that cannot be launched or executed; the message is shown to the user as is."""


class Stopped(BaseException):
    """Raised in the main thread by the SIGTERM/SIGINT handler (BaseException: no ``except Exception`` eats it)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


# ---- the measuring lock ------------------------------------------------------------------------------


def lock_path(store_path: Path | str) -> Path:
    return Path(f"{store_path}{LOCK_SUFFIX}")


def busy_with(store: RunStore) -> str:
    """What holds the measuring lock, as far as the store says: 'run ID', 'sweep job ID', ..."""
    running = [r for r in store.active_records() if r["status"] == "running"]
    if running:
        return f"{running[0]['kind']} {'' if running[0]['kind'] == 'run' else 'job '}{running[0]['id']}"
    return "another run"


def queue(store: RunStore, records: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The measuring queue: what measures now (``position`` 0) and what waits for the measuring lock, in launch
    order (``position`` 1, 2, ...; the order in which exclusive hands the lock on). Each entry is a record of
    RunStore.active_records (``records``: those already read, e.g. by a cache shared across dashboard sessions).
    A queued record whose process is gone, or that got none within NEVER_STARTED_S, is left out: it will never
    measure (the reaper fails it)."""
    now = time.time()
    live = [r for r in (store.active_records() if records is None else records)
            if (process_alive(r["pid"], r["pid_started"]) if r["pid"] else now - r["created_ts"] <= NEVER_STARTED_S)]
    measuring = [{**r, "position": 0} for r in live if r["status"] == "running"]
    waiting = [{**r, "position": n} for n, r in enumerate((r for r in live if r["status"] != "running"), 1)]
    return measuring + waiting


def _ahead_of(store: RunStore, ident: str) -> int:
    """How many waiting records were launched before ``ident`` (0: its turn once the lock is free)."""
    waiting = [r["id"] for r in queue(store) if r["position"] > 0]
    return waiting.index(ident) if ident in waiting else 0


@contextmanager
def exclusive(store: RunStore, on_wait: Callable[[str], None], ident: str | None = None) -> Iterator[None]:
    """Hold the store's measuring lock for the block. While another process holds it, wait; waiters take it in
    launch order (``ident``: this run's or job's id; see queue). ``on_wait(what)`` says what it waits for (see
    busy_with) and its place in the queue, again whenever that changes. The kernel releases it if the process dies."""
    path = lock_path(store.path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        told = None
        while True:
            ahead = _ahead_of(store, ident) if ident is not None else 0
            if ahead == 0:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    pass
            what = busy_with(store) + (f" and {ahead} launched earlier" if ahead else "")
            if what != told:
                on_wait(what)
                told = what
            time.sleep(POLL_LOCK_S)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


# ---- detached processes ------------------------------------------------------------------------------


def spawn(store: RunStore, args: list[str], name: str) -> subprocess.Popen:
    """Start ``python -m profiling ARGS --store STORE`` in its own session (it outlives the launching browser
    session or CLI), output appended to ``<store dir>/logs/NAME.log``; reaped by a thread when it ends."""
    log_dir = store.path.parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(paths.REPO_ROOT), env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-m", "profiling", *args, "--store", str(store.path.resolve())]
    with open(log_dir / f"{name}.log", "ab") as out:
        proc = subprocess.Popen(cmd, cwd=paths.REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    # Reap the child when it ends so a long-lived launcher (the dashboard) never collects zombies.
    threading.Thread(target=proc.wait, name=f"reap-{name}", daemon=True).start()
    return proc


def _kind_module(kind: str) -> Any:
    try:
        return importlib.import_module(KIND_MODULES[JobKind(kind)])
    except (KeyError, ValueError):
        raise JobError(f"unknown job kind {kind!r}; use one of {', '.join(KIND_MODULES)}") from None


def launch_job(kind: str, request: dict, store_path: Path | str | None = None) -> str:
    """Validate, store a queued job and start ``python -m profiling execute-job JOB_ID`` detached; returns its id."""
    store = RunStore(store_path)
    store.reap_dead_jobs()
    request, run_id = _kind_module(kind).normalize_job_request(store, request)
    job_id = store.create_job(kind, request, run_id)
    try:
        proc = spawn(store, ["execute-job", job_id], job_id)
    except OSError as exc:
        store.fail_job(job_id, f"could not start the job's process: {exc}")
        raise JobError(f"could not start the job: {exc}") from None
    store.set_job_pid(job_id, proc.pid)
    log.info("launched %s job %s in process %d", kind, job_id, proc.pid)
    return job_id


def create_job(kind: str, request: dict, store: RunStore) -> str:
    """Validate and store a queued job without starting a process (the CLI then executes it in the foreground)."""
    request, run_id = _kind_module(kind).normalize_job_request(store, request)
    return store.create_job(kind, request, run_id)


# ---- executing ---------------------------------------------------------------------------------------


def execute_job(job_id: str, store: RunStore, on_progress: Progress | None = None) -> dict:
    """Run a stored queued job in this process, under the measuring lock; returns the job as stored after it.

    A failure never raises: the job is marked failed with a readable reason. SIGTERM/SIGINT mark it failed
    ("stopped by signal N during ...") and exit."""
    job = store.get_job(job_id)
    if job is None:
        raise JobError(f"no job {job_id!r} in {store.path}")
    if job["status"] in ("done", "failed"):
        raise JobError(f"job {job_id} has already {'finished' if job['status'] == 'done' else 'failed'}")
    if job["status"] == "running" and job["pid"] != os.getpid():
        raise JobError(f"job {job_id} is already running (or was interrupted); launch a new one instead")
    module = _kind_module(job["kind"])
    state = {"stage": "start-up"}
    last = [0.0]

    def progress(fraction: float, stage: str) -> None:
        state["stage"] = stage
        if on_progress is not None:
            on_progress(fraction, stage)
        now = time.monotonic()
        if now - last[0] >= UPDATE_EVERY_S or fraction >= 1.0:
            last[0] = now
            store.set_job_progress(job_id, fraction, stage)

    previous = install_signal_handlers()
    try:
        store.set_job_pid(job_id, os.getpid())

        def waiting(what: str) -> None:
            state["stage"] = f"waiting for {what} to finish"
            store.set_job_progress(job_id, 0.0, state["stage"])
            if on_progress is not None:  # the CLI says why nothing happens yet
                on_progress(0.0, state["stage"])

        with exclusive(store, waiting, job_id):
            store.start_job(job_id)
            result = module.run_job(store, store.get_job(job_id), progress)
        store.finish_job(job_id, result)
    except Stopped as stop:
        reason = f"stopped by signal {stop.signum} during {state['stage']}"
        log.warning("job %s %s", job_id, reason)
        store.fail_job(job_id, reason)
        raise SystemExit(128 + stop.signum) from None
    except Exception as exc:
        if isinstance(exc, UserError):
            log.warning("job %s failed during %s: %s", job_id, state["stage"], readable(exc))
        else:
            log.exception("job %s failed during %s", job_id, state["stage"])
        store.fail_job(job_id, f"failed during {state['stage']}: {readable(exc)}")
    finally:
        restore_signal_handlers(previous)
    return store.get_job(job_id) or job


def readable(exc: BaseException) -> str:
    """A one-line reason: the message of errors meant for users, the type and message of anything else."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, UserError | StoreError):  # a StoreError names the store's problem (disk full, locked, ...)
        return text
    if isinstance(exc, MemoryError):
        return "out of memory"
    return f"{type(exc).__name__}: {text}"


def install_signal_handlers() -> dict:
    """SIGTERM/SIGINT raise ``Stopped`` in the main thread (a second signal during the clean-up is ignored);
    returns the previous handlers for ``restore_signal_handlers``."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    fired: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        if fired:  # a second signal during the clean-up is ignored
            return
        fired.append(signum)
        raise Stopped(signum)

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}


def restore_signal_handlers(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


# ---- stopping ----------------------------------------------------------------------------------------


def signal_process(pid: int, ident: str) -> bool:
    """SIGTERM ``pid`` if it is alive and its command line names ``ident`` (a run or job id: a reused pid is never
    signalled); returns whether it was signalled. PermissionError when not allowed to."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if ident not in " ".join(proc.cmdline()) or proc.status() == psutil.STATUS_ZOMBIE:
            return False
        proc.send_signal(signal.SIGTERM)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        raise PermissionError(f"not allowed to stop process {pid}") from None
    return True


def stop_recorded(record: Mapping[str, Any] | None, alive: Callable[[], bool], fail: Callable[[str], None],
                  reap: Callable[[], Any]) -> bool:
    """Stop the queued or running run or job ``record`` (from the store): SIGTERM to its process, which records
    why and exits, or, with no process yet, ``fail`` it at once; a record whose process is gone is ``reap``ed
    instead. Returns whether it was stopped. ``alive``: whether the store's pid is still the recorded process."""
    if record is None or record["status"] not in (RunStatus.QUEUED, RunStatus.RUNNING):
        return False
    if not record["pid"]:
        fail("stopped by the user before it started")
        return True
    if record["pid"] != os.getpid() and alive() and signal_process(record["pid"], record["id"]):
        return True
    reap()
    return False


def stop_job(job_id: str, store_path: Path | str | None = None) -> bool:
    """Stop a queued or running job (see ``stop_recorded``); returns whether it was stopped."""
    store = RunStore(store_path)
    return stop_recorded(store.get_job(job_id), lambda: store.job_process_is_alive(job_id),
                         lambda why: store.fail_job(job_id, why), store.reap_dead_jobs)


# ---- result files of older versions ------------------------------------------------------------------


def _imported_files(store: RunStore) -> set[str]:
    try:
        value = json.loads(store.meta_value(JSON_IMPORTED_KEY) or "[]")
    except ValueError:
        value = []
    return {str(v) for v in value} if isinstance(value, list) else set()


def pending_json_results(store: RunStore, kind: str) -> list[dict]:
    """The result files of ``kind`` written by older versions and not imported into this store yet, as jobs."""
    module = _kind_module(kind)
    done = _imported_files(store)
    jobs = (module.json_result(store, path) for path in module.json_result_files(store) if str(path) not in done)
    return [job for job in jobs if job is not None]


def import_json_results(store: RunStore) -> int:
    """Import the sweep and sensitivity JSON files older versions wrote beside the store, each once (they stay on
    disk; a deleted job does not come back); returns how many were imported. Read-only: nothing is imported (the
    pages read the pending files directly)."""
    if read_only():
        return 0
    done = _imported_files(store)
    n, seen = 0, set(done)
    for kind in KIND_MODULES:
        module = _kind_module(kind)
        for path in module.json_result_files(store):
            if str(path) in seen:
                continue
            seen.add(str(path))
            job = module.json_result(store, path)  # None: unreadable (warned once, not retried)
            if job is not None:
                n += store.insert_job({**job, "kind": kind})
    if seen != done:
        store.set_meta_value(JSON_IMPORTED_KEY, json.dumps(sorted(seen)))
    if n:
        log.info("imported %d result file(s) of an older version into %s", n, store.path)
    return n


def file_times(path: Path) -> tuple[str, float]:
    """(ISO time, timestamp) of a file's last change: the creation time of an imported result."""
    ts = path.stat().st_mtime
    return datetime.fromtimestamp(ts, UTC).astimezone().isoformat(timespec="seconds"), ts

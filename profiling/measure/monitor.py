"""Profiles one artifact in a fresh child process while sampling its RSS from outside; returns a ChildResult."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from compression.artifact import Artifact
from profiling.measure.child import PARENT_PID_ENV
from profiling.measure.memory import RssSampler, Sample, SamplesCallback
from profiling.paths import REPO_ROOT

log = logging.getLogger(__name__)

MISSED_PEAK_REL = 0.01  # a high-water mark more than 1 % above the sampled peak: a spike the samples missed
PhaseCallback = Callable[[str, float], None]
ProgressCallback = Callable[[float, str], None]


@dataclass
class Workload:
    """What the child runs: latency over ``latency_texts`` at batch 1 and ``batch_size``, then predictions on
    ``eval_texts``. ``eval_labels`` is optional: when given, accuracy figures are added in the parent (the child
    never sees labels and never imports scikit-learn, which would inflate its memory)."""

    eval_texts: list[str]
    latency_texts: list[str]
    batch_size: int = 8
    repeats: int = 20
    warmup: int = 3
    threads: int = 2
    eval_labels: list[int] | None = None
    ci_target_pct: float = 0.0  # > 0: more repeats until the median's 95 % interval is within ±this %
    latency_budget_s: float = 0.0  # time budget for the extra repeats of both latency figures together
    max_repeats: int = 1000

    def __post_init__(self) -> None:
        for name, low in (("batch_size", 1), ("repeats", 1), ("warmup", 0), ("threads", 1), ("max_repeats", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        for name in ("ci_target_pct", "latency_budget_s"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < 1e6:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        if not self.latency_texts:
            raise ValueError("latency needs at least one text")
        if self.eval_labels is not None and len(self.eval_labels) != len(self.eval_texts):
            raise ValueError(f"{len(self.eval_labels)} labels for {len(self.eval_texts)} evaluation texts")

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("eval_labels")
        return data


@dataclass
class ChildResult:
    """The outcome of profiling one variant. On failure ``ok`` is False, ``error`` says why, and whatever was
    measured before the failure (samples, phases, disk, peak) is still there."""

    ok: bool
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    preds: list[int] = field(default_factory=list)
    probs: list[list[float]] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    phases: list[tuple[str, float]] = field(default_factory=list)
    returncode: int | None = None
    log_tail: str = ""


class _StdoutReader(threading.Thread):
    """Turns the child's JSON lines into phase/progress callbacks (times made relative to t0)."""

    def __init__(
        self,
        stream,
        t0: float,
        on_phase: PhaseCallback | None,
        on_progress: ProgressCallback | None,
        on_pid: Callable[[int], None],
    ):
        super().__init__(name="child-stdout", daemon=True)
        self.stream, self.t0 = stream, t0
        self.on_phase, self.on_progress, self.on_pid = on_phase, on_progress, on_pid
        self.phases: list[tuple[str, float]] = []
        self.error: str | None = None
        self.rusage_maxrss_kib: int | None = None
        self.phase_mem: list[tuple[str, float, dict]] = []  # (phase, t, /proc/self/status KiB at its start)
        self.exit_mem: dict = {}

    def run(self) -> None:
        for line in self.stream:
            try:
                msg = json.loads(line)
            except json.JSONDecodeError:
                log.debug("child stdout: %s", line.rstrip())
                continue
            if not isinstance(msg, dict):
                continue
            if "pid" in msg:
                _call(self.on_pid, int(msg["pid"]))
            elif "phase" in msg:
                mark = (str(msg["phase"]), float(msg.get("t", time.time())) - self.t0)
                self.phases.append(mark)
                if isinstance(msg.get("mem"), dict):
                    self.phase_mem.append((*mark, msg["mem"]))
                _call(self.on_phase, *mark)
            elif "progress" in msg:
                _call(self.on_progress, float(msg["progress"]), str(msg.get("msg", "")))
            elif "error" in msg:
                self.error = str(msg["error"])
            elif "rusage_maxrss_kib" in msg:
                self.rusage_maxrss_kib = int(msg["rusage_maxrss_kib"])
            elif isinstance(msg.get("exit_mem"), dict):
                self.exit_mem = msg["exit_mem"]


def phase_at(t: float, phases: list[tuple[str, float]]) -> str:
    """The phase running at time ``t`` ("start-up" before the first mark)."""
    name = "start-up"
    for phase, start in phases:
        if start <= t:
            name = phase
    return name


def peak_metrics(
    samples: list[Sample], phases: list[tuple[str, float]], phase_mem: list[tuple[str, float, dict]], exit_mem: dict
) -> dict[str, Any]:
    """The reported peak RSS: the larger of the sampled peak and the kernel's high-water mark (VmHWM) that the
    worker read at each phase start and at exit, with the phase it happened in and which one it came from.

    Sampling at 20 Hz misses short spikes (an allocation freed within 50 ms, worse under CPU load); VmHWM cannot.
    The high-water mark is monotonic, so a rise between two phase marks happened in the phase between them.
    Also: the RSS parts at the start of "done" (anon, file-backed, shmem), to show how much of RSS is shared files.
    """
    out: dict[str, Any] = {}
    sampled = max((mib for _, mib in samples), default=None)
    sampled_t = max(samples, key=lambda s: s[1])[0] if samples else None
    marks = [(name, mem["hwm"] / 1024) for name, _, mem in phase_mem if "hwm" in mem]
    if "hwm" in exit_mem:
        marks.append(("exit", exit_mem["hwm"] / 1024))
    hwm = max((v for _, v in marks), default=None)
    hwm_phase = None
    if hwm is not None:
        first = next(i for i, (_, v) in enumerate(marks) if v == hwm)
        # the rise to the final value happened in the phase before the mark that first shows it
        hwm_phase = marks[first - 1][0] if first > 0 else "start-up"
        if hwm_phase == "done":
            hwm_phase = "done (writing the result)"
    out["peak_rss_sampled_mib"] = sampled
    out["peak_rss_hwm_mib"] = hwm
    if sampled is None and hwm is None:
        return out
    out["peak_rss_mib"] = max(v for v in (sampled, hwm) if v is not None)
    if hwm is not None and (sampled is None or hwm > sampled * (1 + MISSED_PEAK_REL)):
        out["peak_rss_source"], out["peak_rss_phase"] = "kernel high-water mark", hwm_phase
    else:  # the samples caught the peak (to within MISSED_PEAK_REL): the timeline shows where
        out["peak_rss_source"], out["peak_rss_phase"] = "sampled", phase_at(sampled_t, phases)
    if sampled is not None and hwm is not None:
        out["peak_rss_missed_mib"] = max(0.0, hwm - sampled)  # what the sampler alone would have missed
    done = next((mem for name, _, mem in phase_mem if name == "done"), None)
    if done:
        for part in ("anon", "file", "shmem"):
            if part in done:
                out[f"rss_{part}_mib"] = done[part] / 1024
    return out


def _call(callback: Callable | None, *args: Any) -> None:
    if callback is None:
        return
    try:
        callback(*args)
    except Exception:  # a failing consumer (e.g. a store write) must not stop the measurement
        log.exception("profiling callback failed")


def profile_in_child(
    artifact_path: Path,
    workload: Workload,
    on_samples: SamplesCallback | None = None,
    on_phase: PhaseCallback | None = None,
    on_progress: ProgressCallback | None = None,
    timeout_s: float = 1800,
    sample_interval_s: float | None = 0.05,
) -> ChildResult:
    """Profile the artifact at ``artifact_path`` in a fresh ``python -m profiling.measure.child`` process.

    RSS is sampled every ``sample_interval_s`` (None: no sampler, only to measure the sampler's own overhead);
    times in samples and phases are seconds since just before the child was spawned. The child (its whole process
    group) is killed after ``timeout_s``. ``peak_rss_mib`` is the larger of the sampler's peak and the kernel's
    high-water mark read by the worker at each phase and at exit (see ``peak_metrics``); ``rusage_maxrss_mib`` is
    the kernel's max RSS of the reaped worker as its parent sees it, an outside check on it.
    """
    t_setup = time.time()
    artifact = Artifact.load(artifact_path)
    metrics: dict[str, Any] = {"disk_mib": artifact.disk_bytes() / 2**20}
    tmp = Path(tempfile.mkdtemp(prefix="profile-child-"))
    try:
        workload_path, result_path, stderr_path = tmp / "workload.json", tmp / "result.json", tmp / "stderr.log"
        workload_path.write_text(json.dumps(workload.to_json()))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        env[PARENT_PID_ENV] = str(os.getpid())  # the child exits if we die
        cmd = [
            sys.executable,
            "-m",
            "profiling.measure.child",
            str(workload_path),
            str(artifact.path.resolve()),
            str(result_path),
        ]
        samplers: list[RssSampler] = []

        def start_sampler(pid: int) -> None:  # the worker announces itself first thing
            if sample_interval_s and not samplers:
                samplers.append(RssSampler(pid, sample_interval_s, on_samples=on_samples, t0=t0).start())

        with open(stderr_path, "wb") as stderr:
            t0 = time.time()
            # reading the artifact and writing the workload: before the child's clock
            metrics["profiler_setup_s"] = t0 - t_setup
            proc = subprocess.Popen(
                cmd,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                bufsize=1,
                start_new_session=True,  # its own process group, so a timeout kills the worker too
            )
        reader = _StdoutReader(proc.stdout, t0, on_phase, on_progress, start_sampler)
        reader.start()
        try:
            timed_out = _wait(proc, timeout_s)
        except BaseException:  # e.g. Ctrl-C in the CLI: never leave the child running
            _kill_group(proc)
            raise
        metrics["child_wall_s"] = time.time() - t0  # spawn to exit, on the phase marks' clock (profiling.measure.timing)
        reader.join(timeout=5)
        proc.stdout.close()
        samples = samplers[0].stop() if samplers else []
        kib = reader.rusage_maxrss_kib
        metrics["rusage_maxrss_mib"] = kib / 1024 if kib else None  # KiB on Linux
        metrics.update(peak_metrics(samples, reader.phases, reader.phase_mem, reader.exit_mem))
        if sample_interval_s:
            metrics["n_samples"] = len(samples)
            metrics["sample_rate_hz"] = samplers[0].rate_hz() if samplers else None
            metrics["sampler_cpu_s"] = samplers[0].cpu_s if samplers else None
        tail = _tail(stderr_path)
        result = _read_result(result_path)
        metrics = {**result.get("metrics", {}), **metrics}
        error = _error(proc.returncode, timed_out, timeout_s, reader, result, tail)
        out = ChildResult(
            ok=error is None,
            error=error,
            metrics=metrics,
            preds=result.get("preds", []),
            probs=result.get("probs", []),
            samples=samples,
            phases=reader.phases,
            returncode=proc.returncode,
            log_tail=tail,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if out.ok and workload.eval_labels is not None:
        from profiling.measure.evaluation import classification_metrics

        n_labels = int(artifact.meta.get("num_labels") or (len(out.probs[0]) if out.probs else 1))
        out.metrics.update(classification_metrics(workload.eval_labels, out.preds, n_labels))
    return out


def _wait(proc: subprocess.Popen, timeout_s: float) -> bool:
    """Wait for the child to exit, killing its process group after the timeout; returns whether it timed out."""
    try:
        proc.wait(timeout=timeout_s)
        return False
    except subprocess.TimeoutExpired:
        log.warning("child %d timed out after %g s; killing it", proc.pid, timeout_s)
        _kill_group(proc)
        return True


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the child's process group (the reaper and its worker) and reap the reaper."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _read_result(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as exc:
        return {"error": f"unreadable result from the child: {exc}"}
    return data if isinstance(data, dict) else {"error": "the child's result is not a JSON object"}


def _tail(path: Path, lines: int = 20) -> str:
    try:
        with open(path, errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines))
    except OSError:
        return ""


def _error(
    rc: int | None, timed_out: bool, timeout_s: float, reader: _StdoutReader, result: dict, tail: str
) -> str | None:
    last_phase = reader.phases[-1][0] if reader.phases else "start-up"
    if timed_out:
        return f"timed out after {timeout_s:g} s during phase {last_phase!r}; the child was killed"
    if rc is not None and rc < 0:
        name = signal.Signals(-rc).name if -rc in signal.valid_signals() else str(-rc)
        hint = " (out of memory?)" if -rc == signal.SIGKILL else ""
        return f"killed by signal {-rc} ({name}) during phase {last_phase!r}{hint}"
    if result.get("error"):
        return str(result["error"])
    if reader.error:
        return reader.error
    if rc:
        last = [line for line in tail.splitlines() if line.strip()][-3:]
        return f"the child exited with code {rc} during phase {last_phase!r}: " + " | ".join(last)
    if "metrics" not in result:
        return "the child exited without writing a result"
    return None

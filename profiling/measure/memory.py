"""RSS timeline of another process, sampled in a thread from /proc/PID/statm; USS via psutil."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

import psutil

log = logging.getLogger(__name__)

Sample = tuple[float, float]  # (seconds since t0, RSS in MiB)
SamplesCallback = Callable[[list[Sample]], None]


class RssSampler:
    """Samples a process's resident set size every ``interval_s`` in a daemon thread.

    Samples are (seconds since ``t0``, RSS MiB), with ``t0`` a ``time.time()`` value (default: now), so they line up
    with phase marks taken on the same clock. ``on_samples`` receives the new samples about every ``flush_s``
    seconds and once more at ``stop()``. The process vanishing (exit, zombie) ends sampling quietly.
    """

    def __init__(
        self,
        pid: int,
        interval_s: float = 0.05,
        on_samples: SamplesCallback | None = None,
        flush_s: float = 0.5,
        t0: float | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"sampling interval must be > 0 s, got {interval_s}")
        self.pid = pid
        self.interval_s = interval_s
        self.flush_s = flush_s
        self.on_samples = on_samples
        self.t0 = time.time() if t0 is None else t0
        self.samples: list[Sample] = []
        self.vanished = False
        self.cpu_s = 0.0  # CPU time the sampling thread used: its cost to the machine
        self._stop = threading.Event()
        self._sent = 0
        self._thread = threading.Thread(target=self._run, name=f"rss-sampler-{pid}", daemon=True)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> list[Sample]:
        """Stop sampling, deliver the last samples to the callback, and return all samples."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        return self.samples

    @property
    def peak_mib(self) -> float | None:
        return max((mib for _, mib in self.samples), default=None)

    def rate_hz(self) -> float | None:
        """Achieved sampling rate over the whole timeline."""
        if len(self.samples) < 2:
            return None
        span = self.samples[-1][0] - self.samples[0][0]
        return (len(self.samples) - 1) / span if span > 0 else None

    def _run(self) -> None:
        cpu_start = time.thread_time()
        next_at = time.perf_counter()
        last_flush = next_at
        while not self._stop.is_set():
            try:
                mib = rss_mib(self.pid)  # one /proc read
                t = time.time()
            except psutil.NoSuchProcess:  # the child has exited and been reaped
                self.vanished = True
                break
            # None: access denied; 0 MiB: a zombie whose memory is already released. Neither is a real reading.
            if mib is not None and mib > 0:
                self.samples.append((t - self.t0, mib))
            now = time.perf_counter()
            if now - last_flush >= self.flush_s:
                last_flush = now
                self._flush()
            # A fixed schedule rather than sleep(interval) after each read, so the rate does not drift;
            # if we fell behind (a loaded machine), skip ahead instead of bursting.
            next_at += self.interval_s
            if next_at < now:
                next_at = now + self.interval_s
            self._stop.wait(next_at - now)
        self._flush()
        self.cpu_s = time.thread_time() - cpu_start

    def _flush(self) -> None:
        new = self.samples[self._sent :]  # only this thread appends, so no lock is needed
        self._sent = len(self.samples)
        if new and self.on_samples is not None:
            try:
                self.on_samples(new)
            except Exception:  # a failing consumer must not stop the measurement
                log.exception("on_samples callback failed")


PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_mib(pid: int) -> float | None:
    """A process's resident set size in MiB: the second field of ``/proc/PID/statm`` (resident pages), the figure
    psutil's ``memory_info().rss`` (and memory-profiler's psutil backend) reports, without building a psutil Process per
    sample. Elsewhere than Linux, psutil. Raises ``psutil.NoSuchProcess`` once the process is gone (reaped); returns
    None when access is denied. A zombie reads 0."""
    try:
        with open(f"/proc/{int(pid)}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * PAGE_SIZE / 2**20
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):  # Linux: the process is gone
            raise psutil.NoSuchProcess(pid) from None
    except PermissionError:
        return None
    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except psutil.AccessDenied:
        return None


def uss_mib(pid: int | None = None) -> float | None:
    """Unique set size (memory freed if the process exited) in MiB, or None where psutil cannot tell."""
    try:
        info = psutil.Process(pid).memory_full_info()
    except (psutil.Error, OSError, NotImplementedError):
        return None
    uss = getattr(info, "uss", None)
    return None if uss is None else uss / 2**20

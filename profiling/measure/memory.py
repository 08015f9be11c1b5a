"""RSS timeline of another process, sampled in a thread with memory-profiler; USS via psutil."""

from __future__ import annotations

import logging
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
        self._get_memory = backend()
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
                got = self._get_memory(self.pid, "psutil", timestamps=True)  # one /proc read
            except psutil.NoSuchProcess:  # includes ZombieProcess: the child has exited
                self.vanished = True
                break
            # None: access denied; 0 MiB: a zombie whose memory is already released. Neither is a real reading.
            if got is not None and got[0] > 0:
                self.samples.append((got[1] - self.t0, got[0]))
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


def backend() -> Callable:
    """memory-profiler's sampling function, imported on first use: not at module level, because the profiling child
    imports this module and must stay lean (memory-profiler pulls in IPython when installed, ~0.4 s); call it before
    spawning a process so the first sample is not delayed by the import."""
    from memory_profiler import _get_memory

    return _get_memory


def uss_mib(pid: int | None = None) -> float | None:
    """Unique set size (memory freed if the process exited) in MiB, or None where psutil cannot tell."""
    try:
        info = psutil.Process(pid).memory_full_info()
    except (psutil.Error, OSError, NotImplementedError):
        return None
    uss = getattr(info, "uss", None)
    return None if uss is None else uss / 2**20

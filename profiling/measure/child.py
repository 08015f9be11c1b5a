"""Profiles one artifact in a fresh process: ``python -m profiling.measure.child WORKLOAD.json ARTIFACT_DIR RESULT.json``.

The process forks at once: a worker does the profiling while this small process only reaps it, so the worker's
``ru_maxrss`` is its own (see ``reap_worker``). Protocol, JSON lines on stdout: first ``{"pid": worker pid}``, then
``{"phase": name, "t": time.time()}`` at each phase start (import, load, first-call, warm-up, latency, evaluation,
done) and ``{"progress": frac, "msg": str}``, last (from the reaper) ``{"rusage_maxrss_kib": int, "worker_status":
int}``. Logging goes to stderr. The result JSON (``{"metrics", "preds", "probs"}`` or ``{"error", "traceback"}``) is
written atomically; on error the exit code is 1.

Only the standard library is imported at module level: the thread-count variables must be set before numpy, torch or
onnxruntime load, and what this process imports is part of what it measures.

Test-only hook: if ``PROFILING_TEST_PREDICTOR=module:function`` is set, the child calls ``function(artifact, threads)``
instead of ``compression.predictors.load_predictor`` (and imports no backend), so the machinery can be tested with fake
predictors. Never set it outside tests.
"""

from __future__ import annotations

import atexit
import importlib
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

log = logging.getLogger("profiling.measure.child")

TEST_PREDICTOR_ENV = "PROFILING_TEST_PREDICTOR"
PARENT_PID_ENV = "PROFILING_PARENT_PID"
THREAD_ENV = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "RAYON_NUM_THREADS",
)
# The framework each format runs on, imported in the "import" phase so load_time_s measures loading the model only
# (transformers imports lazily: its model base class and the architecture's module cost seconds on first use).
BACKEND_MODULES = {
    "onnx": ("onnxruntime",),
    "openvino": ("openvino",),
    "hf": ("torch", "transformers", "transformers.modeling_utils"),
    "torch-int8": ("torch", "transformers", "transformers.modeling_utils"),
    "torchscript": ("torch",),
    # torch.export.load imports its archive reader and tracer on first use (seconds): part of importing, not loading
    "pt2": ("torch", "torch.export", "torch.export.pt2_archive._package", "torch.export._trace"),
}
PHASES = ("import", "load", "first-call", "warm-up", "latency", "evaluation", "done")


class Channel:
    """The stdout protocol on a private copy of fd 1; fd 1 itself is pointed at stderr so stray prints (from any
    library, C code included) cannot corrupt the protocol."""

    def __init__(self) -> None:
        sys.stdout.flush()
        self._out = os.fdopen(os.dup(1), "w", buffering=1)
        os.dup2(2, 1)
        self._last_progress = 0.0

    def send(self, **msg: Any) -> None:
        self._out.write(json.dumps(msg) + "\n")
        self._out.flush()

    def phase(self, name: str) -> None:
        log.info("phase %s", name)
        # The kernel's RSS high-water mark so far: a peak between two RSS samples is not lost (see monitor).
        self.send(phase=name, t=time.time(), mem=read_status_kib())

    def progress(self, frac: float, msg: str, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_progress >= 0.25:  # throttled: progress must not cost measurable time
            self._last_progress = now
            self.send(progress=round(min(max(frac, 0.0), 1.0), 4), msg=msg)


STATUS_FIELDS = {"VmHWM": "hwm", "VmRSS": "rss", "RssAnon": "anon", "RssFile": "file", "RssShmem": "shmem"}


def read_status_kib(path: str = "/proc/self/status") -> dict[str, int]:
    """This process's RSS high-water mark, RSS and its anonymous / file-backed / shared-memory parts (KiB) from
    /proc/self/status (Linux; empty elsewhere). File-backed pages are e.g. the mapped model file and libraries."""
    out: dict[str, int] = {}
    try:
        with open(path) as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in STATUS_FIELDS:
                    out[STATUS_FIELDS[key]] = int(value.split()[0])
    except (OSError, ValueError, IndexError):
        return {}
    return out


def set_thread_env(threads: int) -> None:
    for name in THREAD_ENV:
        os.environ[name] = str(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true" if threads > 1 else "false")
    # Loading a local artifact never needs the Hub; never hang on the network.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _watch_parent(ppid: int) -> None:
    """Exit if the profiler that started us dies, so an orphan never keeps burning CPU on a shared machine."""
    while True:
        if os.getppid() != ppid:  # reparented: our parent is gone
            log.error("the profiling process %d is gone; exiting", ppid)
            os._exit(70)
        time.sleep(1.0)


def backend_modules(fmt: str, model_type: str | None) -> list[str]:
    names = list(BACKEND_MODULES.get(fmt, ()))
    if "transformers" in names and model_type and re.fullmatch(r"[a-z0-9_]+", model_type):
        names.append(f"transformers.models.{model_type}.modeling_{model_type}")
    return names


def batch_independent(lineage) -> bool:
    """Whether a model made by these technique steps gives each text the same prediction whatever else is in its
    batch: no step quantizes or changes the number format (a dynamic int8 model scales its activations per batch),
    and every step is known. Used to evaluate in batches of similar length."""
    from compression.registry import REGISTRY

    for name in lineage or ():
        technique = REGISTRY.get(str(name))
        if technique is None:
            return False
        cls = technique.config_cls
        if getattr(cls, "group", "") == "quantization" or cls.numeric_kind() is not None:
            return False
    return True


def _predictor_factory(artifact):
    hook = os.environ.get(TEST_PREDICTOR_ENV)
    if hook:
        module, _, func = hook.partition(":")
        log.warning("using test predictor %s (test-only hook %s)", hook, TEST_PREDICTOR_ENV)
        return getattr(importlib.import_module(module), func)
    from compression.predictors import load_predictor

    for name in backend_modules(artifact.format, artifact.meta.get("model_type")):
        try:
            importlib.import_module(name)
        except ImportError as exc:  # an unusual architecture module name: it is imported during load instead
            log.info("could not pre-import %s: %s", name, exc)
    return load_predictor


def profile(workload: dict, artifact_dir: Path, channel: Channel, t_import: float) -> dict:
    """Runs the phases after "import" has started; returns the result record."""
    threads = int(workload["threads"])
    batch_size = int(workload["batch_size"])
    repeats, warmup = int(workload["repeats"]), int(workload["warmup"])
    lat_texts, eval_texts = list(workload["latency_texts"]), list(workload["eval_texts"])
    if not lat_texts:
        raise ValueError("the workload has no latency texts")

    import numpy as np

    from compression.artifact import Artifact
    from profiling.measure.evaluation import softmax
    from profiling.measure.latency import CpuWindow, summarize, time_call
    from profiling.measure.memory import uss_mib
    from profiling.measure.stats import adaptive_repeat_ms

    artifact = Artifact.load(artifact_dir)
    factory = _predictor_factory(artifact)
    metrics: dict[str, Any] = {
        "import_time_s": time.perf_counter() - t_import,
        "threads": threads,
        "batch_size": batch_size,
        "format": artifact.format,
    }

    channel.phase("load")
    channel.progress(0.02, "loading the model", force=True)
    load_ms, predictor = time_call(factory, artifact, threads)
    metrics["load_time_s"] = load_ms / 1000.0
    if getattr(predictor, "compile_time_s", None):  # torch-compile: compiled during load, reported apart
        metrics["compile_time_s"] = predictor.compile_time_s
        metrics["load_time_s"] -= predictor.compile_time_s

    def batch_at(i: int, n: int) -> list[str]:  # cycle through the real texts
        return [lat_texts[(i * n + j) % len(lat_texts)] for j in range(n)]

    n_labels = artifact.meta.get("num_labels")

    def predict(texts: list[str]) -> np.ndarray:
        return predictor.predict_logits(texts)

    channel.phase("first-call")
    channel.progress(0.1, "first call", force=True)
    metrics["first_call_ms"], logits = time_call(predict, batch_at(0, batch_size))
    logits = np.asarray(logits)
    if logits.ndim != 2 or logits.shape[0] != batch_size or (n_labels and logits.shape[1] != n_labels):
        raise ValueError(
            f"predictor returned logits of shape {logits.shape} for {batch_size} texts and {n_labels} labels"
        )

    channel.phase("warm-up")
    channel.progress(0.12, "warming up", force=True)
    t_warm = time.perf_counter()
    for i in range(warmup):
        predict(batch_at(i, 1))
        predict(batch_at(i, batch_size))
    metrics["warmup_time_s"] = time.perf_counter() - t_warm

    channel.phase("latency")
    # Repeats: at least `repeats`; with a target, more until the median's bootstrap 95 % interval is within
    # ±target or half the variant's time budget is spent per figure (profiling.measure.stats.adaptive_repeat_ms).
    target = float(workload.get("ci_target_pct") or 0) / 100.0
    budget = float(workload.get("latency_budget_s") or 0) / 2.0
    max_repeats = max(repeats, int(workload.get("max_repeats") or repeats))
    metrics["latency_target_rel"] = target
    for key, n, lo, hi in (("b1", 1, 0.15, 0.35), ("bN", batch_size, 0.35, 0.6)):
        t_start = time.perf_counter()

        def report(i: int, _ms: float, key=key, lo=lo, hi=hi, t_start=t_start) -> None:
            done = min((i + 1) / repeats, 1.0)
            if target:  # the minimum repeats, then the budget (or max_repeats) fills the rest of the bar
                rest = (time.perf_counter() - t_start) / budget if budget else (i + 1) / max_repeats
                done = 0.3 * done + 0.7 * min(rest, 1.0)
            channel.progress(lo + (hi - lo) * done, f"latency {key}: {i + 1} repeats")

        window = CpuWindow()
        run = adaptive_repeat_ms(lambda i, n=n: predict(batch_at(i, n)), repeats, max_repeats, target, budget,
                                 on_each=report)
        contention = window.stop()
        metrics[f"latency_{key}_time_s"] = time.perf_counter() - t_start  # where the time went (profiling.measure.timing)
        raw = run.raw
        metrics[f"latency_{key}_ms"] = raw
        for stat, value in summarize(raw).items():
            if stat != "n":
                metrics[f"latency_{key}_{stat}_ms"] = value
        metrics.update(run.metrics(f"latency_{key}_"))
        metrics.update({f"latency_{key}_{k}": v for k, v in contention.items()})
    metrics["throughput_per_s"] = batch_size * 1000.0 / metrics["latency_bN_median_ms"]
    if workload.get("workloads"):  # real texts with dynamic/bucketed padding or fixed shapes (profiling.measure.workloads)
        from profiling.measure.workloads import measure_workloads

        t_workloads = time.perf_counter()
        metrics["workloads"] = measure_workloads(
            predictor, lat_texts, workload["workloads"], int(workload.get("workload_repeats") or repeats),
            warmup=1, progress=lambda frac, msg: channel.progress(0.6, msg),
        )
        metrics["workloads_time_s"] = time.perf_counter() - t_workloads

    channel.phase("evaluation")
    t_eval = time.perf_counter()
    # Batches of texts of similar length where that cannot change a prediction (dynamic padding pads each batch to
    # its longest text, so a batch of similar lengths computes less padding); the predictions go back to the
    # sample's order. A quantized model keeps the sample's batches: its activations' scale may depend on the batch.
    order = list(range(len(eval_texts)))
    if batch_independent(artifact.lineage):
        order.sort(key=lambda i: (len(eval_texts[i]), i))
    chunks = []
    for start in range(0, len(order), batch_size):
        batch = [eval_texts[i] for i in order[start : start + batch_size]]
        chunks.append(np.asarray(predict(batch), dtype=np.float32))
        done = min(start + batch_size, len(eval_texts))
        channel.progress(0.6 + 0.4 * done / len(eval_texts), f"evaluation: {done}/{len(eval_texts)}")
    metrics["eval_time_s"] = time.perf_counter() - t_eval
    metrics["n_eval"] = len(eval_texts)
    if chunks:
        logits = np.empty((len(order), chunks[0].shape[1]), dtype=np.float32)
        logits[order] = np.concatenate(chunks)
    probs = softmax(logits) if chunks else np.zeros((0, 0))
    preds = probs.argmax(axis=-1).tolist() if chunks else []

    metrics["imported_torch"] = "torch" in sys.modules
    torch = sys.modules.get("torch")
    if torch is not None:
        metrics["torch_threads"] = torch.get_num_threads()
    metrics["uss_mib"] = uss_mib()  # this process's unique memory at the end of evaluation
    if hasattr(predictor, "close"):
        predictor.close()
    channel.progress(1.0, "done", force=True)
    channel.phase("done")
    return {"metrics": metrics, "preds": preds, "probs": np.round(probs, 5).tolist()}


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def reap_worker(ppid: int) -> int | None:
    """Fork the worker that does the profiling; this small process stays behind only to reap it.

    Why: Linux counts a process's RSS before exec in its max RSS, and a child spawned by a big profiler (torch
    loaded) would report the profiler's size. Forked from this ~15 MiB process, the worker's ``ru_maxrss`` is its
    own peak. Returns None in the worker; in this process, reports ``{"rusage_maxrss_kib", "worker_status"}`` on
    the protocol once the worker is reaped, then exits with the worker's status (or dies by the same signal).
    """
    if not hasattr(os, "fork"):  # not POSIX: profile in this process; the monitor's own figure is all there is
        return None
    pid = os.fork()
    if pid == 0:
        return None

    def watch() -> None:  # if the monitor dies, take the worker down with us
        while os.getppid() == ppid:
            time.sleep(1.0)
        os.kill(pid, signal.SIGKILL)
        os._exit(70)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    _, status, rusage = os.wait4(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    os.write(1, (json.dumps({"rusage_maxrss_kib": rusage.ru_maxrss, "worker_status": code}) + "\n").encode())
    if code < 0:  # die the same way, so the monitor sees the signal
        if -code not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m profiling.measure.child WORKLOAD.json ARTIFACT_DIR RESULT.json", file=sys.stderr)
        return 2
    # The monitor passes its pid: it may die before this line runs, and then getppid() would already be 1.
    ppid = int(os.environ.get(PARENT_PID_ENV) or os.getppid())
    watched = os.getpid()  # the worker's parent, taken before the fork for the same reason
    code = reap_worker(ppid)
    if code is not None:
        return code
    if watched == os.getpid():  # no fork happened: watch the monitor directly
        watched = ppid
    t_import = time.perf_counter()
    channel = Channel()
    channel.send(pid=os.getpid())  # the process to sample
    channel.phase("import")  # everything before it is interpreter start-up
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s child %(levelname)s %(name)s: %(message)s"
    )
    workload_path, artifact_dir, result_path = Path(argv[0]), Path(argv[1]), Path(argv[2])
    threading.Thread(target=_watch_parent, args=(watched,), name="parent-watch", daemon=True).start()
    try:
        workload = json.loads(workload_path.read_text())
        set_thread_env(int(workload["threads"]))
        result = profile(workload, artifact_dir, channel, t_import)
    except BaseException as exc:  # MemoryError and KeyboardInterrupt must be reported too
        error = f"{type(exc).__name__}: {exc}"
        log.exception("profiling failed: %s", error)
        write_json_atomic(result_path, {"error": error, "traceback": traceback.format_exc()})
        channel.send(error=error)
        return 1
    write_json_atomic(result_path, result)
    channel.send(exit_mem=read_status_kib())  # the high-water mark after the result was written
    return 0


def exit_now(code: int) -> None:
    """Exit once the result is written and the protocol flushed: run the exit handlers, flush, then ``os._exit``,
    skipping the interpreter's teardown of every module, which nothing needs here and which costs seconds once
    torch and transformers are loaded (measured: about 6 s against 0.4 s on a loaded 2-core machine)."""
    logging.shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    exit_now(main(sys.argv[1:]))

"""The ray executor: a run's variants built and measured on a Ray cluster, each one alone on a node.

Ray's CPUs are logical and it pins nothing, so each variant is one task that

- runs in a fresh worker process (``max_calls=1``) and asks for one unit of the custom resource ``bench_node``
  (given to a node when it starts: ``ray start --resources '{"bench_node": 1}'``) plus all the CPUs of a bench
  node, so nothing else is scheduled on its node while it builds and measures (a build that trains runs inside the
  same task, hence never next to another measurement);
- pins itself and the profiling child to ``threads`` CPUs (``os.sched_setaffinity``; the node's
  ``$COMPRESSION_BENCH_CPUS``, e.g. ``2-3``, says which ones when several nodes share a host), and restores the
  thread variables Ray sets (``OMP_NUM_THREADS``) to the driver's, so torch and ONNX Runtime get the run's thread
  count exactly as in a local run;
- builds the variant (``compression.apply`` into the shared data folder) and measures it with the local executor's
  child harness (``profile_in_child``), so the figures are comparable with a local run's;
- sends its progress, memory samples and phase marks to a small progress actor as it goes, and returns the figures
  with the node that measured them (id, address, CPU model and flags, affinity).

Only this driver (the run's process) writes the store: it drains the actor while it waits for the tasks
(``ray.wait``) and finishes each variant as its task returns. The Original's predictions are needed for agreement,
so a variant that finishes first waits for them. A node that dies mid-variant fails that variant with the reason
(Ray's retries are off: a retried measurement would silently mix nodes); the rest of the run goes on. Stopping the
run cancels its tasks. A variant measured on a node whose CPU differs from the others' gets a note.

The artifacts are written under ``$COMPRESSION_DATA_DIR``, which must be the same shared folder on every node (and
so must a ``path:`` model); each task checks that it sees the driver's data folder and fails with a clear message
when it does not.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import socket
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from compression.errors import UserError
from profiling import paths
from profiling.jobs.executor import ExecutorError, Sweep, host_port
from profiling.schema import VariantStatus

log = logging.getLogger(__name__)

BENCH_RESOURCE = "bench_node"
CPUS_ENV = "COMPRESSION_BENCH_CPUS"  # on a node: the CPUs its measuring task pins to, e.g. "0" or "2-3"
RAY_VERSION = "2.60.0"  # the version requirements-dev.txt pins
CONNECT_TIMEOUT_S = 10.0  # the head's port must answer within this (ray.init itself would retry for minutes)
NO_NODE_TIMEOUT_S = 60.0  # variants left waiting with no node offering the resource fail after this long
POLL_S = 0.25  # how often the driver writes streamed progress to the store
FLUSH_EVERY_S = 0.3  # how often a task sends its buffered progress
PASSED_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "OMP_WAIT_POLICY", "COMPRESSION_MODEL_ROOTS")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS")
PROBE_NAME = ".cluster-probe"


class ClusterError(ExecutorError):
    """The Ray cluster cannot run a sweep (not reachable, no bench node, ray missing); the message says why."""


class NodeLost(UserError):
    """The node measuring a variant died or left the cluster."""


# ---- driver ---------------------------------------------------------------------------------------------


class RayExecutor:
    """Every variant a task on a bench node of the cluster at ``address``; the results written here as they come."""

    def __init__(self, address: str):
        self.address = address

    def run(self, sweep: Sweep) -> None:
        ray = import_ray()
        sweep.state["where"] = f"connecting to the Ray cluster at {self.address}"
        sweep.rep.stage(sweep.state["where"])
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        connect(ray, self.address)
        if threading.current_thread() is threading.main_thread():
            for sig, handler in handlers.items():  # ray.init installs its own: a stop must still reach the runner
                signal.signal(sig, handler)
        try:
            _Drive(ray, self.address, sweep).run()
        finally:
            ray.shutdown()


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ClusterError(f"the ray executor needs Ray on this machine and on every node: pip install "
                           f"ray=={RAY_VERSION}") from None
    return ray


def connect(ray: Any, address: str) -> None:
    """ray.init(address) after checking the head answers at all, so a wrong address fails in seconds."""
    target = host_port(address)
    if target is not None:
        try:
            socket.create_connection(target, timeout=CONNECT_TIMEOUT_S).close()
        except OSError as exc:
            raise ClusterError(f"no Ray cluster answers at {address} ({exc.strerror or exc}); fix the address, or "
                               f"start a cluster: ray start --head, and on each measuring node ray start --address "
                               f"HEAD:PORT --resources '{{\"{BENCH_RESOURCE}\": 1}}'") from None
    env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
    env["COMPRESSION_DATA_DIR"] = str(paths.data_dir().resolve())
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(paths.REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    try:
        ray.init(address=address, runtime_env={"env_vars": env}, log_to_driver=False, logging_level=logging.WARNING,
                 configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        raise ClusterError(f"could not connect to the Ray cluster at {address}: {' '.join(str(exc).split())}") from None


def bench_nodes(ray: Any) -> list[dict]:
    """The alive nodes offering the bench resource."""
    return [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get(BENCH_RESOURCE, 0) >= 1]


class _Drive:
    """One run on the cluster: submit every variant, write what streams back, finish variants as they return."""

    def __init__(self, ray: Any, address: str, sweep: Sweep):
        self.ray, self.address, self.sweep = ray, address, sweep
        self.rep, self.store, self.run_id = sweep.rep, sweep.store, sweep.run_id
        self.node_of: dict[int, dict] = {}  # the node a running variant announced
        self.held: dict[int, tuple[dict, dict]] = {}  # finished before the original: (variant, outcome)
        self.finished: dict[int, dict] = {}  # idx -> node info of variants measured
        self.progress_lost = False
        # each variant's run_offset_s counts from the runner's start, on this machine's wall clock
        self.t0_wall = time.time() - (time.perf_counter() - sweep.state.get("t0", time.perf_counter()))

    def run(self) -> None:
        ray, sweep = self.ray, self.sweep
        sweep.state["where"] = f"looking for bench nodes in the Ray cluster at {self.address}"
        nodes = bench_nodes(ray)
        if not nodes:
            raise ClusterError(f"no node of the Ray cluster at {self.address} offers the resource "
                               f"'{BENCH_RESOURCE}': start each measuring node with --resources "
                               f"'{{\"{BENCH_RESOURCE}\": 1}}'")
        cpus = min(float(n["Resources"].get("CPU", 0)) for n in nodes)
        if cpus < 1:
            raise ClusterError(f"the bench nodes of the Ray cluster at {self.address} have no CPUs to give "
                               "(start them with --num-cpus N)")
        probe = _write_probe(self.run_id)
        self._record_cluster(nodes, cpus)
        # One thread: Ray runs a single-threaded actor's calls from one submitter in the order they were sent, so a
        # task's progress and phase marks arrive in order (a threaded actor may run them out of order).
        progress = ray.remote(ProgressLog).options(num_cpus=0, scheduling_strategy=_here(ray)).remote()
        task = ray.remote(num_cpus=cpus, resources={BENCH_RESOURCE: 1}, max_calls=1, max_retries=0,
                          retry_exceptions=False)(measure_on_node)
        data_ref = ray.put(sweep.data)
        settings = {**sweep.settings, "thread_env": {name: os.environ.get(name) for name in THREAD_VARS}}
        pending = {}
        try:
            for v in sweep.variants:
                ref = task.remote(v, sweep.base, data_ref, settings, sweep.eval_texts, sweep.latency_texts,
                                  progress, probe)
                pending[ref] = v
            self._where(len(pending))
            self._follow(pending, progress)
        except BaseException as exc:  # a stop (SIGTERM), a failed original, a bug: no task keeps measuring
            for ref in pending:
                ray.cancel(ref, force=True)
            stop = signal_inside(exc)
            if stop is not None and stop is not exc:
                raise stop from None
            raise
        finally:
            Path(probe["path"]).unlink(missing_ok=True)
        self._flag_odd_cpus()

    def _follow(self, pending: dict, progress: Any) -> None:
        ray = self.ray
        original_preds: list[int] | None = None
        lonely_since: float | None = None
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
            self._drain(progress)
            for ref in ready:
                v = pending.pop(ref)
                outcome = self._outcome(ref, v)
                if v["idx"] == 0:
                    original_preds = self._finish(v, outcome, None)
                    if original_preds is None:
                        from profiling.jobs.runner import _RunFailed

                        error = next(x["error"] for x in self.store.variants(self.run_id) if x["idx"] == 0)
                        raise _RunFailed(f"the original model could not be profiled: {error}")
                    for held_v, held_outcome in sorted(self.held.values(), key=lambda h: h[0]["idx"]):
                        self._finish(held_v, held_outcome, original_preds)
                    self.held.clear()
                elif original_preds is None and outcome.get("ok"):
                    self.held[v["idx"]] = (v, outcome)
                    self.rep.variant(v["idx"], stage="measured; waiting for the Original's predictions")
                else:
                    self._finish(v, outcome, original_preds)
                self._where(len(pending))
            if ready or not pending:
                lonely_since = None
                continue
            if bench_nodes(ray):
                lonely_since = None
            elif lonely_since is None:
                lonely_since = time.monotonic()
            elif time.monotonic() - lonely_since > NO_NODE_TIMEOUT_S:
                reason = (f"no node offering '{BENCH_RESOURCE}' is left in the Ray cluster at {self.address} "
                          f"(waited {NO_NODE_TIMEOUT_S:g} s)")
                for ref, v in list(pending.items()):
                    ray.cancel(ref, force=True)
                    self._finish(v, {"ok": False, "error": reason, "node": self.node_of.get(v["idx"])},
                                 original_preds)
                    del pending[ref]
                if original_preds is None:
                    from profiling.jobs.runner import _RunFailed

                    raise _RunFailed(f"the original model could not be profiled: {reason}")

    def _outcome(self, ref: Any, v: dict) -> dict:
        """The task's result, or a failure saying what happened to its node or worker."""
        ray = self.ray
        node = self.node_of.get(v["idx"])
        try:
            return ray.get(ref)
        except (ray.exceptions.NodeDiedError, ray.exceptions.WorkerCrashedError, ray.exceptions.ObjectLostError,
                ray.exceptions.LocalRayletDiedError) as exc:
            where = f"node {_node_name(node)}" if node else "its node"
            alive = {n["NodeID"] for n in ray.nodes() if n.get("Alive")}
            what = "died or left the cluster" if node and node["node_id"] not in alive else "lost its worker"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            reason = (f"{where} {what} while measuring this variant ({type(exc).__name__}: {first[:200]}); "
                      "not retried, the rest of the run went on")
            return {"ok": False, "error": reason, "node": node}
        except ray.exceptions.TaskCancelledError:
            return {"ok": False, "error": "its task on the cluster was cancelled", "node": node}
        except ray.exceptions.RayError as exc:
            return {"ok": False, "error": f"the cluster could not run it: {' '.join(str(exc).split())[:300]}",
                    "node": node}

    def _drain(self, progress: Any) -> None:
        """Write what the tasks have streamed so far (variant fields, memory samples, phase marks)."""
        try:
            events = self.ray.get(progress.drain.remote(), timeout=30)
        except self.ray.exceptions.RayError as exc:
            if not self.progress_lost:
                log.warning("the progress log could not be read (the figures still arrive with the results): %s",
                            " ".join(str(exc).split())[:300])
            self.progress_lost = True
            return
        for kind, idx, payload in events:
            if kind == "variant":
                if "node" in payload:
                    self.node_of[idx] = payload.pop("node")
                if payload:
                    self.rep.variant(idx, **payload)
            elif kind == "timeline":
                samples, phases = payload
                self.store.append_timeline(self.run_id, idx, samples, phases)

    def _finish(self, v: dict, out: dict, original_preds: list[int] | None) -> list[int] | None:
        """Write one variant's outcome (as the local executor's _run_variant does); its predictions when done."""
        from profiling.jobs.runner import _figures, _plain
        from profiling.measure.timing import variant_timing
        from profiling.store.runs import now_iso

        idx, rep = v["idx"], self.rep
        node = out.get("node") or self.node_of.get(idx)
        if out.get("samples") or out.get("phases"):  # the task's whole record replaces the live preview
            self.store.replace_timeline(self.run_id, idx, out.get("samples") or [], out.get("phases") or [])
        extra: dict[str, Any] = {}
        if node:
            extra["node"] = node
        if out.get("started_wall") is not None:
            extra["run_offset_s"] = out["started_wall"] - self.t0_wall
        if out.get("window") is not None:
            extra["measure_window_epoch_s"] = out["window"]
        build_s, profile_s = out.get("build_time_s"), out.get("profile_s")
        if not out.get("ok"):
            timing: dict[str, Any] = dict(extra)
            if build_s is not None:
                timing["build_time_s"] = build_s
                timing["timing_s"] = variant_timing(out.get("metrics") or {}, out.get("phases") or [], build_s,
                                                    profile_s)
            metrics = {**(out.get("metrics") or {}), **timing}
            rep.variant(idx, status=VariantStatus.FAILED, error=out.get("error") or "failed on the cluster",
                        finished_at=now_iso(), **({"metrics": _plain(metrics)} if metrics else {}))
            return None
        t_after = time.perf_counter()
        metrics = dict(out["metrics"])
        metrics.update(_figures(out["preds"], self.sweep.eval_labels, len(self.sweep.data.label_names),
                                original_preds))
        metrics["param_count"] = out["param_count"]
        metrics["random_weights"] = bool(out["random_weights"])
        metrics["format"] = out["format"]
        metrics["build_time_s"] = build_s
        metrics.update(extra)
        self.store.set_predictions(self.run_id, idx, out["preds"], out["probs"])
        metrics["timing_s"] = variant_timing(metrics, out["phases"], build_s, profile_s, time.perf_counter() - t_after)
        rep.variant(idx, status=VariantStatus.DONE, stage="done", progress=1.0, metrics=_plain(metrics), finished_at=now_iso())
        if node:
            self.finished[idx] = node
        return list(out["preds"])

    def _flag_odd_cpus(self) -> None:
        """A note on each variant measured on a CPU (model, flags) other than most variants': latency not comparable."""
        odd = odd_cpu_nodes(self.finished)
        if not odd:
            return
        notes = {x["idx"]: x["notes"] or [] for x in self.store.variants(self.run_id)}
        for idx, text in odd.items():
            self.rep.variant(idx, notes=[*notes.get(idx, []), text])

    def _record_cluster(self, nodes: list[dict], cpus: float) -> None:
        run = self.store.get_run(self.run_id) or {}
        env = dict(run.get("env") or {})
        env["executor"] = {"name": "ray", "address": self.address, "bench_resource": BENCH_RESOURCE,
                           "cpus_per_task": cpus,
                           "bench_nodes": [{"node_id": n["NodeID"], "ip": n.get("NodeManagerAddress"),
                                            "cpus": n["Resources"].get("CPU")} for n in nodes]}
        self.store.set_run_env(self.run_id, env)

    def _where(self, n_pending: int) -> None:
        n = len(self.sweep.variants)
        self.sweep.state["where"] = f"measuring on the Ray cluster ({n - n_pending}/{n} variants finished)"
        self.rep.stage(self.sweep.state["where"])


def odd_cpu_nodes(measured: dict[int, dict]) -> dict[int, str]:
    """Variants (idx -> note) whose node's CPU model or instruction sets differ from those of most variants."""
    def cpu(node: dict) -> tuple:
        return node.get("cpu_model"), tuple(sorted(f for f, on in (node.get("cpu_flags") or {}).items() if on))

    if len(measured) < 2:
        return {}
    common, _ = Counter(cpu(n) for n in measured.values()).most_common(1)[0]
    out = {}
    for idx, node in measured.items():
        model, flags = cpu(node)
        if (model, flags) != common:
            differs = sorted(set(flags) ^ set(common[1]))
            what = f"instruction sets {', '.join(differs)}" if differs else f"model {model!r} vs {common[0]!r}"
            out[idx] = (f"measured on node {_node_name(node)}, whose CPU differs from the other variants' "
                        f"({what}): its latency is not comparable with theirs")
    return out


def _node_name(node: dict | None) -> str:
    if not node:
        return "?"
    return f"{node.get('hostname')} ({node.get('ip')}, id {str(node.get('node_id'))[:8]})"


def _here(ray: Any) -> Any:
    """Schedule the progress actor on the head node, where the driver runs (soft: anywhere if it cannot be there),
    never on a bench node that may die with its variant."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    head = next((n["NodeID"] for n in ray.nodes() if n.get("Alive")
                 and "node:__internal_head__" in n.get("Resources", {})), None)
    return NodeAffinitySchedulingStrategy(head or ray.get_runtime_context().get_node_id(), soft=True)


def _write_probe(run_id: str) -> dict:
    """A file in the data folder that every task must see: proof the folder is shared with its node."""
    path = paths.data_dir().resolve() / f"{PROBE_NAME}-{run_id}"
    token = f"{run_id}:{os.getpid()}:{time.time()}"
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(token)
    tmp.replace(path)
    return {"path": str(path), "token": token}


# ---- on a node --------------------------------------------------------------------------------------------


class ProgressLog:
    """A small actor holding what the tasks streamed until the driver drains it."""

    def __init__(self) -> None:
        self.events: list = []

    def put(self, events: list) -> None:
        self.events.extend(events)

    def drain(self) -> list:
        out, self.events = self.events, []
        return out


class _Sink:
    """The task's side of the progress log: the runner reporter's ``variant`` (throttled) plus timeline chunks."""

    def __init__(self, progress: Any, idx: int):
        self.progress, self.idx = progress, idx
        self.buffer: list = []
        self.last_sent = 0.0
        self.last_update = 0.0
        self.lock = threading.Lock()
        self.where = ""  # the node, added to every stage so the Run page shows where each variant runs

    def variant(self, idx: int, force: bool = True, **fields: Any) -> None:
        now = time.monotonic()
        if not force and now - self.last_update < FLUSH_EVERY_S:
            return
        self.last_update = now
        if fields.get("stage") and self.where:
            fields["stage"] = f"{fields['stage']} · {self.where}"
        self._add(("variant", idx, fields), now=force)

    def samples(self, samples: list) -> None:
        self._add(("timeline", self.idx, ([list(s) for s in samples], [])))

    def phase(self, name: str, t: float) -> None:
        self._add(("timeline", self.idx, ([], [(name, t)])))
        self.variant(self.idx, stage=name)  # sends both now

    def on_progress(self, frac: float, msg: str) -> None:
        self.variant(self.idx, force=False, stage=msg, progress=float(frac))

    def _add(self, event: tuple, now: bool = False) -> None:
        with self.lock:
            self.buffer.append(event)
            if now or time.monotonic() - self.last_sent >= FLUSH_EVERY_S:
                self._send()

    def _send(self) -> Any:
        self.last_sent = time.monotonic()
        if not self.buffer:
            return None
        batch, self.buffer = self.buffer, []
        try:
            return self.progress.put.remote(batch)
        except Exception:  # progress is a display: losing it must never fail the measurement
            log.warning("could not send progress to the driver", exc_info=True)
            return None

    def close(self) -> None:
        """Send what is left and wait for it, so the driver has every event once the task's result is ready."""
        import ray

        with self.lock:
            ref = self._send()
        if ref is not None:
            try:
                ray.get(ref, timeout=60)
            except Exception:  # the result still carries every sample and phase mark
                log.warning("the driver's progress log did not take the last events", exc_info=True)


def measure_on_node(v: dict, base: Any, data: Any, settings: dict, eval_texts: list[str], latency_texts: list[str],
                    progress: Any, probe: dict) -> dict:
    """The Ray task: build and measure one variant on this node (alone on it), streaming progress; its figures."""
    from profiling.jobs.runner import _build, _notes, measurement_workload, param_count, readable
    from profiling.measure.monitor import profile_in_child
    from profiling.store.runs import now_iso

    idx = v["idx"]
    sink = _Sink(progress, idx)
    out: dict[str, Any] = {"ok": False}
    try:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the local runner's children
        _restore_thread_vars(settings.get("thread_env") or {})
        affinity = pin_cpus(settings["threads"])
        out["node"] = node = node_info(affinity)
        where = f"on node {_node_name(node)}"
        sink.variant(idx, node=node)
        sink.where = f"on {node['ip']} ({node['node_id'][:8]})"
        out["started_wall"] = time.time()
        sink.variant(idx, status=VariantStatus.BUILDING, stage="building", progress=0.0, started_at=now_iso(), error=None)
        check_shared(probe, base)
        t_build = time.perf_counter()
        with _build_lock(v):
            configs, art = _build(v, base, data, settings, sink)
        out["build_time_s"] = time.perf_counter() - t_build
        notes = [*_notes(configs, art), f"measured {where}"]
        if len(affinity) < settings["threads"]:
            notes.append(f"{settings['threads']} threads pinned to {len(affinity)} CPU(s) of its node "
                         f"({', '.join(map(str, affinity))}): the node has fewer CPUs to give")
        sink.variant(idx, lineage=list(art.lineage), artifact=str(art.path), notes=notes)
        sink.variant(idx, status=VariantStatus.PROFILING, stage="starting a fresh process", progress=0.0)
        workload = measurement_workload(settings, eval_texts, latency_texts)
        window_start = time.time()
        t_profile = time.perf_counter()
        result = profile_in_child(art.path, workload, on_samples=sink.samples, on_phase=sink.phase,
                                  on_progress=sink.on_progress)
        out["profile_s"] = time.perf_counter() - t_profile
        out["window"] = [window_start, time.time()]
        out.update(ok=result.ok, error=result.error, metrics=result.metrics, preds=list(result.preds),
                   probs=[list(p) for p in result.probs], samples=[list(s) for s in result.samples],
                   phases=list(result.phases), param_count=art.meta.get("param_count") or param_count(art),
                   random_weights=bool(art.meta.get("random_weights")), format=art.format)
    except Exception as exc:
        if not isinstance(exc, UserError):
            log.exception("variant %d failed on its node", idx)
        out.update(ok=False, error=readable(exc))
    finally:
        sink.close()
    return out


def _restore_thread_vars(driver_env: dict) -> None:
    """Ray sets OMP_NUM_THREADS to the task's CPUs; give the measurement the driver's thread variables instead."""
    for name in THREAD_VARS:
        if driver_env.get(name) is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = str(driver_env[name])


def parse_cpus(text: str) -> list[int]:
    """'0,2-3' -> [0, 2, 3]; ValueError on anything else."""
    cpus: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        first, last = int(lo), int(hi) if sep else int(lo)
        if first < 0 or last < first:
            raise ValueError(f"bad CPU range {part!r}")
        cpus.update(range(first, last + 1))
    if not cpus:
        raise ValueError("no CPUs")
    return sorted(cpus)


def pin_cpus(threads: int) -> list[int]:
    """Pin this process (and the profiling child it starts) to ``threads`` CPUs of the node; returns them."""
    allowed = sorted(os.sched_getaffinity(0))
    spec = os.environ.get(CPUS_ENV, "").strip()
    if spec:
        try:
            wanted = [c for c in parse_cpus(spec) if c in allowed]
        except ValueError as exc:
            raise UserError(f"${CPUS_ENV}={spec!r} on this node is not a CPU list like '0' or '2-3': {exc}") from None
        if not wanted:
            raise UserError(f"${CPUS_ENV}={spec!r} names none of this node's CPUs ({allowed})")
        allowed = wanted
    chosen = allowed[:threads]
    os.sched_setaffinity(0, chosen)
    return chosen


def node_info(affinity: list[int]) -> dict:
    """Which node this is and what its CPU is: the figures' provenance."""
    import ray

    from profiling.measure.env import fingerprint

    env = fingerprint()
    return {"node_id": ray.get_runtime_context().get_node_id(), "ip": ray.util.get_node_ip_address(),
            "hostname": socket.gethostname(), "cpu_model": env["cpu_model"], "cpu_flags": env["cpu_flags"],
            "logical_cores": env["logical_cores"], "affinity": affinity}


def check_shared(probe: dict, base: Any) -> None:
    """Refuse to build on a node that does not see the driver's data folder (and the base model in it)."""
    path = Path(probe["path"])
    try:
        token = path.read_text()
    except OSError:
        token = None
    if token != probe["token"]:
        raise UserError(f"this node does not see the run's data folder {path.parent} (it must be the same shared "
                        "folder on every node: set COMPRESSION_DATA_DIR to shared storage mounted at the same path)")
    if not Path(base.path).is_dir():
        raise UserError(f"this node does not see the base model at {base.path}: it must be on storage shared by "
                        "every node")


class _build_lock:
    """Variants whose chains start with the same step may share cached intermediate artifacts: their builds take
    turns (a lock file in the shared artifacts folder); chains that start differently build at the same time."""

    def __init__(self, v: dict):
        self.lock = None
        if v["chain"]:
            import json

            from profiling.filelock import file_lock

            key = hashlib.sha256(json.dumps(v["chain"][0], sort_keys=True).encode()).hexdigest()[:16]
            self.lock = file_lock(paths.artifacts_dir() / f".build-{key}.lock")

    def __enter__(self) -> None:
        if self.lock is not None:
            self.lock.__enter__()

    def __exit__(self, *exc: object) -> None:
        if self.lock is not None:
            self.lock.__exit__(*exc)


def signal_inside(exc: BaseException) -> BaseException | None:
    """The stop signal's exception (launcher.Stopped) behind ``exc``, if any. A SIGTERM that arrives while the driver
    waits inside Ray's Cython code (``ray.wait``) surfaces as a SystemError ("returned a result with an exception
    set") whose context is the Stopped raised by the signal handler: the run must still read "stopped by signal"."""
    from profiling.jobs.launcher import Stopped

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, Stopped):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None

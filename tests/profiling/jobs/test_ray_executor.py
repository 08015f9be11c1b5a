"""The ray executor on a real Ray cluster started here: two worker nodes of one CPU each with the bench resource
(each pinned to its own core), the tiny model's variants through the real engine; a node killed mid-variant; a
stopped run; misconfigured clusters."""

from __future__ import annotations

import os
import re
import sys
import threading
import time

import psutil
import pytest

from profiling.jobs import runner
from profiling.jobs.executor import check_address, check_executor
from profiling.jobs.runner import RequestError, normalize_request
from profiling.store.runs import RunStore
from tests.helpers.engine import tiny_request

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster

from profiling.jobs import ray_executor
from profiling.jobs.ray_executor import BENCH_RESOURCE, CPUS_ENV, odd_cpu_nodes, parse_cpus

PRUNE_HALF = {"technique": "prune-heads", "fraction": 0.5}
NODE_NOTE = re.compile(r"measured on node .* \((?P<ip>[^,]+), id (?P<id>[0-9a-f]{8})\)")


@pytest.fixture(scope="module")
def cluster():
    """A head without CPUs (the driver's node) and two bench nodes of 1 CPU, one per core of this machine."""
    cores = sorted(os.sched_getaffinity(0))
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    workers = [c.add_node(num_cpus=1, resources={BENCH_RESOURCE: 1}, env_vars={CPUS_ENV: str(cores[i % len(cores)])})
               for i in range(2)]
    c.wait_for_nodes()
    yield c, workers
    c.shutdown()


def _ray_request(tiny_artifact, toy_csv, address, variants, **settings):
    return normalize_request({**tiny_request(tiny_artifact.path, toy_csv, variants, **settings), "executor": "ray",
                              "ray_address": address})


def _node_of(variant: dict) -> str | None:
    for note in variant["notes"] or []:
        if m := NODE_NOTE.search(note):
            return m["id"]
    return None


# ---- requests and pure parts (no cluster) ----------------------------------------------------------------


def test_executor_choice_is_checked_and_ray_address_env_is_honoured(tiny_artifact, toy_csv, monkeypatch):
    base = tiny_request(tiny_artifact.path, toy_csv, [])
    assert "executor" not in normalize_request(base)  # local: nothing stored, as before
    assert "executor" not in normalize_request({**base, "executor": "local", "ray_address": "x:1"})
    with pytest.raises(RequestError, match="unknown executor 'spark'"):
        normalize_request({**base, "executor": "spark"})
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(RequestError, match="needs the cluster's address"):
        normalize_request({**base, "executor": "ray"})
    with pytest.raises(RequestError, match="is not a Ray address"):
        normalize_request({**base, "executor": "ray", "ray_address": "head node"})
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    req = normalize_request({**base, "executor": "ray"})
    assert (req["executor"], req["ray_address"]) == ("ray", "10.0.0.5:6379")
    assert check_executor({"executor": "ray", "ray_address": " ray://h.example:10001 "})["ray_address"] == \
        "ray://h.example:10001"
    assert check_address("auto") == "auto"
    with pytest.raises(RequestError):
        normalize_request({**base, "executor": "ray", "ray_address": "h:70000"})


def test_the_local_executor_never_imports_ray():
    import subprocess

    code = ("import sys; from profiling.jobs import runner; import profiling.cli; "
            "assert isinstance(runner.executor_for({}), runner.LocalExecutor); print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(__import__("profiling.paths").paths.REPO_ROOT))
    assert out.stdout.strip() == "False"


def test_cpu_lists_and_odd_cpus_are_read():
    assert parse_cpus("0,2-3") == [0, 2, 3] and parse_cpus("1") == [1]
    for bad in ("", "3-1", "a", "-1"):
        with pytest.raises(ValueError):
            parse_cpus(bad)
    flags = {"avx2": True, "avx512_vnni": True}
    node = {"node_id": "a" * 16, "hostname": "h", "ip": "10.0.0.1", "cpu_model": "EPYC", "cpu_flags": flags}
    other = {**node, "node_id": "b" * 16, "ip": "10.0.0.2", "cpu_flags": {**flags, "avx512_vnni": False}}
    assert odd_cpu_nodes({0: node, 1: node}) == {}
    odd = odd_cpu_nodes({0: node, 1: node, 2: other})
    assert list(odd) == [2] and "avx512_vnni" in odd[2] and "not comparable" in odd[2] and "10.0.0.2" in odd[2]


def test_without_ray_the_run_says_how_to_install_it(engine_env, tiny_artifact, toy_csv, monkeypatch):
    store = RunStore()
    run_id = store.create_run(_ray_request(tiny_artifact, toy_csv, "127.0.0.1:6379", []))
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    runner.execute(run_id, store)
    run = store.get_run(run_id)
    assert run["status"] == "failed" and "needs Ray" in run["error"] and "pip install ray==" in run["error"]


def test_an_address_nobody_answers_fails_fast(engine_env, tiny_artifact, toy_csv):
    with socket_bound() as port:  # a port nothing listens on
        store = RunStore()
        run_id = store.create_run(_ray_request(tiny_artifact, toy_csv, f"127.0.0.1:{port}", []))
    runner.execute(run_id, store)
    run = store.get_run(run_id)
    assert run["status"] == "failed" and f"no Ray cluster answers at 127.0.0.1:{port}" in run["error"]
    assert "ray start --head" in run["error"] and "Traceback" not in run["error"]
    assert store.variants(run_id)[0]["status"] == "failed"


class socket_bound:
    """A free TCP port (bound, then closed: nothing listens on it)."""

    def __enter__(self) -> int:
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        return self.port

    def __exit__(self, *exc: object) -> None:
        pass


# ---- on the cluster ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_no_node_with_the_bench_resource_is_a_clear_failure(cluster, engine_env, tiny_artifact, toy_csv,
                                                            monkeypatch):
    c, _ = cluster
    monkeypatch.setattr(ray_executor, "BENCH_RESOURCE", "bench_node_nobody_has")
    store = RunStore()
    run_id = store.create_run(_ray_request(tiny_artifact, toy_csv, c.address, []))
    runner.execute(run_id, store)
    run = store.get_run(run_id)
    assert run["status"] == "failed"
    assert "offers the resource 'bench_node_nobody_has'" in run["error"] and "--resources" in run["error"]


@pytest.mark.slow
def test_a_sweep_on_two_nodes(cluster, engine_env, tiny_artifact, toy_csv):
    c, workers = cluster
    node_ids = {w.node_id[:8] for w in workers}
    store = RunStore()
    variants = [{"name": "pruned", "chain": [PRUNE_HALF]}, {"name": "onnx", "chain": [{"technique": "onnx"}]}]
    run_id = store.create_run(_ray_request(tiny_artifact, toy_csv, c.address, variants))
    updates = []
    runner.execute(run_id, store, on_update=lambda idx, fields: updates.append((idx, dict(fields))))

    run = store.get_run(run_id)
    assert run["status"] == "done", run["error"]
    assert run["env"]["executor"]["name"] == "ray" and len(run["env"]["executor"]["bench_nodes"]) == 2
    v = {x["name"]: x for x in store.variants(run_id)}
    assert [x["status"] for x in v.values()] == ["done", "done", "done"], {k: x["error"] for k, x in v.items()}
    windows = []
    for name, x in v.items():
        m = x["metrics"]
        assert m["peak_rss_mib"] > 0 and m["disk_mib"] > 0 and m["latency_b1_median_ms"] > 0
        assert len(m["latency_b1_ms"]) == 3 and 0 <= m["accuracy"] <= 1 and m["timing_s"]["build"] >= 0
        assert len(store.predictions(run_id, x["idx"])["preds"]) == 12
        node = m["node"]
        assert node["node_id"][:8] in node_ids and _node_of(x) == node["node_id"][:8]
        assert len(node["affinity"]) == 1 and node["cpu_flags"]  # pinned to its node's one CPU
        tl = store.timeline(run_id, x["idx"])
        assert len(tl["t"]) == len(tl["mib"]) > 0
        phases = [p[0] for p in tl["phases"]]
        assert phases[:2] == ["import", "load"] and phases[-1] == "done" and phases.count("done") == 1
        start = m["measure_window_epoch_s"][0]  # the phase marks count from the child's spawn, just after it
        windows.append((node["node_id"], start + tl["phases"][0][1], start + tl["phases"][-1][1], name))
    assert v["Original"]["metrics"]["agreement"] == 1.0 and v["onnx"]["metrics"]["agreement"] >= 0.9
    assert v["pruned"]["metrics"]["param_count"] < v["Original"]["metrics"]["param_count"]
    assert {w[0] for w in windows} == {w.node_id for w in workers}  # both nodes measured
    for a in windows:  # never two measurements at once on one node
        for b in windows:
            if a is not b and a[0] == b[0]:
                assert a[2] <= b[1] or b[2] <= a[1], (a, b)
    statuses = [f["status"] for idx, f in updates if idx == 1 and "status" in f]
    assert statuses == ["building", "profiling", "done"]  # streamed live, as a local run
    node_stage = f"on {v['pruned']['metrics']['node']['ip']} ({v['pruned']['metrics']['node']['node_id'][:8]})"
    assert any(idx == 1 and str(f.get("stage", "")).endswith(node_stage) for idx, f in updates)  # shown live


@pytest.mark.slow
def test_stopping_a_cluster_run_cancels_its_tasks(cluster, engine_env, tiny_artifact, toy_csv):
    c, _ = cluster
    store = RunStore()
    run_id = runner.launch({**tiny_request(tiny_artifact.path, toy_csv, [{"name": "pruned", "chain": [PRUNE_HALF]}],
                                           repeats=5000), "executor": "ray", "ray_address": c.address})
    deadline = time.monotonic() + 180
    while not any(x["status"] == "profiling" for x in store.variants(run_id)):
        assert time.monotonic() < deadline and store.get_run(run_id)["status"] in ("queued", "running"), \
            store.get_run(run_id)["error"]
        time.sleep(0.1)
    assert runner.stop(run_id)
    deadline = time.monotonic() + 60
    while store.get_run(run_id)["status"] == "running":
        assert time.monotonic() < deadline, "SIGTERM did not stop the cluster run"
        time.sleep(0.1)
    run = store.get_run(run_id)
    assert run["status"] == "failed" and run["error"].startswith("stopped by signal 15 during measuring on the Ray")
    assert all(x["status"] == "failed" for x in store.variants(run_id))
    data_dir = str(engine_env)
    deadline = time.monotonic() + 60
    while _children_measuring(data_dir):  # the cancelled tasks' profiling children are gone too
        assert time.monotonic() < deadline, _children_measuring(data_dir)
        time.sleep(0.2)


def _children_measuring(data_dir: str) -> list[str]:
    out = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "profiling.measure.child" in cmd and data_dir in cmd:
            out.append(cmd)
    return out


@pytest.mark.slow
def test_a_node_dying_mid_variant_fails_that_variant_only(cluster, engine_env, tiny_artifact, toy_csv):
    """Last in the module: it removes one of the two bench nodes."""
    c, workers = cluster
    store = RunStore()
    variants = [{"name": "pruned", "chain": [PRUNE_HALF]}, {"name": "onnx", "chain": [{"technique": "onnx"}]}]
    run_id = store.create_run(_ray_request(tiny_artifact, toy_csv, c.address, variants, repeats=200))
    done = threading.Event()
    thread = threading.Thread(target=lambda: (runner.execute(run_id, store), done.set()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 180
    victim = None
    while victim is None:
        assert time.monotonic() < deadline and not done.is_set(), "the variant never started profiling"
        pruned = store.variants(run_id)[1]
        if pruned["status"] == "profiling" and _node_of(pruned):
            victim = next(w for w in workers if w.node_id.startswith(_node_of(pruned)))
        time.sleep(0.05)
    c.remove_node(victim, allow_graceful=False)
    thread.join(timeout=240)
    assert done.is_set(), "the run did not finish after its node died"
    run = store.get_run(run_id)
    assert run["status"] == "done", run["error"]
    v = {x["name"]: x for x in store.variants(run_id)}
    assert v["pruned"]["status"] == "failed"
    assert f"id {victim.node_id[:8]}" in v["pruned"]["error"] and "not retried" in v["pruned"]["error"]
    assert v["Original"]["status"] == "done" and v["onnx"]["status"] == "done"
    assert v["onnx"]["metrics"]["node"]["node_id"] != victim.node_id  # the rest ran on the node left
    assert v["onnx"]["metrics"]["agreement"] >= 0.9


def test_a_stop_signal_inside_ray_code_still_reads_as_a_stop():
    from profiling.jobs.launcher import Stopped
    from profiling.jobs.ray_executor import signal_inside

    stop = Stopped(15)
    try:
        try:
            raise stop
        except Stopped:
            raise SystemError("<cyfunction CoreWorker.wait> returned a result with an exception set")
    except SystemError as wrapped:
        assert signal_inside(wrapped) is stop
    assert signal_inside(stop) is stop
    assert signal_inside(RuntimeError("a bug")) is None

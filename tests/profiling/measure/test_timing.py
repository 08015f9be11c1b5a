"""Where the time went: the per-variant breakdown of a real tiny run, the CLI's table and the timeline figure."""

from __future__ import annotations

import itertools

import pytest

from dashboard.timeline import timeline_figure
from profiling.cli import main as cli
from profiling.jobs import runner
from profiling.measure import timing
from profiling.store.runs import RunStore
from tests.helpers.engine import tiny_request

CHILD_SEGMENTS = ["child start", "import", "load", "first call", "warm-up", "latency b1", "latency bN",
                  "latency other", "evaluation", "exit"]


@pytest.fixture(scope="module")
def tiny_run(tiny_artifact, toy_csv, tmp_path_factory):
    """One real run for the whole module (a tiny-model run takes a while on a busy machine)."""
    data = tmp_path_factory.mktemp("timing") / "data"
    with pytest.MonkeyPatch.context() as mp:  # as engine_env, for the module
        mp.setenv("COMPRESSION_DATA_DIR", str(data))
        mp.setenv("COMPRESSION_STORE", str(data / "runs.sqlite"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield _run(tiny_artifact, toy_csv)


def _run(tiny_artifact, toy_csv):
    store = RunStore()
    request = runner.normalize_request(tiny_request(tiny_artifact.path, toy_csv, [
        {"name": "pruned", "chain": [{"technique": "prune-heads", "fraction": 0.5}]},
        {"name": "too much", "chain": [{"technique": "prune-heads", "fraction": 0.9}]},  # fails while building
    ], repeats=4))
    run_id = store.create_run(request)
    runner.execute(run_id, store)
    assert store.get_run(run_id)["status"] == "done"
    return store, run_id


def test_each_variant_stores_where_its_time_went(tiny_run):
    store, run_id = tiny_run
    variants = store.variants(run_id)
    done = [v for v in variants if v["status"] == "done"]
    assert [v["name"] for v in done] == ["Original", "pruned"]
    offsets = [v["metrics"]["run_offset_s"] for v in variants]
    assert offsets[0] > 0 and offsets == sorted(offsets)  # the run's set-up comes first, variants in order
    for v in done:
        m, seg = v["metrics"], v["metrics"]["timing_s"]
        assert list(seg) == ["build", "profiler set-up", *CHILD_SEGMENTS, "store"]  # in the order they happen
        assert all(x >= 0 for x in seg.values())
        # the child's segments add up to its wall time, by construction from the phase marks
        assert sum(seg[s] for s in CHILD_SEGMENTS) == pytest.approx(m["child_wall_s"], abs=1e-6)
        assert seg["build"] == pytest.approx(m["build_time_s"])
        # each latency figure's seconds hold at least the timed calls themselves
        assert seg["latency b1"] >= sum(m["latency_b1_ms"]) / 1000
        assert seg["latency bN"] >= sum(m["latency_bN_ms"]) / 1000
        assert seg["load"] >= m["load_time_s"] * 0.99 and seg["evaluation"] >= m["eval_time_s"] * 0.99
        assert seg["warm-up"] >= m["warmup_time_s"] * 0.99
    # back to back: a variant's segments cover the time until the next variant starts (up to one store write)
    for v, nxt in itertools.pairwise(variants):
        gap = nxt["metrics"]["run_offset_s"] - v["metrics"]["run_offset_s"] - sum(v["metrics"]["timing_s"].values())
        assert -0.01 < gap < 0.5, (v["name"], gap)
    failed = next(v for v in variants if v["name"] == "too much")
    assert list(failed["metrics"]["timing_s"]) == ["build"]  # refused while building: that time still counts


def test_the_cli_prints_the_breakdown(tiny_run, capsys):
    store, run_id = tiny_run
    assert cli(["timing", run_id, "--store", str(store.path), "--legend"]) == 0
    out = capsys.readouterr().out
    head = out.splitlines()[0]
    for name in ("run set-up", "build", "import", "latency b1", "latency bN", "evaluation"):
        assert name in head
    for name in ("Original", "pruned", "too much", "all", "most time:"):
        assert name in out
    assert "import: importing the runtime" in out  # the legend
    assert cli(["timing", "nope", "--store", str(store.path)]) == 2


def test_older_runs_are_rebuilt_from_their_phase_marks(tiny_run):
    store, run_id = tiny_run
    v = store.variants(run_id)[0]
    old = {**v, "metrics": {k: x for k, x in v["metrics"].items() if k not in (
        "timing_s", "run_offset_s", "latency_b1_time_s", "latency_bN_time_s", "profiler_setup_s")}}
    seg = timing.timing_of(old, store.timeline(run_id, 0))
    assert list(seg) == ["build", "child start", "import", "load", "first call", "warm-up", "latency", "evaluation",
                         "exit"]
    new = v["metrics"]["timing_s"]
    assert seg["latency"] == pytest.approx(new["latency b1"] + new["latency bN"] + new["latency other"])
    rows = timing.run_timeline([old])  # no offsets stored: placed from 0, and no set-up row
    assert rows[0]["start_s"] == 0 and rows[0]["segment"] == "build"


def test_timeline_figure_draws_one_stacked_bar_per_variant(tiny_run):
    store, run_id = tiny_run
    rows = timing.run_timeline(store.variants(run_id))
    fig = timeline_figure(rows)
    names = [t.name for t in fig.data]
    assert names[:4] == ["run set-up", "build", "profiler set-up", "child start"] and "evaluation" in names
    assert all(t.orientation == "h" for t in fig.data)
    assert list(fig.layout.yaxis.categoryarray) == ["too much", "pruned", "Original", "run set-up"]
    build = next(t for t in fig.data if t.name == "build")
    original = [r for r in rows if r["variant"] == "Original"]
    assert build.base[list(build.y).index("Original")] == pytest.approx(original[0]["start_s"])
    # the segments of a variant are contiguous: each starts where the one before it ends
    for a, b in itertools.pairwise(original):
        assert b["start_s"] == pytest.approx(a["start_s"] + a["seconds"])


def test_timeline_figure_without_rows():
    fig = timeline_figure([])
    assert not fig.data and "No timing" in fig.layout.annotations[0].text

"""Shipped demo bundles: small, JSON only, labelled with where they were measured; refreshed by running the scenario."""

from __future__ import annotations

import zipfile

import pytest

from profiling.jobs import demo_runs
from tests.helpers.fake_runs import METRICS


def test_the_shipped_quick_bundle_is_small_json_and_labelled():
    path = demo_runs.bundle_path("quick")
    assert path.is_file() and path.stat().st_size < 150 * 1024  # tens of KB: figures, no model files
    with zipfile.ZipFile(path) as zf:
        assert all(name.endswith(".json") for name in zf.namelist())
    ship = demo_runs.shipped("quick")
    assert ship is not None and len(ship.variants) == 5 and all(v["status"] == "done" for v in ship.variants)
    env = ship.run["env"]
    assert env["cpu_model"] and isinstance(env["cpu_flags"], dict)
    assert ship.label.startswith(env["cpu_model"]) and ship.run["finished_at"][:10] in ship.label
    request = demo_runs.scenario_request("quick")  # the run is of the scenario it is shipped for
    stored = ship.run["request"]
    assert stored["model"] == request["model"] and stored["dataset"] == request["dataset"]
    assert [[c["technique"] for c in v["chain"]] for v in stored["variants"]] == [
        [c["technique"] for c in v["chain"]] for v in request["variants"]]


def test_machine_label_names_cpu_cores_flags_and_date():
    env = {"cpu_model": "AMD EPYC", "usable_cores": 2,
           "cpu_flags": {"avx2": True, "avx512f": True, "avx512_vnni": True, "avx512_bf16": True, "amx_int8": False}}
    assert demo_runs.machine_label(env, "2026-12-02T18:45:34+00:00") == (
        "AMD EPYC, 2 cores (AVX2, AVX-512, AVX-512 VNNI, AVX-512 BF16), measured 2026-12-02")
    assert demo_runs.machine_label({}, None) == "an unrecorded CPU (no AVX2 or newer), measured ?"
    assert demo_runs.shipped("nope") is None


def _fake_execute(status: str):
    """runner.execute stand-in: records figures for every variant of the run (no model is run)."""

    def execute(run_id, store, on_update=None):
        store.set_run_env(run_id, {"cpu_model": "Test CPU", "logical_cores": 4, "cpu_flags": {"avx2": True}})
        for v in store.variants(run_id) or [{"idx": i} for i in range(5)]:
            store.upsert_variant(run_id, v["idx"], status="done", metrics=dict(METRICS[min(v["idx"], 2)]),
                                 progress=1.0)
        store.set_run_status(run_id, status, error="boom" if status == "failed" else None)

    return execute


def test_refresh_writes_the_bundle_of_the_run_it_made_and_keeps_the_old_one_on_failure(tmp_path, monkeypatch):
    from profiling.jobs import runner

    monkeypatch.setattr(runner, "execute", _fake_execute("done"))
    path = demo_runs.refresh("quick", folder=tmp_path)
    assert path == tmp_path / "quick.zip"
    ship = demo_runs.shipped("quick", folder=tmp_path)
    assert ship.label.startswith("Test CPU, 4 cores (AVX2)")
    before = path.read_bytes()
    monkeypatch.setattr(runner, "execute", _fake_execute("failed"))
    with pytest.raises(RuntimeError, match="did not finish .*the shipped bundle is unchanged"):
        demo_runs.refresh("quick", folder=tmp_path)
    assert path.read_bytes() == before and not list(tmp_path.glob("*.part"))


def test_cli_demo_bundles(tmp_path, monkeypatch, capsys):
    from profiling.cli import main
    from profiling.jobs import runner

    assert main(["demo-bundles", "--scenario", "nope"]) == 2
    assert "unknown demo scenario nope: use quick" in capsys.readouterr().err
    monkeypatch.setattr(runner, "execute", _fake_execute("done"))
    assert main(["demo-bundles", "--folder", str(tmp_path)]) == 0
    assert f"wrote {tmp_path / 'quick.zip'}" in capsys.readouterr().out

"""Sweeps: each point profiled in a fresh child; the result files of older versions read back; the CLI (a store job)
and errors."""

from __future__ import annotations

import json

import pytest

from compression import apply, parse_spec
from profiling.jobs.sweep import (
    REAL,
    SweepSpec,
    Target,
    format_points,
    load_sweeps,
    parse_list,
    run_targets,
    save_sweep,
    sweep,
    sweeps_dir,
)

TEXTS = ["good", "the movie was good", "the movie was good and the acting was very good too", "dull"]


def test_two_points_in_fresh_children_stored_and_read_back(tiny_bert, artifact_cache, tmp_path):
    art = apply(tiny_bert, parse_spec("onnx"), artifact_cache)
    spec = SweepSpec(batch_sizes=(2,), seq_lens=(8, REAL), threads=(1,), repeats=2, n_texts=4)
    seen = []
    points = sweep([Target("tiny onnx", art.path, 1)], TEXTS, spec, progress=lambda k, n, msg: seen.append((k, n)))
    assert seen[0] == (0, 2) and seen[-1] == (2, 2)
    assert [(p["batch_size"], p["seq_len"], p["threads"]) for p in points] == [(2, 8, 1), (2, REAL, 1)]
    for p in points:
        assert p["ok"], p["error"]
        assert len(p["pass_ms"]) == 2 and p["n_batches"] == 2 and p["ms_per_batch"] > 0
        assert p["peak_rss_mib"] > 10
    fixed, real = points
    assert fixed["mean_batch_width"] == 8
    assert real["mean_batch_width"] < 13 and real["padding_waste"] < fixed["padding_waste"]

    store_file = tmp_path / "runs.sqlite"
    path = save_sweep(store_file, "run-x", spec, points, {"cpu_model": "test"})
    assert path.parent == sweeps_dir(store_file, "run-x") and path.suffix == ".json"
    (path.parent / "broken.json").write_text("{not json")
    back = load_sweeps(store_file, "run-x")
    assert len(back) == 1 and back[0]["points"] == json.loads(json.dumps(points))
    assert back[0]["spec"]["seq_lens"] == [8, REAL] and back[0]["env"] == {"cpu_model": "test"}
    assert load_sweeps(store_file, "other-run") == []
    table = format_points(points)
    assert "tiny onnx" in table and "real" in table


def test_failing_point_is_recorded_and_the_sweep_goes_on(tiny_bert, artifact_cache):
    art = apply(tiny_bert, parse_spec("onnx"), artifact_cache)
    spec = SweepSpec(batch_sizes=(1,), seq_lens=(200,), threads=(1,), repeats=1, n_texts=2)  # > max_length 64
    (point,) = sweep([Target("tiny", art.path)], TEXTS, spec)
    assert not point["ok"] and "seq_len 200 exceeds the model's max_length 64" in point["error"]


def test_bad_grids_are_named(tmp_path):
    with pytest.raises(ValueError, match="batch_sizes must be whole numbers >= 1, got \\(0,\\)"):
        SweepSpec(batch_sizes=(0,))
    with pytest.raises(ValueError, match="seq_lens must be whole numbers >= 2 or 'real'"):
        SweepSpec(seq_lens=("long",))
    with pytest.raises(ValueError, match="--threads must be comma-separated whole numbers, got 'two'"):
        parse_list("1,two", "--threads")
    assert parse_list("32, real", "--seq-lens", allow_real=True) == (32, REAL)
    from profiling.store.runs import RunStore

    store = RunStore(tmp_path / "runs.sqlite")
    with pytest.raises(ValueError, match="no run 'nope'"):
        run_targets(store, "nope")


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    from profiling.cli import main

    code = main(["sweep", "--artifact", str(tmp_path), "--store", str(tmp_path / "s.sqlite")])
    assert code == 2
    assert "is not an artifact folder" in capsys.readouterr().err
    assert main(["sweep", "--batch-sizes", "x", "--store", str(tmp_path / "s.sqlite")]) == 2


def test_cli_sweep_of_an_artifact_is_stored_as_a_job(tiny_bert, artifact_cache, tmp_path, capsys):
    from profiling.cli import main
    from profiling.store.runs import RunStore

    art = apply(tiny_bert, parse_spec("onnx"), artifact_cache)
    store_file = tmp_path / "s.sqlite"
    code = main(["sweep", "--artifact", str(art.path), "--batch-sizes", "2", "--seq-lens", "8", "--threads", "1",
                 "--repeats", "1", "--texts", "2", "--store", str(store_file)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    (job,) = RunStore(store_file).list_jobs("sweep", with_results=True)
    assert job["status"] == "done" and job["run_id"] is None and f"as job {job['id']}" in captured.out
    assert "[0/1]" in captured.err and format_points(job["result"]["points"]) in captured.out
    assert not sweeps_dir(store_file, None).exists()  # no JSON file beside the store any more

"""The CLI: bad input exits 2 with a one-line message (never a traceback); list, show and delete work."""

from __future__ import annotations

import subprocess
import sys

import pytest

from profiling.cli import main, parse_techniques
from profiling.store.runs import RunStore


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--techniques", "sharpen"], "unknown technique 'sharpen'"),
        (["run", "--techniques", "prune-heads:1.5"], "fraction must be"),
        (["run", "--techniques", "onnx>prune-heads:0.5"], "cannot follow"),
        (["run", "--techniques", "onnx>>onnx-int8"], "empty step"),
        (["run", "--techniques", ","], "--techniques is empty"),
        (["run", "--threads", "0"], "threads must be between 1"),
        (["run", "--eval-size", "0"], "eval size must be between"),
        (["run", "--dataset", "recipes"], "unknown dataset 'recipes'"),
        (["run", "--dataset", "missing.csv"], "does not exist"),
        (["run", "--model", "path:/no/such/dir"], "does not exist"),
        (["run", "--model", "not a model"], "is not a model"),
        (["show", "no-such-run"], "no run 'no-such-run'"),
        (["delete", "no-such-run"], "no run 'no-such-run'"),
        (["execute", "no-such-run"], "no run 'no-such-run'"),
        (["run", "--executor", "ray", "--ray-address", "the head"], "'the head' is not a Ray address"),
        (["run", "--ray-address", "10.0.0.5:6379"], "--ray-address is for --executor ray"),
    ],
)
def test_bad_input_exits_2_with_one_line(engine_env, capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert RunStore().list_runs() == []  # nothing created


def test_csv_with_missing_column(engine_env, toy_csv, capsys):
    assert main(["run", "--dataset", str(toy_csv), "--label-column", "stars"]) == 2
    assert "no column 'stars'" in capsys.readouterr().err


def test_not_a_store_file(engine_env, tmp_path, capsys):
    bad = tmp_path / "notes.txt"
    bad.write_text("not a database at all")
    assert main(["list", "--store", str(bad)]) == 2
    assert "not a SQLite database" in capsys.readouterr().err


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--threads", "two"])
    assert exc.value.code == 2
    assert "invalid int value" in capsys.readouterr().err


def test_parse_techniques():
    variants = parse_techniques("onnx,onnx-int8,prune-heads:fraction=0.25,method=random,distill>prune-heads:0.5>onnx")
    assert [v["name"] for v in variants] == [
        "ONNX Runtime",
        "ONNX Runtime int8",
        "Heads pruned 25 %",
        "distill → prune-heads 50 % → onnx",
    ]
    assert [c["technique"] for c in variants[1]["chain"]] == ["onnx", "onnx-int8"]  # the export is prepended
    assert variants[2]["chain"][0]["fraction"] == 0.25


def test_list_show_delete(engine_env, capsys):
    store = RunStore()
    assert main(["list"]) == 0
    assert "no runs" in capsys.readouterr().out
    request = {
        "model": "default",
        "dataset": {"kind": "bundled", "name": "movie-reviews"},
        "variants": [{"name": "Original", "chain": []}, {"name": "ONNX Runtime", "chain": [{"technique": "onnx"}]}],
        "settings": {"batch_size": 8},
    }
    run_id = store.create_run(request)
    store.upsert_variant(
        run_id,
        0,
        status="done",
        metrics={"peak_rss_mib": 200.0, "disk_mib": 87.0, "latency_b1_median_ms": 10.0, "accuracy": 0.8},
    )
    store.upsert_variant(run_id, 1, status="failed", error="export exploded")
    store.fail_run(run_id, "stopped by signal 15 during profiling variant 2/2 'ONNX Runtime'")

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert run_id in out and "failed" in out and "1/2" in out and "stopped by signal 15" in out

    assert main(["show", run_id]) == 0
    out = capsys.readouterr().out
    assert "Original" in out and "200" in out and "87.0" in out and "0.800" in out
    assert "ONNX Runtime: failed: export exploded" in out and "b8 med ms" in out

    assert main(["delete", run_id]) == 0
    assert store.get_run(run_id) is None


def test_module_entry_point(engine_env):
    proc = subprocess.run(
        [sys.executable, "-m", "profiling", "run", "--techniques", "nope"], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 2
    assert "unknown technique 'nope'" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "profiling", "techniques"], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0 and "prune-heads" in proc.stdout and "preset seed" in proc.stdout


def test_run_on_a_cluster_nobody_answers_says_so(engine_env, tiny_artifact, toy_csv, capsys, monkeypatch):
    import socket

    pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert main(["run", "--executor", "ray", "--model", f"path:{tiny_artifact.path}", "--dataset", str(toy_csv),
                 "--techniques", "onnx"]) == 2
    assert "needs the cluster's address" in capsys.readouterr().err
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    assert main(["run", "--executor", "ray", "--model", f"path:{tiny_artifact.path}", "--dataset", str(toy_csv),
                 "--techniques", "onnx", "--repeats", "3"]) == 1
    out = capsys.readouterr().out
    assert f"failed during connecting to the Ray cluster at 127.0.0.1:{port}: no Ray cluster answers" in out
    store = RunStore()
    request = store.get_run(store.list_runs()[0]["id"])["request"]
    assert request["executor"] == "ray" and request["ray_address"] == f"127.0.0.1:{port}"  # from $RAY_ADDRESS


def test_finetune_reaches_the_run_request():
    from profiling.cli import _parser, build_request

    args = _parser().parse_args(["run", "--model", "path:/enc", "--finetune", "head", "--techniques", "onnx"])
    assert build_request(args)["finetune"] == "head"
    assert "finetune" not in build_request(_parser().parse_args(["run", "--techniques", "onnx"]))
    with pytest.raises(SystemExit):
        _parser().parse_args(["run", "--finetune", "partial"])

"""Bad input through the CLI (``python -m profiling run``), the inputs a new user tried: each is refused with one
line naming the mistake, exit code 2, no run created and every earlier run byte-identical. (Inputs that are valid
but large, a 10 MB text and 10^6 rows, are in test_upload_faults.py.)"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from profiling.cli import main
from profiling.store.runs import RunStore
from tests.helpers import EMPTY_SAFETENSORS
from tests.helpers.store_files import filled_store, run_digests


def _csv(path: Path, rows: list[tuple[str, ...]], header: tuple[str, ...] = ("text", "label"), sep: str = ",") -> Path:
    path.write_text("\n".join(sep.join(r) for r in [header, *rows]) + "\n")
    return path


def _hf_folder(path: Path, **extra) -> Path:
    """A Hugging Face model folder's config (no weights unless the case adds them)."""
    path.mkdir(parents=True)
    config = {"model_type": "bert", "num_labels": 2, "id2label": {"0": "neg", "1": "pos"}, **extra}
    (path / "config.json").write_text(json.dumps(config))
    return path


def _cases(tmp: Path, model: str, good_csv: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (CLI arguments after ``run``, the fragment the one-line message must hold)."""
    pickled = _hf_folder(tmp / "pickled")
    (pickled / "pytorch_model.bin").write_bytes(pickle.dumps({"weights": [1, 2]}))
    custom = _hf_folder(tmp / "custom", auto_map={"AutoModelForSequenceClassification": "modeling_x.X"})
    (custom / "model.safetensors").write_bytes(EMPTY_SAFETENSORS)
    corrupt = tmp / "corrupt"  # a real classifier's folder whose weights file is garbage
    corrupt.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (Path(model.removeprefix("path:")) / name).is_file():
            (corrupt / name).write_bytes((Path(model.removeprefix("path:")) / name).read_bytes())
    (corrupt / "model.safetensors").write_bytes(b"\xff" * 64)
    data = ["--dataset", str(good_csv)]
    on_model = ["--model", model]
    return {
        "unknown model id": (["--model", "no such model!", *data], "is not a model"),
        "traversal model id": (["--model", "../../../etc/passwd", *data], "is not a model"),
        "/etc as a model folder": (["--model", "path:/etc", *data], "is not a model folder (no config.json)"),
        "pickle weights (code on load)": (["--model", f"path:{pickled}", *data], "holds pickle weights"),
        "auto_map custom code": (["--model", f"path:{custom}", *data], "custom code"),
        "corrupt safetensors": (["--model", f"path:{corrupt}", *data], "weights file (*.safetensors) is damaged"),
        "fraction 1.0": ([*on_model, *data, "--techniques", "prune-heads:1.0"], "fraction"),
        "fraction -0.1": ([*on_model, *data, "--techniques", "prune-heads:-0.1"], "fraction"),
        "fraction NaN": ([*on_model, *data, "--techniques", "prune-heads:nan"], "fraction"),
        "impossible chain": ([*on_model, *data, "--techniques", "onnx>torch-fp16"], "torch-fp16"),
        "unknown technique": ([*on_model, *data, "--techniques", "cook"], "cook"),
        "threads out of range": ([*on_model, *data, "--threads", "0"], "threads"),
        "batch size out of range": ([*on_model, *data, "--batch-size", "100000"], "batch size must be between"),
        "eval size out of range": ([*on_model, *data, "--eval-size", "0"], "eval size must be between"),
        "missing CSV": ([*on_model, "--dataset", str(tmp / "nowhere.csv")], "does not exist"),
        "empty CSV": ([*on_model, "--dataset", str(_csv(tmp / "empty.csv", [], ()))], "empty"),
        "header-only CSV": ([*on_model, "--dataset", str(_csv(tmp / "header.csv", []))], "no rows"),
        "binary CSV": ([*on_model, "--dataset", str(_write(tmp / "bin.csv", b"\x89PNG\r\n\x1a\n\x00\x00"))],
                       "binary file"),
        "one-class CSV": ([*on_model, "--dataset", str(_csv(tmp / "one.csv", [(f"t {i}", "pos") for i in range(9)]))],
                          "single class"),
        "two-row CSV": ([*on_model, "--dataset", str(_csv(tmp / "two.csv", [("good", "pos"), ("bad", "neg")]))],
                        "too few rows"),
        "duplicate column names": ([*on_model, "--dataset", str(_csv(tmp / "dup.csv", [("a", "pos", "b")] * 6,
                                                                      ("text", "label", "text")))],
                                   "two columns named 'text'"),
        "labels not the model's": ([*on_model, "--dataset", str(_csv(tmp / "ab.csv", [(f"t {i}", "ab"[i % 2])
                                                                                     for i in range(20)]))],
                                   "do not match the dataset's"),
        "empty cells only": ([*on_model, "--dataset", str(_csv(tmp / "blank.csv", [("", "pos"), (" ", "")]))],
                             "no rows"),
        "3 classes for a 2-label model": ([*on_model, "--dataset", str(_csv(tmp / "three.csv", [
            (f"topic text {i}", ["sports", "politics", "science"][i % 3]) for i in range(30)]))],
            "the model predicts 2 labels"),
    }


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


FOUND_BY_THE_RUN: set[str] = set()  # every case is refused before a run is created
CASE_NAMES = [
    "unknown model id", "traversal model id", "/etc as a model folder", "pickle weights (code on load)",
    "auto_map custom code", "corrupt safetensors", "fraction 1.0", "fraction -0.1", "fraction NaN",
    "impossible chain", "unknown technique", "threads out of range", "batch size out of range",
    "eval size out of range", "missing CSV", "empty CSV", "header-only CSV", "binary CSV", "one-class CSV",
    "two-row CSV", "duplicate column names", "labels not the model's", "empty cells only",
    "3 classes for a 2-label model",
]


@pytest.fixture
def stored(engine_env):
    path = engine_env / "runs.sqlite"
    filled_store(path, n_runs=2)
    return path, run_digests(path)


def test_every_case_is_run(tmp_path):
    assert list(_cases(tmp_path, "path:x", tmp_path / "x.csv")) == CASE_NAMES


@pytest.mark.parametrize("case_name", [pytest.param(n, marks=pytest.mark.slow) if n in FOUND_BY_THE_RUN else n
                                       for n in CASE_NAMES])  # slow: loads transformers to read the weights
def test_bad_cli_input(case_name, stored, tmp_path, tiny_artifact, toy_csv, capsys, fault):
    path, before = stored
    argv, fragment = _cases(tmp_path, f"path:{tiny_artifact.path}", toy_csv)[case_name]
    case = fault(f"CLI: {case_name}", f"one line with '{fragment}', exit 2, no run")
    code = main(["run", *argv])
    err = capsys.readouterr().err.strip()
    last = err.splitlines()[-1] if err else ""
    assert "Traceback" not in err
    after = run_digests(path)
    if case_name in FOUND_BY_THE_RUN:  # needs the weights read: the run is created, then fails saying why
        case.expected = f"the run fails with '{fragment}' (found only once it reads the weights)"
        (run_id,) = set(after) - set(before)
        run = RunStore(path).get_run(run_id)
        case.saw(f"exit {code}: run {run['status']}: {run['error']}", run["status"] == "failed" and fragment in
                 run["error"])
        assert code == 1 and run["status"] == "failed" and fragment in run["error"], (err, run["error"])
    else:
        case.saw(f"exit {code}: {last}", code == 2 and fragment in last)
        assert code == 2, err
        assert last.startswith("error: ") and fragment in last, err
        assert set(after) == set(before)
    assert case.saw("earlier runs byte-identical", {k: after[k] for k in before} == before)

"""Input mistakes: CSV delimiters and duplicate columns, pickle and custom-code model folders, one UserError base,
one-line CLI errors, and refusals before any run is created."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from compression.errors import UserError
from profiling.cli import main
from profiling.inputs.datasets import DatasetError, load_dataset, read_csv_columns
from profiling.inputs.models import ModelError, check_local_folder, from_local_folder
from profiling.jobs import runner
from profiling.store.runs import RunStore
from tests.helpers import EMPTY_SAFETENSORS
from tests.helpers.toy_data import toy_rows


def csv_spec(path: Path, text: str = "text", label: str = "label") -> dict:
    return {"kind": "csv", "path": str(path), "text_column": text, "label_column": label}


def write_rows(path: Path, sep: str, rows: list[tuple[str, str]], header=("text", "label"), encoding="utf-8") -> Path:
    lines = [sep.join(header)] + [sep.join(r) for r in rows]
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


# ---- CSV delimiters ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("sep, word", [(",", "comma"), (";", "semicolon"), ("\t", "tab")])
def test_delimiter_is_detected_and_named(tmp_path: Path, sep: str, word: str) -> None:
    path = write_rows(tmp_path / "reviews.csv", sep, toy_rows(40))
    assert read_csv_columns(path) == ["text", "label"]
    data = load_dataset(csv_spec(path))
    assert data.label_names == ["neg", "pos"]
    assert len(data.train_texts) + len(data.test_texts) == 40
    assert f"({word}-separated)" in data.note


def test_semicolon_file_whose_texts_hold_commas(tmp_path: Path) -> None:
    """What spreadsheet programs write in many locales: ';' between fields, ',' inside the texts."""
    rows = [(f"good, really good, film {i}" if i % 2 else f"bad, dull film {i}", "pos" if i % 2 else "neg")
            for i in range(30)]
    path = write_rows(tmp_path / "export.csv", ";", rows)
    data = load_dataset(csv_spec(path))
    assert "semicolon-separated" in data.note
    assert all(", " in t for t in data.train_texts + data.test_texts)  # commas kept inside the texts


def test_semicolon_latin1_numeric_labels(tmp_path: Path) -> None:
    rows = [(f"très bon numéro {i}" if i % 2 else f"mauvais numéro {i}", str(i % 2)) for i in range(30)]
    path = write_rows(tmp_path / "legacy.csv", ";", rows, header=("texte", "note"), encoding="latin-1")
    data = load_dataset(csv_spec(path, "texte", "note"))
    assert data.label_names == ["0", "1"] and "semicolon-separated" in data.note
    assert any("très" in t for t in data.train_texts + data.test_texts)


def test_the_named_columns_decide_between_delimiters(tmp_path: Path) -> None:
    """A tab file whose header also holds a comma: the delimiter that yields the wanted columns wins."""
    path = tmp_path / "data.tsv"
    path.write_text("text\tlabel, or class\n" + "".join(f"row {i}\t{'ab'[i % 2]}\n" for i in range(20)))
    data = load_dataset(csv_spec(path, "text", "label, or class"))
    assert data.label_names == ["a", "b"] and "tab-separated" in data.note


def test_one_column_file_still_says_which_columns_it_has(tmp_path: Path) -> None:
    path = tmp_path / "words.csv"
    path.write_text("text\n" + "".join(f"word {i}\n" for i in range(10)))
    with pytest.raises(DatasetError, match="no column 'label'; available columns: 'text'"):
        load_dataset(csv_spec(path))


@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_duplicate_column_names_are_refused(tmp_path: Path, sep: str) -> None:
    path = write_rows(tmp_path / "dup.csv", sep, [("a", "x", "b")] * 10, header=("text", "label", "text"))
    with pytest.raises(DatasetError, match=r"two columns named 'text' \(columns 1 and 3\)"):
        read_csv_columns(path)
    with pytest.raises(DatasetError, match="two columns named 'text'"):
        load_dataset(csv_spec(path))


# ---- model folders ----------------------------------------------------------------------------------------


def _config(folder: Path, **extra) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"model_type": "bert", "architectures": ["BertForSequenceClassification"],
           "id2label": {"0": "neg", "1": "pos"}, **extra}
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


class _Trap:
    """Unpickling this creates a marker file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("weights", ["pytorch_model.bin", "model.pt", "last.ckpt"])
def test_pickle_weights_are_refused_before_torch(tmp_path: Path, monkeypatch, weights: str) -> None:
    marker = tmp_path / "code-ran"
    folder = _config(tmp_path / "model")
    (folder / weights).write_bytes(pickle.dumps(_Trap(marker)))
    monkeypatch.setenv("COMPRESSION_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr("torch.load", lambda *a, **k: pytest.fail("torch.load was called"))
    with pytest.raises(ModelError) as exc:
        from_local_folder(folder)
    text = str(exc.value)
    assert f"holds pickle weights ({weights})" in text
    assert "unpickling a file can run arbitrary code" in text
    assert "save_pretrained(folder, safe_serialization=True)" in text
    assert not marker.exists()


def test_safetensors_beside_a_pickle_is_accepted(tmp_path: Path) -> None:
    folder = _config(tmp_path / "model")
    (folder / "pytorch_model.bin").write_bytes(b"pickle")
    (folder / "model.safetensors").write_bytes(EMPTY_SAFETENSORS)
    assert check_local_folder(folder) is None


def test_auto_map_custom_code_is_refused(tmp_path: Path) -> None:
    folder = _config(tmp_path / "model", auto_map={"AutoModelForSequenceClassification": "modeling_evil.Evil"})
    (folder / "model.safetensors").write_bytes(EMPTY_SAFETENSORS)
    with pytest.raises(ModelError, match=r"custom code .*auto_map: AutoModelForSequenceClassification.*never runs"):
        check_local_folder(folder)


def test_unreadable_config_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="cannot be read as JSON"):
        check_local_folder(folder)


# ---- one UserError base -------------------------------------------------------------------------------------


def test_every_user_error_class_derives_from_user_error() -> None:
    from compression.hf_io import UnsupportedArchitectureError
    from compression.registry import TechniqueError
    from compression.tokenize import TokenizerError
    from profiling.cli import CliError
    from profiling.inputs.downloads import DownloadError
    from profiling.inputs.model_files import BaseModelError
    from profiling.jobs.runner import RequestError
    from profiling.jobs.sensitivity import SensitivityError
    from profiling.jobs.sweep import SweepError
    from profiling.store.bundle import BundleError

    classes = [UnsupportedArchitectureError, TechniqueError, TokenizerError, CliError, BundleError, DownloadError,
               BaseModelError, ModelError, RequestError, SensitivityError, SweepError, DatasetError]
    assert [c.__name__ for c in classes if not issubclass(c, UserError)] == []
    assert issubclass(UserError, ValueError)  # old `except ValueError` handlers keep working


def test_readable_keeps_the_type_of_a_bug_only() -> None:
    assert runner.readable(DatasetError("bad  file\nhere")) == "bad file here"
    assert runner.readable(ValueError("oops")) == "ValueError: oops"


def test_page_guard_message_shows_the_type_of_a_bug_only() -> None:
    from dashboard.guard import _message

    assert _message(ModelError("no such folder: /x")) == "no such folder: /x"
    assert _message(ValueError("math domain error")) == "ValueError: math domain error"


# ---- the CLI: one line, exit 2, nothing created ---------------------------------------------------------------


def _one_class_csv(path: Path) -> Path:
    return write_rows(path, ";", [(f"text {i}", "pos") for i in range(20)])


def test_cli_input_mistakes_are_one_line_and_create_no_run(engine_env, tmp_path: Path, capsys) -> None:
    dup = write_rows(tmp_path / "dup.csv", ",", [("a", "x", "b")] * 10, header=("text", "label", "text"))
    pickled = _config(tmp_path / "pickled")
    (pickled / "pytorch_model.bin").write_bytes(pickle.dumps({"w": 1}))
    cases = [
        (["--dataset", str(dup)], "two columns named 'text'"),
        (["--dataset", str(_one_class_csv(tmp_path / "one.csv"))], "single class"),
        (["--model", f"path:{pickled}"], "holds pickle weights"),
    ]
    for argv, message in cases:
        assert main(["run", "--techniques", "onnx", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and "\n" not in err, err
    assert RunStore().list_runs() == []


def test_cli_labels_that_do_not_match_the_folder_create_no_run(engine_env, tmp_path: Path, capsys) -> None:
    folder = _config(tmp_path / "model", id2label={"0": "negative", "1": "positive"})
    (folder / "model.safetensors").write_bytes(EMPTY_SAFETENSORS)
    csv_path = write_rows(tmp_path / "toy.csv", ",", toy_rows(30))
    assert main(["run", "--techniques", "onnx", "--model", f"path:{folder}", "--dataset", str(csv_path)]) == 2
    assert "do not match the dataset's (neg, pos)" in capsys.readouterr().err
    assert RunStore().list_runs() == []


def test_cli_a_real_bug_keeps_its_traceback(engine_env, monkeypatch) -> None:
    from profiling import cli
    def broken(args):
        raise ValueError("a bug, not the user's fault")

    monkeypatch.setitem(cli.COMMANDS, "list", broken)
    with pytest.raises(ValueError, match="a bug"):
        main(["list"])


def test_cli_subprocess_prints_no_traceback(engine_env, tmp_path: Path) -> None:
    csv_path = _one_class_csv(tmp_path / "one.csv")
    proc = subprocess.run([sys.executable, "-m", "profiling", "run", "--dataset", str(csv_path)],
                          capture_output=True, text=True, timeout=180, check=False, env=dict(os.environ))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.strip().splitlines()[-1].startswith("error: ")


def test_cli_says_which_delimiter_it_used(engine_env, tmp_path: Path, capsys, monkeypatch) -> None:
    from profiling import cli
    csv_path = write_rows(tmp_path / "toy.csv", "\t", toy_rows(30))
    monkeypatch.setattr(cli, "execute_with_bars", lambda store, run_id: 0.0)  # only the start-up messages
    main(["run", "--techniques", "onnx", "--dataset", str(csv_path)])
    assert "dataset: toy.csv (tab-separated): 30 rows" in capsys.readouterr().err


# ---- checked before a run is created (Run page and CLI share runner.normalize_request) -----------------------


def test_launch_refuses_input_mistakes_without_creating_a_run(engine_env, tmp_path: Path) -> None:
    pickled = _config(tmp_path / "pickled")
    (pickled / "model.ckpt").write_bytes(b"x")
    custom = _config(tmp_path / "custom", auto_map={"AutoConfig": "configuration_x.XConfig"})
    (custom / "model.safetensors").write_bytes(EMPTY_SAFETENSORS)
    good_csv = write_rows(tmp_path / "good.csv", ",", toy_rows(30))
    requests = {
        "single class": {"model": "default", "dataset": csv_spec(_one_class_csv(tmp_path / "one.csv"))},
        "holds pickle weights": {"model": f"path:{pickled}", "dataset": csv_spec(good_csv)},
        "custom code": {"model": f"path:{custom}", "dataset": csv_spec(good_csv)},
    }
    for message, request in requests.items():
        with pytest.raises(runner.RequestError, match=message):
            runner.launch({**request, "variants": []})
    assert RunStore().list_runs() == []


def test_a_damaged_safetensors_file_is_refused_from_its_header_before_any_run(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    from profiling.inputs.models import safetensors_problem

    good = tmp_path / "good.safetensors"
    save_file({"w": torch.zeros(64, 64), "b": torch.ones(64)}, str(good))
    assert safetensors_problem(good) is None
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # a download cut off half-way
    assert "the file is cut short" in safetensors_problem(cut)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\xff" * 64)
    assert "header claims" in safetensors_problem(garbage)
    not_json = tmp_path / "text.safetensors"
    not_json.write_bytes((4).to_bytes(8, "little") + b"\xff\xfe{]")
    assert safetensors_problem(not_json) == "its header is not JSON"
    assert "shorter than a safetensors header" in safetensors_problem(_write(tmp_path / "tiny.safetensors", b"ab"))
    folder = _config(tmp_path / "model")
    (folder / "model.safetensors").write_bytes(cut.read_bytes())
    with pytest.raises(ModelError, match=r"weights file \(\*\.safetensors\) is damaged or incomplete \(model"):
        check_local_folder(folder)


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path

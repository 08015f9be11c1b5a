"""Sensitivity map: int8 simulation, one unit changed at a time (and restored), map shape, excludes, storage, CLI."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from compression import hf_io
from dashboard import sensitivity as page
from profiling.jobs import sensitivity as sens
from tests.helpers.toy_data import toy_texts


@pytest.fixture(scope="module")
def model_and_tok(tiny_bert):
    return hf_io.load_model(tiny_bert.path), hf_io.load_tokenizer(tiny_bert.path)


def test_int8_simulation_is_symmetric_per_channel():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 40, generator=g) * torch.tensor([0.01, 0.1, 1, 10, 100, 0.0]).view(6, 1)
    q = sens.simulate_int8(w)
    scale = w.abs().amax(1, keepdim=True) / 127
    assert torch.equal(q[5], w[5])  # an all-zero row stays zero
    steps = q[:5] / scale[:5]
    assert torch.allclose(steps, steps.round(), atol=1e-3) and steps.abs().max() <= 127 + 1e-3
    assert ((q - w).abs() <= scale / 2 + 1e-6).all()  # rounding error at most half a step, per row
    assert torch.equal(q.abs().amax(1), w.abs().amax(1))  # the largest weight of each row is exact


def test_each_linear_changed_alone_and_restored(model_and_tok, monkeypatch):
    model, tok = model_and_tok
    texts, labels = toy_texts(12)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    changed_per_call = []
    real = sens._Evaluator._run

    def spy(self, state):
        changed_per_call.append(sorted(k for k, v in self.model.state_dict().items() if not torch.equal(v, before[k])))
        return real(self, state)

    monkeypatch.setattr(sens._Evaluator, "_run", spy)
    result = sens.compute(model, tok, texts, labels, "int8")
    units = [r["unit"] for r in result["rows"]]
    assert len(units) == 12 and all(u.startswith("bert.encoder.layer.") for u in units)
    assert changed_per_call[0] == []  # the baseline is the unchanged model
    assert changed_per_call[1:] == [[u + ".weight"] for u in units]  # exactly that one layer, nothing else
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # everything put back
    for r in result["rows"]:
        assert 0 <= r["agreement"] <= 1 and r["max_logit_change"] > 0
        assert r["delta_accuracy"] == pytest.approx(r["accuracy"] - result["baseline_accuracy"])


def test_heads_map_shape_and_low_rank(model_and_tok):
    model, tok = model_and_tok
    texts, labels = toy_texts(8)
    heads = sens.compute(model, tok, texts, labels, "heads")
    assert len(heads["rows"]) == 2 * 4
    ylabels, xlabels, z = page.grid(heads, "agreement")
    assert ylabels == ["layer 0", "layer 1"] and xlabels == [f"head {h}" for h in range(4)]
    assert all(v is not None for row in z for v in row)
    with pytest.raises(ValueError, match="a head map names heads"):
        sens.exclude_option(heads, 2)
    coarse = sens.compute(model, tok, texts, labels, "low-rank", rank_fraction=0.05)
    fine = sens.compute(model, tok, texts, labels, "low-rank", rank_fraction=1.0)
    assert max(r["max_logit_change"] for r in fine["rows"]) < 1e-4  # full rank: the same layer
    assert sum(r["mean_logit_change"] for r in coarse["rows"]) > 100 * sum(r["mean_logit_change"] for r in fine["rows"])
    ylabels, xlabels, z = page.grid(coarse, "mean_logit_change")
    assert len(ylabels) == 2 and len(xlabels) == 6  # layer x sublayer
    assert xlabels[0] == "attention query" and "feed-forward out" in xlabels
    fig = page.heatmap_figure(coarse, "mean_logit_change")
    assert fig.data[0].z is not None and len(fig.data[0].y) == 2


def test_bad_inputs_refused(model_and_tok):
    model, tok = model_and_tok
    with pytest.raises(ValueError, match="technique must be one of int8, heads, low-rank, got 'fp4'"):
        sens.compute(model, tok, ["a"], [0], "fp4")
    with pytest.raises(ValueError, match="rank_fraction must be above 0 and at most 1, got 0"):
        sens.compute(model, tok, ["a"], [0], "low-rank", rank_fraction=0)
    with pytest.raises(ValueError, match="samples must be a whole number of at least 1, got 0"):
        sens.run(samples=0)


def test_most_sensitive_order_and_exclude_list():
    rows = [
        {"unit": "a.x", "agreement": 1.0, "delta_accuracy": 0.0, "max_logit_change": 0.1, "mean_logit_change": 0.01},
        {"unit": "b.x", "agreement": 0.8, "delta_accuracy": -0.1, "max_logit_change": 0.2, "mean_logit_change": 0.1},
        {"unit": "c.x", "agreement": 1.0, "delta_accuracy": 0.0, "max_logit_change": 0.3, "mean_logit_change": 0.05},
        {"unit": "d.x", "agreement": 0.8, "delta_accuracy": -0.2, "max_logit_change": 0.1, "mean_logit_change": 0.1},
    ]
    result = {"technique": "int8", "rows": rows}
    assert sens.most_sensitive(result, 3) == ["d.x", "b.x", "c.x"]
    assert sens.exclude_option(result, 2) == "d.x+b.x"
    from compression import parse_spec

    cfg = parse_spec("prune-magnitude:sparsity=0.5,exclude_layers=" + sens.exclude_option(result, 2))
    assert cfg.exclude_layers == "d.x+b.x"


def test_save_list_load(tmp_path):
    result = {"technique": "int8", "dataset": "toy", "rows": [], "baseline_accuracy": 0.5}
    p1, p2 = sens.save_result(result, tmp_path), sens.save_result(result, tmp_path)
    assert p1 != p2 and set(sens.list_results(tmp_path)) == {p1, p2}
    assert sens.load_result(p1) == result
    (tmp_path / "bad.json").write_text(json.dumps({"x": 1}))
    with pytest.raises(ValueError, match="is not a sensitivity map"):
        sens.load_result(tmp_path / "bad.json")


def test_cli_on_a_csv_train_split(tiny_bert, tmp_path, monkeypatch, capsys):
    from profiling.cli import main

    monkeypatch.setenv("COMPRESSION_DATA_DIR", str(tmp_path / "data"))
    texts, _ = toy_texts(60)
    with open(tmp_path / "toy.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        w.writerows(zip(texts, ["neg", "pos"] * 30, strict=False))
    store_file = tmp_path / "runs.sqlite"
    code = main(["sensitivity", "--model", f"path:{tiny_bert.path}", "--dataset", str(tmp_path / "toy.csv"),
                 "--technique", "int8", "--samples", "16", "--top", "2", "--store", str(store_file)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "16 examples of the train split" in out
    line = next(x for x in out.splitlines() if x.startswith("exclude_layers="))
    assert len(line.removeprefix("exclude_layers=").split("+")) == 2
    from profiling.store.runs import RunStore

    (job,) = RunStore(store_file).list_jobs("sensitivity", with_results=True)  # stored as a job, no file written
    assert job["status"] == "done" and len(job["result"]["rows"]) == 12 and f"as job {job['id']}" in out
    assert job["request"]["samples"] == 16 and job["started_ts"] <= job["finished_ts"]
    assert not (tmp_path / "data" / "sensitivity").exists() or not sens.list_results(tmp_path / "data" / "sensitivity")
    assert main(["sensitivity", "--dataset", "nope"]) == 2


@pytest.mark.parametrize("technique", ["int8", "heads"])
def test_skipping_unchanged_layers_gives_the_same_map(model_and_tok, monkeypatch, technique):
    """Blocks before the changed one return their recorded outputs: the figures equal a full forward pass."""
    model, tok = model_and_tok
    texts, labels = toy_texts(10)
    fast = sens.compute(model, tok, texts, labels, technique)
    monkeypatch.setattr(sens._Evaluator, "logits", lambda self, start=0: self._run({"batch": 0}))
    full = sens.compute(model, tok, texts, labels, technique)
    assert [r["unit"] for r in fast["rows"]] == [r["unit"] for r in full["rows"]]
    for a, b in zip(fast["rows"], full["rows"], strict=True):
        assert a["agreement"] == b["agreement"] and a["accuracy"] == b["accuracy"]
        assert a["max_logit_change"] == pytest.approx(b["max_logit_change"], abs=1e-5)
    assert any(r["layer"] == 1 and r["max_logit_change"] > 0 for r in fast["rows"])  # later layers really changed


def test_exclude_list_feeds_onnx_int8(model_and_tok, tiny_bert, artifact_cache):
    """The suggested names are accepted by onnx-int8's exclude_layers (H1's option) and keep those layers float."""
    from compression import apply, parse_spec
    from compression.registry import make_config

    model, tok = model_and_tok
    texts, labels = toy_texts(8)
    names = sens.exclude_option(sens.compute(model, tok, texts, labels, "int8"), 2)
    onnx = apply(tiny_bert, parse_spec("onnx"), artifact_cache)
    plain = apply(onnx, parse_spec("onnx-int8"), artifact_cache)
    kept = apply(onnx, make_config("onnx-int8", exclude_layers=names), artifact_cache)
    assert kept.disk_bytes() > plain.disk_bytes()  # two Linears stay float32

"""AppTest of the Results page's "Where the int8 gain comes from" section against a prepared run store."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.helpers import REPO
from tests.helpers.fake_runs import METRICS, build_fake_run

PAGE = REPO / "pages" / "results.py"
HEADING = "Where the int8 gain comes from"
INT8_COL = "Runtime fp32 \u2192 int8"


def _run(run_id: str) -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.query_params["run"] = run_id
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def _split(at: AppTest):
    return next((df.value for df in at.dataframe if INT8_COL in df.value.columns), None)


def _one_variant_run(store, chain: list[dict], name: str) -> str:
    """The original and one variant, both finished, with the fake run's figures (variant = METRICS[2])."""
    request = {"model": "default", "dataset": {"kind": "bundled", "name": "movie-reviews"},
               "variants": [{"name": name, "chain": chain}], "settings": {"batch_size": 8}}
    run_id = store.create_run(request)
    store.upsert_variant(run_id, 0, status="done", metrics=METRICS[0])
    store.upsert_variant(run_id, 1, status="done", metrics=METRICS[2])
    store.set_run_status(run_id, "done")
    return run_id


def test_the_split_table_shows_runtime_and_int8_steps(store):
    at = _run(build_fake_run(store))  # original 20 ms -> onnx 10 ms -> onnx-int8 5 ms at batch 1
    assert any(s.value == HEADING for s in at.subheader)
    assert any("runtime step" in c.value and "within noise" in c.value for c in at.caption)
    table = _split(at).set_index("Figure")
    assert list(table.index) == ["Latency b1 median (ms)", "Latency b8 median (ms)", "Disk (MiB)"]
    b1 = table.loc["Latency b1 median (ms)"]
    assert (b1["int8 variant"], b1["Runtime"], b1["Compared"]) == (
        "onnx-int8", "ONNX Runtime", "original \u2192 onnx \u2192 onnx-int8")
    assert (b1["PyTorch fp32 \u2192 runtime fp32"], b1[INT8_COL], b1["Total"]) == ("2.00\u00d7", "2.00\u00d7",
                                                                                    "4.00\u00d7")
    assert b1["Share from the runtime"] == "50%"
    assert table.loc["Latency b8 median (ms)", "Total"] == "3.00\u00d7"


def test_a_missing_fp32_variant_is_named(store):
    at = _run(_one_variant_run(store, [{"technique": "onnx"}, {"technique": "onnx-int8"}], "onnx-int8"))
    row = _split(at).set_index("Figure").loc["Latency b1 median (ms)"]
    assert row[INT8_COL] == "add the `onnx` variant to split this gain"
    assert row["Total"] == "4.00\u00d7"


def test_no_section_without_an_int8_variant(store):
    at = _run(_one_variant_run(store, [{"technique": "onnx"}], "onnx"))
    assert _split(at) is None
    assert not any(s.value == HEADING for s in at.subheader)

"""AppTest: a CPU warning shared by several techniques of one column of the Run page is said once."""

from __future__ import annotations

from profiling.measure.hardware import CpuInfo

VNNI = "no VNNI int8 dot-product instructions"


def test_a_cpu_warning_is_said_once_per_column(open_page, monkeypatch):
    from dashboard import hardware

    monkeypatch.setattr(hardware, "this_cpu", lambda: CpuInfo("Old CPU", frozenset({"avx2", "fma", "f16c"})))
    at = open_page()
    assert not at.exception, [e.value for e in at.exception]
    captions = [c.value for c in at.caption]
    full = [c for c in captions if VNNI in c]
    again = [c for c in captions if "The CPU note above applies here too" in c]
    assert full, "the warning is shown"
    assert again, "the other int8 techniques of the column point to it"
    assert len(full) == 1, full  # the int8 techniques share one column: one paragraph, not one per technique

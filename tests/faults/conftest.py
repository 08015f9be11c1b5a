"""The fault suite's fixtures and its summary: each case records (case, expected, got, passed); the table is printed
at the end of the session and written to test-artifacts/faults-summary.json."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import REPO

SUMMARY_PATH = REPO / "test-artifacts" / "faults-summary.json"
_ROWS: list[dict] = []
TMP_PATH = re.compile(r"/tmp/pytest-of-[^/]+/pytest-\d+/[^/\s]+")  # a test's tmp_path, shortened in the table


class FaultCase:
    """One row of the summary: ``expect(got, passed)`` records what the case saw; pytest's outcome decides too."""

    def __init__(self, name: str, expected: str):
        self.name, self.expected = name, expected
        self.got: list[str] = []
        self.checks: list[bool] = []

    def saw(self, got: str, ok: bool = True) -> bool:
        self.got.append(TMP_PATH.sub("<tmp>", " ".join(str(got).split())))
        self.checks.append(bool(ok))
        return bool(ok)


@pytest.fixture
def fault(request) -> Iterator:
    """``case = fault(name, expected)``: a summary row for this test (several per test are allowed)."""
    made: list[FaultCase] = []

    def make(name: str, expected: str) -> FaultCase:
        made.append(FaultCase(name, expected))
        return made[-1]

    yield make
    failed = getattr(request.node, "_fault_failed", None)
    for case in made:
        passed = bool(case.checks) and all(case.checks) and failed is False
        _ROWS.append({"case": case.name, "expected": case.expected, "got": "; ".join(case.got) or "(nothing)",
                      "passed": passed, "test": request.node.nodeid})


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" or (report.when == "setup" and report.failed):
        item._fault_failed = not report.passed
    return report


def pytest_terminal_summary(terminalreporter) -> None:
    if not _ROWS:
        return
    SUMMARY_PATH.parent.mkdir(parents=True, exist_ok=True)
    SUMMARY_PATH.write_text(json.dumps(_ROWS, indent=2))
    tr = terminalreporter
    tr.write_sep("=", f"fault suite: {sum(r['passed'] for r in _ROWS)}/{len(_ROWS)} cases as expected")
    width = {"case": 34, "expected": 48, "got": 70}
    tr.write_line(f"{'case':<{width['case']}} {'expected':<{width['expected']}} {'got':<{width['got']}} ok")
    for row in _ROWS:
        cells = [_cut(row[k], width[k]) for k in ("case", "expected", "got")]
        tr.write_line(f"{cells[0]:<{width['case']}} {cells[1]:<{width['expected']}} {cells[2]:<{width['got']}} "
                      f"{'yes' if row['passed'] else 'NO'}")
    tr.write_line(f"(full rows in {SUMMARY_PATH.relative_to(REPO)})")


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# ---- small file systems ------------------------------------------------------------------------------


class SmallDisk:
    """A size-limited tmpfs mounted at ``path`` (``resize`` frees or takes space, ``read_only`` remounts it)."""

    def __init__(self, path: Path, size_kib: int):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        _mount(["-t", "tmpfs", "-o", f"size={size_kib}k,mode=0755", "tmpfs", str(path)])

    def resize(self, size_kib: int) -> None:
        _mount(["-o", f"remount,size={size_kib}k", str(self.path)])

    def read_only(self, on: bool = True) -> None:
        _mount(["-o", f"remount,{'ro' if on else 'rw'}", str(self.path)])

    def free_bytes(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self, leave_bytes: int = 0, name: str = "filler") -> Path:
        """Write a filler file until only ``leave_bytes`` are free (or the disk is full)."""
        filler = self.path / name
        with open(filler, "ab") as fh:
            try:
                while self.free_bytes() > leave_bytes:
                    fh.write(b"\0" * min(64 * 1024, max(self.free_bytes() - leave_bytes, 4096)))
                    fh.flush()
            except OSError:
                pass
        return filler

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False, capture_output=True)


def _mount(args: list[str]) -> None:
    done = subprocess.run(["mount", *args], check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise PermissionError(done.stderr.strip() or f"mount {' '.join(args)} failed")


@pytest.fixture
def small_disk(tmp_path) -> Iterator:
    """``small_disk(name, size_kib)``: a tmpfs of that size under tmp_path. Skipped, with the reason, where this
    process may not mount (the suite runs as root here and in CI)."""
    disks: list[SmallDisk] = []

    def make(name: str, size_kib: int) -> SmallDisk:
        try:
            disks.append(SmallDisk(tmp_path / name, size_kib))
        except (PermissionError, FileNotFoundError) as exc:
            pytest.skip(f"cannot mount a small tmpfs here ({exc}); run the fault suite as root")
        return disks[-1]

    yield make
    for disk in disks:
        disk.unmount()

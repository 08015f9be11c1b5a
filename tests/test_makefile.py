"""The Makefile's entry points (dry runs: `make -n`): `make run`/`make demo` start the dashboard right after install,
with the default-classifier build in the background; `make test` builds it in the foreground before pytest."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def dry_run(target: str) -> list[str]:
    out = subprocess.run(["make", "-n", target, "PYTHON=python3"], cwd=REPO, capture_output=True, text=True, check=False,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


@pytest.mark.parametrize("target", ["run", "demo"])
def test_run_and_demo_start_the_build_in_the_background_then_the_dashboard(target):
    lines = dry_run(target)
    setup = [i for i, line in enumerate(lines) if "-m profiling setup" in line]
    app = [i for i, line in enumerate(lines) if "-m streamlit run app.py" in line]
    install = [i for i, line in enumerate(lines) if "pip install" in line]
    assert len(setup) == 1 and "--background" in lines[setup[0]]
    assert len(app) == 1 and install and max(install) < setup[0] < app[0]


def test_test_builds_in_the_foreground_before_pytest():
    lines = dry_run("test")
    setup = [i for i, line in enumerate(lines) if "-m profiling setup" in line]
    tests = [i for i, line in enumerate(lines) if "-m pytest" in line]
    assert len(setup) == 1 and "--background" not in lines[setup[0]]
    assert len(tests) == 1 and setup[0] < tests[0]


def test_the_background_flag_is_a_cli_option():
    from profiling import cli

    args = cli._parser().parse_args(["setup", "--background"])
    assert args.background and not args.plain

"""Temp folders of artifact builds: only this host's whose process is gone are removed (kill -9 leaves them)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from compression.registry import PARTIAL, remove_orphaned_partials


def test_only_this_hosts_partials_of_dead_processes_are_removed(tmp_path):
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    dead = int(done.stdout)  # that process has ended
    host = socket.gethostname()
    live_parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        folders = {
            "dead": tmp_path / f"onnx-aaaa{PARTIAL}{host}-{dead}",
            "self": tmp_path / f"onnx-bbbb{PARTIAL}{host}-{os.getpid()}",
            "alive": tmp_path / f"onnx-cccc{PARTIAL}{host}-{live_parent.pid}",
            "other host": tmp_path / f"onnx-dddd{PARTIAL}another-host-{dead}",
            "complete": tmp_path / "onnx-eeee",
        }
        for folder in folders.values():
            folder.mkdir()
            (folder / "model.onnx").write_bytes(b"half")
        assert remove_orphaned_partials(tmp_path) == [folders["dead"]]
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f.name for k, f in folders.items() if k != "dead")
    finally:
        live_parent.kill()
        live_parent.wait()
    assert remove_orphaned_partials(tmp_path / "missing") == []


def test_a_zombie_builds_partial_is_removed(tmp_path):
    """A build process killed but not reaped yet (a zombie) is gone: its temp folder goes."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    try:
        folder = tmp_path / f"onnx-ffff{PARTIAL}{socket.gethostname()}-{proc.pid}"
        folder.mkdir()
        assert remove_orphaned_partials(tmp_path) == [folder]
    finally:
        proc.wait()

"""The CPU's instruction sets and thread counts, read from /proc/cpuinfo (what decides which kernels are fast)."""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Instruction sets that decide which kernels are fast: /proc/cpuinfo flag -> readable name.
ISA_FLAGS: dict[str, str] = {
    "avx2": "AVX2",
    "fma": "FMA",
    "f16c": "F16C",
    "avx512f": "AVX-512F",
    "avx512_vnni": "AVX512-VNNI",
    "avx_vnni": "AVX-VNNI",
    "avx512_bf16": "AVX512-BF16",
    "avx512_fp16": "AVX512-FP16",
    "amx_tile": "AMX",
    "amx_int8": "AMX-INT8",
    "amx_bf16": "AMX-BF16",
    "amx_fp16": "AMX-FP16",
}


@dataclass(frozen=True)
class CpuInfo:
    """What this CPU can do fast: model name, the flags of ``ISA_FLAGS`` it has, cores and usable threads."""

    model: str | None
    flags: frozenset[str] = field(default_factory=frozenset)
    logical_cpus: int | None = None  # processors listed in /proc/cpuinfo
    physical_cores: int | None = None  # distinct (physical id, core id) pairs, where the file says
    usable_threads: int | None = None  # CPUs this process may run on (sched_getaffinity)

    def has(self, *flags: str) -> bool:
        """Whether the CPU has any of ``flags``."""
        return any(f in self.flags for f in flags)

    @property
    def vnni(self) -> bool:
        return self.has("avx512_vnni", "avx_vnni", "amx_int8")

    @property
    def native_bf16(self) -> bool:
        return self.has("avx512_bf16", "amx_bf16")

    @property
    def native_fp16(self) -> bool:
        return self.has("avx512_fp16", "amx_fp16")

    def isa_names(self) -> list[str]:
        """Readable names of the instruction sets of interest that the CPU has, in ``ISA_FLAGS`` order."""
        return [name for flag, name in ISA_FLAGS.items() if flag in self.flags]

    def summary(self) -> str:
        """One line, e.g. "AMD EPYC · 2 threads usable (2 cores) · AVX2, FMA, AVX-512F, AVX512-VNNI"."""
        parts = [self.model or platform.machine() or "unknown CPU"]
        threads = f"{self.usable_threads} thread(s) usable" if self.usable_threads else "threads unknown"
        if self.physical_cores:
            threads += f" ({self.physical_cores} core(s))"
        parts.append(threads)
        parts.append(", ".join(self.isa_names()) or "no AVX2 or newer vector instructions detected")
        return " \u00b7 ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "flags": {flag: flag in self.flags for flag in ISA_FLAGS},
            "logical_cpus": self.logical_cpus,
            "physical_cores": self.physical_cores,
            "usable_threads": self.usable_threads,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CpuInfo:
        """From ``to_json`` output or a run's environment fingerprint (``cpu_model``, ``cpu_flags``, cores)."""
        flags = data.get("flags", data.get("cpu_flags")) or {}
        return cls(
            model=data.get("model", data.get("cpu_model")),
            flags=frozenset(f for f, present in flags.items() if present),
            logical_cpus=data.get("logical_cpus", data.get("logical_cores")),
            physical_cores=data.get("physical_cores"),
            usable_threads=data.get("usable_threads", data.get("usable_cores")),
        )


def _scan(text: str) -> tuple[str | None, set[str], int, int]:
    """The first processor's model and all its flags (x86 ``flags``, ARM ``Features``), the processor count and the
    number of distinct physical cores, from the text of /proc/cpuinfo (the one parser of that file)."""
    model: str | None = None
    flags: set[str] | None = None
    processors = 0
    cores: set[tuple[str, str]] = set()
    physical = core = None
    for line in text.splitlines() + [""]:
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not key:  # a blank line ends one processor's block
            if physical is not None and core is not None:
                cores.add((physical, core))
            physical = core = None
            continue
        if key == "processor":
            processors += 1
        elif key == "model name" and model is None:
            model = value
        elif key in ("flags", "Features") and flags is None:
            flags = set(value.split())
        elif key == "physical id":
            physical = value
        elif key == "core id":
            core = value
    return model, flags or set(), processors, len(cores)


def parse_cpuinfo(text: str, usable_threads: int | None = None) -> CpuInfo:
    """A CpuInfo from the text of /proc/cpuinfo: the first processor's model and flags (x86 ``flags``, ARM
    ``Features``), the processor count and the distinct physical cores."""
    model, flags, processors, cores = _scan(text)
    return CpuInfo(
        model=model,
        flags=frozenset(flags & set(ISA_FLAGS)),
        logical_cpus=processors or None,
        physical_cores=cores or None,
        usable_threads=usable_threads,
    )


def read_cpuinfo(path: Path | str = "/proc/cpuinfo") -> tuple[str | None, set[str]]:
    """The first processor's model name and all its flags (not only ISA_FLAGS), or (None, empty) where the file is
    missing or unreadable."""
    try:
        text = Path(path).read_text()
    except OSError:
        return None, set()
    model, flags, _, _ = _scan(text)
    return model, flags


def usable_threads() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count()


def detect(path: Path | str = "/proc/cpuinfo") -> CpuInfo:
    """This machine's CpuInfo; model only (from platform) where /proc/cpuinfo is missing."""
    try:
        text = Path(path).read_text()
    except OSError:
        return CpuInfo(model=platform.processor() or None, usable_threads=usable_threads())
    return parse_cpuinfo(text, usable_threads())

"""Environment fingerprint: CPU model and instruction sets, cores, RAM, OS and library versions."""

from __future__ import annotations

import os
import platform
from importlib import metadata

import psutil

from compression.cpu import ISA_FLAGS, read_cpuinfo

__all__ = ["FLAGS_OF_INTEREST", "fingerprint", "package_versions", "read_cpuinfo"]

# Instruction sets that decide which kernels are fast (int8 dot products, bf16, wide vectors): compression.cpu's.
FLAGS_OF_INTEREST = tuple(ISA_FLAGS)
PACKAGES = ("torch", "transformers", "onnxruntime", "onnx", "openvino", "nncf", "numpy", "streamlit", "tokenizers",
            "scikit-learn")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed versions from package metadata, without importing the packages (torch costs seconds)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def fingerprint(threads: int | None = None) -> dict:
    """A JSON-ready description of the machine the figures were measured on; ``threads`` is the requested count."""
    model, flags = read_cpuinfo()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    return {
        "cpu_model": model or platform.processor() or platform.machine(),
        "cpu_flags": {flag: flag in flags for flag in FLAGS_OF_INTEREST},
        "logical_cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "usable_cores": usable,
        "ram_total_mib": round(psutil.virtual_memory().total / 2**20, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": package_versions(),
        "threads_requested": threads,
        "thread_env": {name: os.environ.get(name) for name in THREAD_VARS},
    }

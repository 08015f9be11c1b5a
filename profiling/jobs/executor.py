"""Executors: what builds and measures a run's variants once the runner has loaded its inputs.

``local`` (the default) measures one variant at a time in a fresh child process on this machine; ``ray`` sends the
same work to a Ray cluster, each variant alone on a node (profiling.jobs.ray_executor). The runner picks one from the
request's ``executor``; nothing above the job layer knows which one ran. This module never imports ray.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Protocol

from compression.errors import UserError

EXECUTORS = ("local", "ray")
DEFAULT_EXECUTOR = "local"
ADDRESS_ENV = "RAY_ADDRESS"
ADDRESS_HELP = ("The Ray cluster's head address, 'HOST:PORT' (ray start --head prints it; port 6379 by default), "
                "'ray://HOST:PORT' or 'auto' (a cluster started on this machine); default: $RAY_ADDRESS.")
_HOST_PORT = re.compile(r"^(?:ray://)?(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]+\]):(?P<port>\d{1,5})$")


class ExecutorError(UserError):
    """An executor choice or cluster address that cannot work; the message says what to change."""


@dataclass
class Sweep:
    """Everything an executor needs to build and measure a run's variants, once the inputs are loaded."""

    run_id: str
    variants: list[dict]  # the stored variants, the original first
    base: Any  # the base model's Artifact
    data: Any  # the LabeledData, in the model's label order
    settings: dict  # the request's settings plus its workloads
    eval_texts: list[str]
    eval_labels: list[int]
    latency_texts: list[str]
    store: Any  # RunStore: only the executor's driver side writes it
    rep: Any  # the runner's reporter (throttled variant/stage writes)
    state: dict  # state["where"]: what the run is doing, for a stop's or a failure's message


class Executor(Protocol):
    def run(self, sweep: Sweep) -> None:
        """Build and measure every variant, writing each one's outcome to the store as it finishes; a variant's
        failure is recorded and the rest go on; a failing original raises the runner's run failure."""


def check_executor(request: dict) -> dict:
    """The request's ``executor`` and ``ray_address`` checked: ``{}`` for the local executor (nothing stored),
    ``{"executor": "ray", "ray_address": ...}`` (the address given, else ``$RAY_ADDRESS``) for a cluster."""
    name = request.get("executor") or DEFAULT_EXECUTOR
    if name not in EXECUTORS:
        raise ExecutorError(f"unknown executor {name!r}; use one of {', '.join(EXECUTORS)}")
    if name == "local":
        return {}
    address = request.get("ray_address")
    if address is None or (isinstance(address, str) and not address.strip()):
        address = os.environ.get(ADDRESS_ENV, "")
    return {"executor": name, "ray_address": check_address(address)}


def check_address(address: Any) -> str:
    """A Ray head address, stripped: 'auto', 'HOST:PORT' or 'ray://HOST:PORT'; ExecutorError otherwise."""
    if not isinstance(address, str) or not address.strip():
        raise ExecutorError("the ray executor needs the cluster's address: give a Ray address (HOST:PORT, as "
                            f"'ray start --head' prints it) or set ${ADDRESS_ENV}")
    address = address.strip()
    if address == "auto":
        return address
    match = _HOST_PORT.match(address)
    if not match or not 1 <= int(match["port"]) <= 65535:
        raise ExecutorError(f"{address!r} is not a Ray address: use HOST:PORT (e.g. 10.0.0.5:6379), "
                            "ray://HOST:PORT or auto")
    return address


def host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of a checked address; None for 'auto'."""
    match = _HOST_PORT.match(address)
    if not match:
        return None
    return match["host"].strip("[]"), int(match["port"])

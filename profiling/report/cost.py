"""Translate measured throughput and peak RAM into replicas, machines and cost per million predictions."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

ASSUMPTIONS = (
    "One replica is one process running the variant with the measured thread count, so it reserves that many "
    "cores; it serves the measured throughput (batch N, median latency) times the target utilisation. Its RAM is "
    "the measured peak RSS plus the headroom. Replicas = ceil(load / per-replica capacity). A machine fits as many "
    "replicas as both its cores and its RAM allow. Cost counts the cores and RAM the replicas reserve (per core-hour "
    "and per GiB-hour prices, as cloud vCPU/RAM pricing does); the whole-machine cost also pays for what the "
    "replicas leave idle. Measured on this machine: other CPUs, batch sizes, request mixes and load spikes differ."
)


@dataclass(frozen=True)
class CostInputs:
    """The measured figures of one variant and the user's load, prices and planning margins."""

    throughput_per_s: float = field(metadata={"help": "Measured predictions per second of one replica", "min": 0})
    peak_ram_mib: float = field(metadata={"help": "Measured peak RSS of one replica (MiB)", "min": 0})
    threads: int = field(metadata={"help": "Threads (cores) one replica uses, as measured", "min": 1})
    load_per_s: float = field(metadata={"help": "Predictions per second to serve", "min": 0})
    price_core_hour: float = field(metadata={"help": "Price of one core for one hour", "min": 0})
    price_gib_hour: float = field(metadata={"help": "Price of one GiB of RAM for one hour (RAM tier)", "min": 0})
    utilisation: float = field(default=0.7, metadata={"help": "Fraction of the measured throughput to plan for",
                                                       "min": 0.05, "max": 1.0})
    ram_headroom: float = field(default=0.25, metadata={"help": "Extra RAM per replica over the peak (fraction)",
                                                         "min": 0.0, "max": 5.0})
    machine_cores: int = field(default=8, metadata={"help": "Cores of one machine", "min": 1})
    machine_ram_gib: float = field(default=32.0, metadata={"help": "RAM of one machine (GiB)", "min": 0})

    def __post_init__(self) -> None:
        for name in ("throughput_per_s", "peak_ram_mib", "load_per_s", "machine_ram_gib"):
            _positive(name, getattr(self, name))
        for name in ("price_core_hour", "price_gib_hour"):
            value = getattr(self, name)
            _finite(name, value)
            if value < 0:
                raise ValueError(f"{name} must not be negative, got {value!r}")
        for name in ("threads", "machine_cores"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
        _finite("utilisation", self.utilisation)
        if not 0.05 <= self.utilisation <= 1.0:
            raise ValueError(f"utilisation must be between 0.05 and 1, got {self.utilisation!r}")
        _finite("ram_headroom", self.ram_headroom)
        if not 0.0 <= self.ram_headroom <= 5.0:
            raise ValueError(f"ram_headroom must be between 0 and 5, got {self.ram_headroom!r}")


def _finite(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


def _positive(name: str, value: object) -> None:
    _finite(name, value)
    if value <= 0:  # type: ignore[operator]
        raise ValueError(f"{name} must be positive, got {value!r}")


@dataclass(frozen=True)
class CostEstimate:
    capacity_per_replica: float  # predictions/s one replica is planned to serve
    replicas: int
    cores: int
    ram_gib_per_replica: float
    ram_gib: float
    replicas_per_machine: int
    machines: int | None  # None: one replica does not fit on the machine
    cost_per_hour: float  # reserved cores and RAM
    cost_per_million: float
    machine_cost_per_hour: float | None
    machine_cost_per_million: float | None
    limited_by: str  # what caps replicas per machine: "cores", "RAM" or "does not fit"


def estimate(x: CostInputs) -> CostEstimate:
    """Replicas, machines and cost for ``x`` (see ASSUMPTIONS)."""
    capacity = x.throughput_per_s * x.utilisation
    replicas = max(1, math.ceil(x.load_per_s / capacity - 1e-12))
    cores = replicas * x.threads
    ram_replica = x.peak_ram_mib * (1.0 + x.ram_headroom) / 1024.0
    ram = replicas * ram_replica
    per_hour = cores * x.price_core_hour + ram * x.price_gib_hour
    per_million = per_hour / (x.load_per_s * 3600.0) * 1e6
    by_cores = x.machine_cores // x.threads
    by_ram = math.floor(x.machine_ram_gib / ram_replica + 1e-12)
    per_machine = min(by_cores, by_ram)
    if per_machine < 1:
        machines, m_hour, m_million, limited = None, None, None, "does not fit"
    else:
        machines = math.ceil(replicas / per_machine)
        m_hour = machines * (x.machine_cores * x.price_core_hour + x.machine_ram_gib * x.price_gib_hour)
        m_million = m_hour / (x.load_per_s * 3600.0) * 1e6
        limited = "cores" if by_cores <= by_ram else "RAM"
    return CostEstimate(
        capacity_per_replica=capacity,
        replicas=replicas,
        cores=cores,
        ram_gib_per_replica=ram_replica,
        ram_gib=ram,
        replicas_per_machine=max(per_machine, 0),
        machines=machines,
        cost_per_hour=per_hour,
        cost_per_million=per_million,
        machine_cost_per_hour=m_hour,
        machine_cost_per_million=m_million,
        limited_by=limited,
    )

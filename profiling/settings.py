"""The measurement settings of a run, described once: defaults, limits, labels and help text per field.

The runner validates requests with it, the CLI builds its ``--options`` from it and the Run page its number inputs,
so a limit or a help text changed here changes everywhere. Standard library and ``compression`` only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from compression.errors import UserError


class SettingsError(UserError):
    """Settings that cannot work (unknown name, not a whole number, out of range); the message names the setting."""


def _setting(default: int, lo: int, hi: int, label: str, help: str) -> Any:
    # no percent signs in help texts: argparse %-formats help strings (the CLI builds --options from them)
    return field(default=default, metadata={"min": lo, "max": hi, "label": label, "help": help})


@dataclass(frozen=True)
class Settings:
    """Validated measurement settings (whole numbers within each field's ``min``..``max``).

    The field order is the order of the stored ``settings`` dict (run requests in SQLite): keep it."""

    threads: int = _setting(2, 1, 64, "Threads",
                            "CPU threads each variant may use (fixed and recorded; 2 matches this machine's cores).")
    batch_size: int = _setting(8, 1, 256, "Batch size",
                               "Batch size N for the second latency measurement, throughput and evaluation.")
    repeats: int = _setting(30, 1, 10_000, "Repeats",
                            "Minimum timed repetitions per latency figure (after warm-up); raw values are kept.")
    warmup: int = _setting(3, 0, 1_000, "Warm-up calls",
                           "Untimed calls before timing, so one-off costs do not count as steady state.")
    eval_size: int = _setting(300, 1, 100_000, "Evaluation sample",
                              "Test examples (a seeded sample of the test split) used for accuracy and changed "
                              "predictions.")
    seed: int = _setting(0, 0, 2**31 - 1, "Seed",
                         "Seed of the evaluation sample and of the techniques' random choices.")
    ci_target_pct: int = _setting(2, 0, 50, "Latency interval target (\u00b1 %)",
                                  "More repeats until the median latency's 95 percent bootstrap interval is within "
                                  "\u00b1 this many percent (0: exactly the minimum repeats).")
    latency_budget_s: int = _setting(10, 0, 3_600, "Extra-repeat budget (s)",
                                     "Time budget in seconds per variant for the extra repeats (both latency figures "
                                     "together).")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _checked(f, getattr(self, f.name)))

    @classmethod
    def defaults(cls) -> Settings:
        return cls()

    @classmethod
    def from_dict(cls, values: Any) -> Settings:
        """Settings from a request's dict (None: all defaults; missing names take their default)."""
        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise SettingsError("settings must be a dict")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = set(values) - set(names)
        if unknown:
            raise SettingsError(f"unknown setting {', '.join(sorted(unknown))}; settings: {', '.join(names)}")
        return cls(**values)

    def to_dict(self) -> dict[str, int]:
        """The plain dict stored in a run request (field order)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def with_protocol(self, name: str) -> Settings:
        """These settings with a latency protocol's values (see PROTOCOLS)."""
        return dataclasses.replace(self, **PROTOCOLS[name])

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def meta(cls, name: str) -> dict[str, Any]:
        """A field's metadata: ``min``, ``max``, ``label``, ``help``."""
        return dict(_FIELDS[name].metadata)

    @classmethod
    def limits(cls) -> dict[str, tuple[int, int]]:
        return {f.name: (f.metadata["min"], f.metadata["max"]) for f in dataclasses.fields(cls)}

    @classmethod
    def help(cls) -> dict[str, str]:
        return {f.name: f.metadata["help"] for f in dataclasses.fields(cls)}

    @classmethod
    def labels(cls) -> dict[str, str]:
        return {f.name: f.metadata["label"] for f in dataclasses.fields(cls)}


def _checked(f: dataclasses.Field, value: Any) -> int:
    """The value as an int within the field's limits, else SettingsError naming the setting."""
    name = f.name.replace("_", " ")
    lo, hi = f.metadata["min"], f.metadata["max"]
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise SettingsError(f"{name} must be a whole number, got {value!r}")
    if not lo <= value <= hi:
        raise SettingsError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
DEFAULTS = Settings.defaults()

# Latency protocols: named values of the settings that decide how long each latency figure is timed. "quick" gives
# every variant a first figure sooner (fewer minimum repeats, a looser interval target, a smaller budget);
# "thorough" is the default. Settings given explicitly win over the protocol's.
PROTOCOLS: dict[str, dict[str, int]] = {
    "quick": {"repeats": 10, "ci_target_pct": 5, "latency_budget_s": 4},
    "thorough": {k: getattr(DEFAULTS, k) for k in ("repeats", "ci_target_pct", "latency_budget_s")},
}
PROTOCOL_HELP = ("How long latency is timed: 'quick' (fewer repeats, a wider interval target, a smaller budget: first "
                 "figures sooner) or 'thorough' (the default settings); explicit --repeats, --ci-target-pct and "
                 "--latency-budget-s win over it.")
PROTOCOL_META: dict[str, Any] = {"choices": sorted(PROTOCOLS), "default": "thorough", "label": "Latency protocol",
                                 "help": PROTOCOL_HELP}

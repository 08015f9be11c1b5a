"""Fake predictors for tests/profiling/measure/test_measurement.py, loaded by profiling.measure.child through its test-only hook."""

import os
import signal
import time

import numpy as np


class FakePredictor:
    """Returns one-hot logits (label = text length mod n_labels), optionally sleeping per call."""

    def __init__(self, n_labels: int = 2, sleep_s: float = 0.0) -> None:
        self.n_labels, self.sleep_s = n_labels, sleep_s

    def predict_logits(self, texts: list[str]) -> np.ndarray:
        if self.sleep_s:
            time.sleep(self.sleep_s)
        logits = np.zeros((len(texts), self.n_labels), dtype=np.float32)
        logits[np.arange(len(texts)), [len(t) % self.n_labels for t in texts]] = 3.0
        return logits

    def close(self) -> None:
        pass


def fast(artifact, threads):
    return FakePredictor(artifact.meta.get("num_labels", 2))


def sleepy(artifact, threads):
    """Each call sleeps FAKE_SLEEP_S seconds (default 20 ms)."""
    return FakePredictor(artifact.meta.get("num_labels", 2), float(os.environ.get("FAKE_SLEEP_S", "0.02")))


def allocating(artifact, threads):
    """Idles 0.6 s (baseline), then holds 200 MiB of touched numpy memory for 1 s and frees it."""
    time.sleep(0.6)
    block = np.ones(200 * 2**20 // 8)  # float64 ones: every page written, so all of it is resident
    time.sleep(1.0)
    del block
    time.sleep(0.3)
    return FakePredictor(artifact.meta.get("num_labels", 2))


def spiking(artifact, threads):
    """Idles 0.3 s, then touches 150 MiB and frees it within a few milliseconds (a spike between RSS samples)."""
    time.sleep(0.3)
    block = np.ones(150 * 2**20 // 8)
    del block
    time.sleep(0.3)
    return FakePredictor(artifact.meta.get("num_labels", 2))


def crashing(artifact, threads):
    raise RuntimeError("boom: the fake predictor cannot load")


def hanging(artifact, threads):
    time.sleep(3600)


def self_killing(artifact, threads):
    os.kill(os.getpid(), signal.SIGKILL)

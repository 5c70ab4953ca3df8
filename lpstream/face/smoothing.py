"""One-Euro filter (Casiez, Roussel & Vogel, CHI 2012): causal, speed-adaptive smoothing.

A first-order low-pass whose cutoff rises with the signal's (smoothed) speed: strong smoothing
when still (kills jitter), little when moving (bounded lag). Only past samples are used.
"""

from __future__ import annotations

import math

import numpy as np


def _alpha(cutoff_hz: float, dt: float) -> float:
    """Exponential-smoothing weight of the new sample for a low-pass at `cutoff_hz`."""
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Element-wise One-Euro filter over a fixed-shape float vector."""

    def __init__(
        self,
        initial: np.ndarray,
        min_cutoff_hz: float = 1.0,
        beta: float = 0.0,
        derivative_cutoff_hz: float = 1.0,
    ) -> None:
        if min_cutoff_hz <= 0 or derivative_cutoff_hz <= 0 or beta < 0:
            raise ValueError("One-Euro cutoffs must be positive and beta non-negative")
        self.min_cutoff_hz = min_cutoff_hz
        self.beta = beta
        self.derivative_cutoff_hz = derivative_cutoff_hz
        self.value = np.asarray(initial, dtype=np.float64).copy()
        self.derivative = np.zeros_like(self.value)

    def step(self, sample: np.ndarray, dt: float) -> np.ndarray:
        """Filter one new sample taken `dt` seconds after the previous one."""
        if dt <= 0:
            raise ValueError(f"dt must be positive, got {dt}")
        sample = np.asarray(sample, dtype=np.float64)
        raw_derivative = (sample - self.value) / dt
        a_d = _alpha(self.derivative_cutoff_hz, dt)
        self.derivative = self.derivative + a_d * (raw_derivative - self.derivative)
        cutoff = self.min_cutoff_hz + self.beta * np.abs(self.derivative)
        tau = 1.0 / (2.0 * np.pi * cutoff)
        a = 1.0 / (1.0 + tau / dt)
        self.value = self.value + a * (sample - self.value)
        return self.value.copy()

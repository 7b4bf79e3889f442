"""One Euro filter (Casiraghi, Roussel, Vogel 2012), vectorised over arrays.

Low cutoff at rest removes jitter; the cutoff rises with speed (beta) so fast motion is not lagged.
"""

from __future__ import annotations

import math

import numpy as np


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    def __init__(
        self, min_cutoff: float | np.ndarray = 1.0, beta: float = 0.0, d_cutoff: float = 1.0, scale: float = 1.0
    ) -> None:
        """`scale` divides the speed before beta applies, so one beta fits values of any unit; `min_cutoff` may be
        an array (one rest cutoff per value, broadcast against the input)."""
        self.min_cutoff, self.beta, self.d_cutoff, self.scale = min_cutoff, beta, d_cutoff, scale
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def reset(self) -> None:
        self._x = self._dx = self._t = None

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self._x is None or self._t is None or t <= self._t:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t
            return x
        dt = t - self._t
        dx = (x - self._x) / dt
        self._dx = self._dx + _alpha(self.d_cutoff, dt) * (dx - self._dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx) / self.scale
        self._x = self._x + _alpha(cutoff, dt) * (x - self._x)
        self._t = t
        return self._x.copy()

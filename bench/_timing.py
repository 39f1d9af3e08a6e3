"""Timing helper shared by the bench scripts."""

from __future__ import annotations

import statistics
import time


def median_us(fn, repeat: int, inner: int = 20) -> float:
    """Median over ``repeat`` samples of the mean time of ``inner`` calls of ``fn``, in microseconds."""
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner)
    return statistics.median(samples) * 1e6

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


def fastest_us(fn, repeat: int, inner: int = 20) -> tuple[float, float]:
    """(wall µs, CPU µs) per call of ``fn``: the fastest of ``repeat`` samples of ``inner`` calls each.

    On a shared machine the fastest sample is the least disturbed one; CPU time (process time) leaves
    out waits (an fsync, another process holding the core)."""
    wall, cpu = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(inner):
            fn()
        cpu.append((time.process_time() - c0) / inner)
        wall.append((time.perf_counter() - w0) / inner)
    return min(wall) * 1e6, min(cpu) * 1e6

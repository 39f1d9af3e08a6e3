"""Codec cost per message: encode and decode time (µs, median over repeats) for the shipped examples.

    python bench/bench_codec.py [--repeat N]

Prints a Markdown table (the one in the README) and the start-up cost of the codec
(first compile vs cached load, each in a fresh process). One core, one process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _timing import median_us  # noqa: E402

from rsu import catalog  # noqa: E402
from rsu.codec.facilities import get_codec  # noqa: E402


def startup_ms(cache_dir: str) -> float:
    code = ("import time; t=time.perf_counter(); from rsu.codec.facilities import get_codec; get_codec(); "
            "print((time.perf_counter()-t)*1000)")
    env = {**os.environ, "RSU_CACHE_DIR": cache_dir, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return float(out.stdout.strip())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    codec = get_codec()
    rows = []
    for path in sorted((REPO / "config" / "examples").glob("*.json")):
        kind = catalog.by_name(path.name.split("-")[0])
        _, value = codec.from_jer(json.loads(path.read_text()), kind)
        data = codec.encode(value, kind)
        rows.append((
            path.name, len(data),
            median_us(lambda: codec.encode(value, kind, validate=False), args.repeat),
            median_us(lambda: codec.encode(value, kind), args.repeat),
            median_us(lambda: codec.decode(data), args.repeat),
            median_us(lambda: codec.to_jer(kind, value), args.repeat),
        ))
    print("| example | UPER bytes | encode µs | encode + validate µs | decode µs | to JER µs |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, size, enc, encv, dec, jer in rows:
        print(f"| {name} | {size} | {enc:.0f} | {encv:.0f} | {dec:.0f} | {jer:.0f} |")
    with tempfile.TemporaryDirectory() as cache:
        cold = startup_ms(cache)
        warm = statistics.median(startup_ms(cache) for _ in range(5))
    print()
    print(f"codec start-up: first run (compile + write cache) {cold:.0f} ms, later runs (cached) {warm:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

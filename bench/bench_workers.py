"""Workers bench: SPATEM delivered per second at saturation with 1 and 2 worker processes (``workers:``).

    python bench/bench_workers.py [--workers 1,2] [--n 300] [--seconds 8] [--warmup 3] [--repeat 2]

For each worker count a fresh ``rsu run`` is started (security on, its local test PKI; ``workers: 1``
is the plain daemon, ``workers: 2`` the supervisor and two workers) with N intersections in its
controller feed (JSON). A feeder process sends every intersection's state at 10 Hz (N x 10
datagrams/s, spread evenly), far beyond what one core can sign, so the daemon runs saturated.
Over the window after the warm-up it reports: SPATEM handed to the transport per second
(``rsu_messages_sent_total{message="SPATEM"}``, summed over the workers, from the one /metrics
endpoint), the CPU seconds all the daemon's processes used (utime + stime from /proc, supervisor
included) and the CPU per SPATEM. Scaling factor = delivered/s with 2 workers / (2 x delivered/s
with 1). The machine's other load is printed with the figures: on a shared machine it is the noise.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

FIRST_ID = 2000
PERIOD = 0.1  # 10 Hz per intersection


def feeder(port: int, n: int, seconds: float) -> None:
    """N intersections' states at 10 Hz each to 127.0.0.1:port for ``seconds``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    groups = ", ".join(f'{{"signal_group": {g}, "state": "stop-And-Remain", "min_end_time": %(end).3f}}'
                       for g in range(1, 13))
    template = '{"intersection": %(ix)d, "timestamp": %(ts).6f, "revision": 3, "signal_groups": [' + groups + ']}'
    start = time.monotonic()
    k = 0
    while True:
        due = start + k * PERIOD / n
        now = time.monotonic()
        if now - start > seconds:
            return
        if due > now:
            time.sleep(due - now)
        wall = time.time()
        sock.sendto((template % {"ix": FIRST_ID + k % n, "ts": wall, "end": wall + 5}).encode(), ("127.0.0.1", port))
        k += 1


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_cpu(pid: int) -> float:
    """utime + stime (s) of ``pid`` and its children (the workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    total = 0.0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            pass
    return total


def sent_spatem(api: int) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{api}/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "rsu_messages_sent_total" and s.labels.get("message", "").lower() == "spatem")


def run_one(workers: int, n: int, seconds: float, warmup: float) -> dict:
    import yaml

    work = Path(tempfile.mkdtemp(prefix="rsu-bench-workers-"))
    api, feed = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_DGRAM)
    group = f"239.{os.getpid() % 200 + 20}.{workers}.{n % 250}"
    config = {"workers": workers, "state_dir": str(work / "state"), "api": {"port": api},
              "logging": {"level": "WARNING"},
              "transports": [{"type": "gn-udp", "name": "gn", "group": group, "port": free_port(socket.SOCK_DGRAM),
                              "interface": "lo"}],
              "integrations": {"controller": {"format": "json", "host": "127.0.0.1", "port": feed,
                                              "watchdog_timeout_s": 5.0,
                                              "intersections": [{"id": FIRST_ID + i} for i in range(n)]}}}
    (work / "rsu.yaml").write_text(yaml.safe_dump(config))
    log = open(work / "rsu.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "rsu", "run", "--config", str(work / "rsu.yaml")],
                            stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{api}/v1/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daemon did not start:\n{(work / 'rsu.log').read_text()[-3000:]}")
            time.sleep(0.2)
        fp = subprocess.Popen([sys.executable, __file__, "--feed", f"{feed},{n},{warmup + seconds + 1}"])
        time.sleep(warmup)
        load0 = os.getloadavg()[0]
        s0, c0, t0 = sent_spatem(api), tree_cpu(proc.pid), time.monotonic()
        time.sleep(seconds)
        s1, c1, t1 = sent_spatem(api), tree_cpu(proc.pid), time.monotonic()
        fp.wait()
        elapsed = t1 - t0
        rate = (s1 - s0) / elapsed
        return {"workers": workers, "n": n, "offered_per_s": n / PERIOD, "delivered_per_s": rate,
                "cpu_cores": (c1 - c0) / elapsed, "cpu_ms_per_spatem": 1000 * (c1 - c0) / max(1.0, s1 - s0),
                "load_before": load0}
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--n", type=int, default=300, help="intersections (offered: 10 x N SPATEM/s)")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=2, help="runs per worker count, alternating")
    ap.add_argument("--json", help="write every row to this file")
    ap.add_argument("--feed", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.feed:
        port, n, seconds = args.feed.split(",")
        feeder(int(port), int(n), float(seconds))
        return 0
    counts = [int(w) for w in args.workers.split(",")]
    rows = []
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f} at start; N={args.n} "
          f"(offered {args.n / PERIOD:.0f} SPATEM/s)")
    print(f"{'workers':>7} {'delivered/s':>11} {'CPU cores':>9} {'CPU ms/SPATEM':>13} {'load':>5}")
    for _ in range(args.repeat):
        for w in counts:
            r = run_one(w, args.n, args.seconds, args.warmup)
            rows.append(r)
            print(f"{w:>7} {r['delivered_per_s']:>11.0f} {r['cpu_cores']:>9.2f} {r['cpu_ms_per_spatem']:>13.2f} "
                  f"{r['load_before']:>5.2f}", flush=True)
    med = {w: statistics.median(r["delivered_per_s"] for r in rows if r["workers"] == w) for w in counts}
    for w in counts[1:]:
        print(f"scaling {w} workers: {med[w]:.0f}/s vs {w} x {med[counts[0]]:.0f}/s = "
              f"{med[w] / (w / counts[0] * med[counts[0]]):.2f} of linear (medians)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

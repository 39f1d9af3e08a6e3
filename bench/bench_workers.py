"""Workers bench: SPATEM delivered per second at saturation with 1 and 2 worker processes (``workers:``).

    python bench/bench_workers.py [--workers 1,2] [--per-worker 40,70,100] [--seconds 8] [--warmup 3] [--repeat 2]

For each worker count a fresh ``rsu run`` is started (security on, its local test PKI; ``workers: 1``
is the plain daemon, ``workers: 2`` the supervisor and two workers) with N intersections in its
controller feed (JSON), N = workers x each value of ``--per-worker``. A feeder process sends every
intersection's state at 10 Hz (N x 10 datagrams/s, spread evenly). The capacity of a worker count is
the most SPATEM/s delivered over the N tried (a saturated daemon without load shedding delivers
*less* when offered much more, so one N far beyond capacity would understate it).
Over the window after the warm-up it reports: SPATEM handed to the transport per second
(``rsu_messages_sent_total{message="SPATEM"}``, summed over the workers, from the one /metrics
endpoint), the CPU seconds all the daemon's processes used (utime + stime from /proc, supervisor
included), the CPU per SPATEM and the RSS of every process. Scaling factor = capacity with 2 workers
/ (2 x capacity with 1). The machine's other load is printed with the figures: on a shared machine it is the noise.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
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


def tree_cpu(pid: int) -> list[float]:
    """utime + stime (s) of ``pid`` and of each of its children (the workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    try:
        pids += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    out = []
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            out.append((int(fields[11]) + int(fields[12])) / tick)
        except OSError:
            out.append(0.0)
    return out


def tree_rss_mb(pid: int) -> list[float]:
    """RSS (MB) of ``pid`` and of each of its children."""
    pids = [pid]
    try:
        pids += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    out = []
    for p in pids:
        try:
            rss = int(Path(f"/proc/{p}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            out.append(rss / 1e6)
        except OSError:
            pass
    return out


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
        rss = tree_rss_mb(proc.pid)
        fp.wait()
        elapsed = t1 - t0
        rate = (s1 - s0) / elapsed
        per_process = [(b - a) / elapsed for a, b in zip(c0, c1)]  # supervisor (or the daemon), then workers
        return {"workers": workers, "n": n, "offered_per_s": n / PERIOD, "delivered_per_s": rate,
                "cpu_cores": sum(per_process), "cpu_cores_per_process": per_process,
                "cpu_ms_per_spatem": 1000 * (sum(c1) - sum(c0)) / max(1.0, s1 - s0),
                "load_before": load0, "rss_mb": rss}
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
    ap.add_argument("--per-worker", default="40,70,100", help="intersections per worker to try (offered: 10 x N "
                    "SPATEM/s)")
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
    per = [int(n) for n in args.per_worker.split(",")]
    rows = []
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f} at start")
    print(f"{'workers':>7} {'N':>5} {'offered/s':>9} {'delivered/s':>11} {'CPU cores':>9} {'CPU ms/SPATEM':>13} "
          f"{'load':>5}  CPU cores and RSS MB per process (supervisor or daemon, then workers)")
    for _ in range(args.repeat):
        for w in counts:
            for n in per:
                r = run_one(w, n * w, args.seconds, args.warmup)
                rows.append(r)
                print(f"{w:>7} {n * w:>5} {r['offered_per_s']:>9.0f} {r['delivered_per_s']:>11.0f} {r['cpu_cores']:>9.2f} "
                      f"{r['cpu_ms_per_spatem']:>13.2f} {r['load_before']:>5.2f}  "
                      f"{' '.join(f'{c:.2f}/{m:.0f}' for c, m in zip(r['cpu_cores_per_process'], r['rss_mb']))}",
                      flush=True)
    cap = {w: max(r["delivered_per_s"] for r in rows if r["workers"] == w) for w in counts}
    best = {w: min(r["cpu_ms_per_spatem"] for r in rows if r["workers"] == w) for w in counts}
    for w in counts:
        print(f"capacity with {w} worker(s): {cap[w]:.0f} SPATEM/s (best of {args.repeat} x {len(per)} runs); "
              f"lowest CPU per SPATEM {best[w]:.2f} ms")
    for w in counts[1:]:
        print(f"scaling {w} workers: {cap[w]:.0f}/s vs {w} x {cap[counts[0]]:.0f}/s = "
              f"{cap[w] / (w / counts[0] * cap[counts[0]]):.2f} of linear; CPU per SPATEM "
              f"{best[w] / best[counts[0]]:.2f} x that of {counts[0]}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

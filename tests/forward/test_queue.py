"""The sinks' disk queue: order, ids that never go back, size and age bounds with a manual clock, and
what a kill -9 leaves (a real process killed with SIGKILL in the middle of its pushes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from rsu.clock import ManualClock
from rsu.forward.queue import DiskQueue

START = 1_780_000_000.0


def test_items_come_back_oldest_first_and_ack_removes_up_to_an_id(tmp_path):
    q = DiskQueue(tmp_path / "q.sqlite", ManualClock(START), max_items=100, max_age_s=60)
    ids = [q.push(f"m{i}".encode())[0] for i in range(5)]
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert [i.body for i in q.peek(3)] == [b"m0", b"m1", b"m2"]
    q.ack(ids[1])
    assert [i.body for i in q.peek(10)] == [b"m2", b"m3", b"m4"] and len(q) == 3


def test_a_full_queue_drops_its_oldest_and_says_how_many(tmp_path):
    q = DiskQueue(tmp_path / "q.sqlite", ManualClock(START), max_items=3, max_age_s=60)
    drops = [q.push(f"m{i}".encode())[1] for i in range(5)]
    assert drops == [0, 0, 0, 1, 1]
    assert [i.body for i in q.peek(10)] == [b"m2", b"m3", b"m4"]
    assert q.resize(1, 60) == 2 and [i.body for i in q.peek(10)] == [b"m4"]


def test_age_limit_and_oldest_age_follow_the_manual_clock(tmp_path):
    clock = ManualClock(START)
    q = DiskQueue(tmp_path / "q.sqlite", clock, max_items=100, max_age_s=60)
    q.push(b"old")
    clock.advance(30)
    q.push(b"new")
    assert q.oldest_age() == 30
    clock.advance(30)
    assert q.expire() == 0  # exactly 60 s: still within the limit
    clock.advance(0.5)
    assert q.expire() == 1 and [i.body for i in q.peek(10)] == [b"new"]
    assert q.oldest_age() == 30.5
    q.ack(q.peek()[0].seq)
    assert q.oldest_age() == 0 and len(q) == 0


def test_ids_never_go_back_after_everything_was_delivered_and_the_file_reopened(tmp_path):
    path = tmp_path / "q.sqlite"
    q = DiskQueue(path, ManualClock(START), max_items=10, max_age_s=60)
    last = max(q.push(b"x")[0] for _ in range(4))
    q.ack(last)
    q.close()
    q = DiskQueue(path, ManualClock(START), max_items=10, max_age_s=60)
    assert len(q) == 0 and q.push(b"y")[0] == last + 1


def test_what_was_pushed_survives_kill_9(tmp_path):
    path = tmp_path / "q.sqlite"
    script = textwrap.dedent(f"""
        import os, signal, sys
        from rsu.clock import ManualClock
        from rsu.forward.queue import DiskQueue
        q = DiskQueue({str(path)!r}, ManualClock({START}), max_items=1000, max_age_s=60)
        for i in range(200):
            q.push(b"m%d" % i)
        q.ack(q.peek(50)[-1].seq)
        print("pushed", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, env=dict(os.environ), timeout=120)
    assert r.returncode == -signal.SIGKILL and b"pushed" in r.stdout
    q = DiskQueue(path, ManualClock(START), max_items=1000, max_age_s=60)
    items = q.peek(1000)
    assert [i.body for i in items] == [b"m%d" % i for i in range(50, 200)]
    assert [i.seq for i in items] == list(range(51, 201))


def test_every_forward_drop_reason_is_documented():
    """docs/metrics.md's "Forward drop reasons" table lists exactly the reasons the runtime counts."""
    import re

    from rsu.forward.runtime import DROP_REASONS
    from tests.conftest import REPO

    doc = (REPO / "docs" / "metrics.md").read_text()
    section = doc.split("\n## Forward drop reasons\n", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"^\| `([^`]+)` \|", section, re.M)) == set(DROP_REASONS)

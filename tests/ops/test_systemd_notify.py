"""sd_notify messages and watchdog keepalives, checked on a real unix datagram socket."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from rsu.ops.systemd import Notifier


@pytest.fixture
def notify_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    yield path, sock
    sock.close()


def test_ready_status_stopping(notify_socket):
    path, sock = notify_socket
    n = Notifier({"NOTIFY_SOCKET": path})
    assert n.enabled
    assert n.ready("serving 5 services")
    assert sock.recv(4096) == b"READY=1\nSTATUS=serving 5 services"
    assert n.reloading()
    msg = sock.recv(4096).decode()
    assert msg.startswith("RELOADING=1\nMONOTONIC_USEC=") and int(msg.split("=")[-1]) > 0
    assert n.stopping()
    assert sock.recv(4096) == b"STOPPING=1"
    n.close()


def test_outside_systemd_everything_is_a_no_op():
    n = Notifier({})
    assert not n.enabled
    assert n.ready() is False and n.stopping() is False
    assert n.watchdog_interval is None


def test_watchdog_only_for_our_pid():
    assert Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}).watchdog_interval is None
    n = Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())})
    assert n.watchdog_interval == 1.0


async def test_watchdog_keepalives_come_from_the_event_loop(notify_socket):
    path, sock = notify_socket
    sock.setblocking(False)
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})  # 0.2 s -> keepalive every 0.1 s
    task = asyncio.create_task(n.watchdog_loop())
    loop = asyncio.get_running_loop()
    got = [await asyncio.wait_for(loop.sock_recv(sock, 100), 2) for _ in range(3)]
    assert got == [b"WATCHDOG=1"] * 3
    # a blocked loop sends nothing: keepalives are not sent from another thread
    import time

    time.sleep(0.35)
    task.cancel()
    pending = []
    while True:
        try:
            pending.append(sock.recv(100))
        except BlockingIOError:
            break
    assert len(pending) <= 1  # at most the one that was due just before the block
    n.close()

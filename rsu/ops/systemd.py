"""systemd integration without a dependency: sd_notify over $NOTIFY_SOCKET and watchdog keepalives.

With ``Type=notify`` the daemon says ``READY=1`` once it is serving, ``RELOADING=1`` / ``READY=1``
around a SIGHUP reload, ``STOPPING=1`` on shutdown and ``STATUS=...`` lines for ``systemctl status``.
With ``WatchdogSec=`` systemd sets ``$WATCHDOG_USEC``; the keepalive (``WATCHDOG=1``) is sent *from the
event loop* at half that period, so a hung loop stops the keepalives and systemd restarts the daemon.
Outside systemd (no ``$NOTIFY_SOCKET``) every call is a no-op.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None):
        env = os.environ if environ is None else environ
        self.address = env.get("NOTIFY_SOCKET") or None
        if self.address and self.address.startswith("@"):
            self.address = "\0" + self.address[1:]  # abstract namespace socket
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        self.watchdog_interval: float | None = None
        if usec is not None and (pid is None or pid == str(os.getpid())):  # the watchdog is for us
            try:
                self.watchdog_interval = max(int(usec) / 1e6 / 2, 0.05)
            except ValueError:
                self.watchdog_interval = None
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *fields: str) -> bool:
        """Send ``KEY=VALUE`` lines in one datagram; False when not under systemd or on error."""
        if not self.address:
            return False
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            self._sock.sendto("\n".join(fields).encode(), self.address)
            return True
        except OSError:
            return False

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def reloading(self) -> bool:
        # systemd >= 253 wants MONOTONIC_USEC with RELOADING=1 (Type=notify-reload); harmless before.
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    async def watchdog_loop(self) -> None:
        """Send WATCHDOG=1 every half period for as long as the event loop runs it."""
        if not self.address or not self.watchdog_interval:
            return
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_interval)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

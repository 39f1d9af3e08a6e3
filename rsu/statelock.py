"""One advisory lock per piece of state shared between the daemon and the commands that change it.

The daemon holds a *shared* lock for as long as it uses the state (a reload opening the state
again in the same process, or several daemons reading one store in tests, do not conflict); a
command that changes the state takes it *exclusive* and is refused while a daemon runs, and a
daemon does not start while such a command works. ``flock`` locks go with the process: kill -9
releases them, nothing stale is left to clean up.

Used by the services store (``rsu store recover/import``) and the PKI client state
(``rsu pki enrol/authorize/trust update``).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class StateBusy(Exception):
    """The other side (daemon or command) holds the lock; the message says who and what to do."""


def acquire(path: Path, exclusive: bool, *, held_by_daemon: str, held_by_command: str) -> int:
    """Lock ``path`` (created, mode 0600) without waiting; the file descriptor to release with
    :func:`release`. Raises :class:`StateBusy` with ``held_by_daemon`` (an exclusive request refused)
    or ``held_by_command`` (a shared one refused), and OSError when the file cannot be opened."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise StateBusy(held_by_daemon if exclusive else held_by_command) from None
    return fd


def release(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)

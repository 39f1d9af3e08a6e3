"""Logging: one line per event, journald-friendly, nothing secret.

* Under systemd (``$JOURNAL_STREAM`` set) each line starts with the syslog priority ``<N>`` that
  journald turns into the entry's level, and carries no timestamp (journald adds its own).
* Elsewhere: ``2026-11-21T19:30:00.123Z LEVEL logger: message``.
* A filter on the handler redacts what must never reach a log: values after ``password``/
  ``token``/``secret``/``key`` words, PEM blocks, and long runs of hex (private keys, payload dumps).
  It is a safety net; the code does not log such values in the first place.
* A worker process (``workers: N``) tags its logger names: ``rsu.daemon[w1]: ...``.
* Messages are folded to one line (newlines become ``\\n``), so one event is one journal entry.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time

_SYSLOG = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}
_SECRET_WORD = re.compile(r"(?i)\b(password|passwd|token|secret|private[_ ]?key|api[_-]?key)(\s*[=:]\s*)(\S+)")
_PEM = re.compile(r"-----BEGIN [A-Z ]+-----.*?-----END [A-Z ]+-----", re.S)
_LONG_HEX = re.compile(r"\b[0-9a-fA-F]{48,}\b")


def redact(text: str) -> str:
    text = _PEM.sub("[redacted PEM]", text)
    text = _SECRET_WORD.sub(lambda m: f"{m.group(1)}{m.group(2)}[redacted]", text)
    text = _LONG_HEX.sub(lambda m: f"[{len(m.group(0)) // 2} bytes redacted]", text)
    return text


class OneLineFormatter(logging.Formatter):
    def __init__(self, journald: bool):
        super().__init__()
        self.journald = journald
        worker = os.environ.get("RSU_WORKER")  # set by the supervisor (workers: N): "rsu.daemon[w1]: ..."
        self.tag = f"[w{worker}]" if worker else ""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            exc = record.exc_info[1]
            message = f"{message} ({type(exc).__name__}: {exc})" if exc else message
        message = redact(message).replace("\r", "").replace("\n", "\\n")
        if self.journald:
            return f"<{_SYSLOG.get(record.levelno, 6)}>{record.name}{self.tag}: {message}"
        t = time.gmtime(record.created)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(record.msecs):03d}Z"
        return f"{stamp} {record.levelname} {record.name}{self.tag}: {message}"


def setup(level: str = "INFO", stream=None, journald: bool | None = None) -> logging.Handler:
    """Install the one-line handler on the ``rsu`` logger (idempotent); returns the handler."""
    if journald is None:
        journald = bool(os.environ.get("JOURNAL_STREAM"))
    logger = logging.getLogger("rsu")
    for h in list(logger.handlers):
        if getattr(h, "_rsu", False):
            logger.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(OneLineFormatter(journald))
    handler._rsu = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    return handler

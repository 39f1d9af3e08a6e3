"""Log lines: one per event, journald priorities, secrets redacted."""

from __future__ import annotations

import io
import logging

from rsu.ops import logging as rlog


def capture(journald: bool, level="DEBUG"):
    buf = io.StringIO()
    rlog.setup(level, stream=buf, journald=journald)
    return buf, logging.getLogger("rsu.test")


def test_journald_lines_carry_priority_and_one_line():
    buf, log = capture(journald=True)
    log.warning("AT %s expires in %d h\nsecond line", "ab12", 5)
    log.debug("tick")
    lines = buf.getvalue().splitlines()
    assert lines == ["<4>rsu.test: AT ab12 expires in 5 h\\nsecond line", "<7>rsu.test: tick"]


def test_plain_lines_have_utc_timestamp_and_level():
    buf, log = capture(journald=False)
    log.info("started")
    (line,) = buf.getvalue().splitlines()
    stamp, level, rest = line.split(" ", 2)
    assert stamp.endswith("Z") and "T" in stamp and level == "INFO" and rest == "rsu.test: started"


def test_secrets_and_long_hex_are_redacted():
    buf, log = capture(journald=False)
    key = "3f" * 32
    log.error("mqtt password=hunter2 token: abc key %s", key)
    log.error("pem -----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY----- end")
    out = buf.getvalue()
    assert "hunter2" not in out and "abc" not in out and key not in out and "MHcCAQEE" not in out
    assert "password=[redacted]" in out and "[32 bytes redacted]" in out and "[redacted PEM]" in out


def test_level_filter():
    buf, log = capture(journald=False, level="WARNING")
    log.info("hidden")
    log.warning("shown")
    assert "hidden" not in buf.getvalue() and "shown" in buf.getvalue()


def test_exceptions_stay_on_one_line():
    buf, log = capture(journald=False)
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        log.exception("failed")
    (line,) = buf.getvalue().splitlines()
    assert line.endswith("failed (ValueError: bad\\nthing)")

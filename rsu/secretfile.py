"""Reading secrets (MQTT and NTRIP passwords) from files: the configuration names the file, never the secret."""

from __future__ import annotations

from pathlib import Path


def read_secret_file(path: str | Path, field: str = "password_file", error: type[Exception] = ValueError) -> str:
    """The first line of ``path`` (empty string for an empty file).

    Raises ``error`` naming ``field`` and the file, never its content.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
        raise error(f"{field}: cannot read {path}: {reason}") from None
    return text.splitlines()[0] if text else ""

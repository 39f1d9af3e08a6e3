"""Helpers shared by the CLI commands: reading inputs, printing JSON, the one CLI error type."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any


class CliError(Exception):
    """A user-facing error: printed as one line on stderr, exit code 2."""


def add_api_option(p) -> None:
    """``--api URL`` on a command; it may also come before the command (``rsu --api URL status``)."""
    import argparse

    p.add_argument(
        "--api",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="API base URL (default: $RSU_API_URL or http://127.0.0.1:8301)",
    )


_HEXCHARS = re.compile(rb"^[0-9a-fA-F\s:]*$")


def read_source(source: str, *, binary: bool) -> bytes | str:
    """Read ``-`` (stdin) or a file path. ``binary`` selects bytes or UTF-8 text."""
    try:
        if source == "-":
            data = sys.stdin.buffer.read()
        else:
            data = Path(source).read_bytes()
    except FileNotFoundError:
        raise CliError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise CliError(f"{source}: is a directory") from None
    except PermissionError:
        raise CliError(f"{source}: permission denied") from None
    except OSError as e:
        raise CliError(f"{source}: {e.strerror or e}") from None
    if binary:
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CliError(f"{source}: not UTF-8 text") from None


def hex_or_bytes(data: bytes) -> bytes:
    """Raw bytes as given, or the bytes spelled by hex text (whitespace and colons allowed)."""
    if data and _HEXCHARS.match(data.strip() or b"x"):
        text = re.sub(rb"[\s:]", b"", data)
        if text and len(text) % 2 == 0:
            return bytes.fromhex(text.decode())
    return data


def read_input_bytes(source: str) -> bytes:
    """INPUT for decode-like commands: a hex string, ``-`` for stdin, or a file (binary or hex)."""
    if not source.strip():
        raise CliError("empty INPUT: give a hex string, a file, or - to read stdin")
    if source != "-" and not _is_file(source):
        text = re.sub(r"[\s:]", "", source)
        if re.fullmatch(r"(?:[0-9a-fA-F]{2})+", text):
            return bytes.fromhex(text)
        raise CliError(f"{source}: neither a file nor a hex string")
    data = read_source(source, binary=True)
    assert isinstance(data, bytes)
    if not data.strip():
        raise CliError(f"{'stdin' if source == '-' else source}: empty input")
    return hex_or_bytes(data)


def _is_file(source: str) -> bool:
    try:
        return Path(source).exists()
    except (OSError, ValueError):  # e.g. a long hex string: "File name too long"
        return False


def load_json(source: str) -> Any:
    text = read_source(source, binary=False)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise CliError(f"{source}: invalid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")

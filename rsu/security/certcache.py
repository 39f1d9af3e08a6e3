"""Decoded certificate files, cached on disk by the SHA-256 of their bytes.

Layer: what :meth:`rsu.security.certs.Certificate.load` reads from a file. Decoding an
EtsiTs103097Certificate needs the asn1tools OER specification, and importing asn1tools and
loading that specification costs about a tenth of a second at every start, for the same few
files (the trust anchors and the authorization tickets). So the result of the decode (the COER
value and the byte span of toBeSigned) is kept in the cache directory of the compiled ASN.1
modules (:func:`rsu.codec.asn1files.cache_dir`), keyed by the SHA-256 of the file's bytes, in a
file named after the security modules' digest (an edited module or another asn1tools version
starts a new file). Only successful decodes are kept; every check on the value
(:meth:`Certificate._check_profile`, validity, the chain) runs on each load as before.

Only files are cached: certificates received over the air are decoded as they come (an attacker
must not be able to fill the disk). The file holds plain data only (dicts, lists, tuples, bytes,
strings, numbers): it is read back with an unpickler that refuses every class, so a foreign file
cannot run code; an unreadable or foreign file is a miss, rewritten at the next decode.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rsu.codec.asn1files import cache_dir, compile_set, write_cache

MAX_ENTRIES = 256  # the oldest entries go first (a test PKI renews its ATs every week)
_FORMAT = 1  # bump when the entries change shape

Decoded = tuple[Any, int, int]  # (COER value, start and end of toBeSigned in the bytes)

_lock = threading.Lock()
_entries: dict[bytes, bytes] | None = None  # sha256 -> pickled Decoded; None: not read yet
_path: Path | None = None


class _PlainUnpickler(pickle.Unpickler):
    """Builtin data only: a cache file that names any class (a foreign or crafted file) is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"{module}.{name} is not plain data")


def _plain_loads(data: bytes) -> Any:
    return _PlainUnpickler(io.BytesIO(data)).load()


def cache_file() -> Path | None:
    """Where the decoded certificates are kept (None: no writable cache directory is configured)."""

    folder = cache_dir()
    if folder is None:
        return None
    digest = hashlib.sha256(f"{_FORMAT}\0{compile_set('security', 'oer').digest}".encode()).hexdigest()
    return folder / f"certificates-{digest[:32]}.pickle"


def _read(path: Path | None) -> dict[bytes, bytes]:
    if path is None:
        return {}
    try:
        entries = _plain_loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except Exception:  # noqa: BLE001 - a corrupt or foreign file is a miss, rewritten at the next decode
        return {}
    if not isinstance(entries, dict) or not all(
        isinstance(k, bytes) and isinstance(v, bytes) for k, v in entries.items()
    ):
        return {}
    return entries


def decoded(data: bytes, decode: Callable[[bytes], Decoded]) -> Decoded:
    """``decode(data)``, from the cache when these bytes were decoded before (a fresh copy each time:
    callers may keep or change what they get). What ``decode`` raises is raised, and nothing is kept."""
    global _entries, _path
    key = hashlib.sha256(data).digest()
    with _lock:
        if _entries is None:
            _path = cache_file()
            _entries = _read(_path)
        hit = _entries.get(key)
    if hit is not None:
        try:
            value, start, end = _plain_loads(hit)
            return value, int(start), int(end)
        except Exception:  # noqa: BLE001, S110 - an entry that does not read back is decoded again
            pass
    result = decode(data)
    entry = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        _plain_loads(entry)
    except pickle.UnpicklingError:  # not plain data (cannot be read back): not kept
        return result
    with _lock:
        entries = {**_read(_path), **_entries}  # what other processes (workers) added meanwhile
        entries.pop(key, None)
        entries[key] = entry
        while len(entries) > MAX_ENTRIES:
            del entries[next(iter(entries))]
        _entries = entries
        if _path is not None:
            write_cache(_path, entries)
    return result


def clear_memory() -> None:
    """Forget what this process read (tests: the next load reads the cache file again)."""
    global _entries, _path
    with _lock:
        _entries = None
        _path = None

"""Find our ASN.1 modules, compile them once, and cache the compiled result on disk.

A module *set* is one folder under ``asn1/`` (``is`` for the infrastructure-service
messages, ``security`` for IEEE 1609.2 / TS 103 097, ``pki`` for TS 102 941), or several
joined by ``+`` when one imports another (``security+pki``). Compiling the IS set with
asn1tools takes about a second; the compiled specification is pickled in a cache
keyed by the SHA-256 of the modules' bytes, the codec name, the asn1tools and
Python versions and this file itself, so any edit of a module (or an upgrade) recompiles by itself and
later start-ups only unpickle (a few tens of milliseconds).

The parse tree (what :class:`rsu.codec.schema.Schema` reads) and the asn1tools specification are
cached in two files and loaded apart: the specification (and asn1tools itself, about 25 MB of the
process with its codecs and pyparsing) only when something encodes or decodes with it
(:attr:`CompiledSet.spec`); the generated UPER codec serves the IS messages without it.

Where the modules are found, first match wins:

1. ``$RSU_ASN1_DIR`` (for development against another module tree);
2. ``rsu/_asn1`` inside the installed package (a wheel carries them there);
3. ``asn1/`` at the top of the source checkout (editable installs).

Where the cache lives: ``$RSU_CACHE_DIR``, else systemd's ``$CACHE_DIRECTORY``,
else ``$XDG_CACHE_HOME/rsu`` or ``~/.cache/rsu``; if none is writable the
compiled result is simply not cached.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import os
import pickle
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

_PACKAGE_DIR = Path(__file__).resolve().parent.parent  # .../rsu
_CACHE_FORMAT = 2  # bump when the pickled tuples change shape


def asn1_root() -> Path:
    """The folder that holds the module sets (see module docstring for the search order)."""
    env = os.environ.get("RSU_ASN1_DIR")
    if env:
        return Path(env)
    packaged = _PACKAGE_DIR / "_asn1"
    if packaged.is_dir():
        return packaged
    return _PACKAGE_DIR.parent / "asn1"


def module_files(set_name: str) -> list[Path]:
    """The ``.asn`` files of one module set (or of ``a+b``: both folders), in a stable order."""
    files: list[Path] = []
    for part in set_name.split("+"):
        folder = asn1_root() / part
        found = sorted(folder.glob("*.asn"))
        if not found:
            raise FileNotFoundError(f"no ASN.1 modules found in {folder}")
        files.extend(found)
    return files


def cache_dir() -> Path | None:
    for env in ("RSU_CACHE_DIR", "CACHE_DIRECTORY"):
        value = os.environ.get(env)
        if value:
            return Path(value.split(":")[0])
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / "rsu"
    home = os.environ.get("HOME")
    if home:
        return Path(home) / ".cache" / "rsu"
    return None


@dataclass(frozen=True)
class CompiledSet:
    """A compiled module set: asn1tools' parse tree and the sources, and the asn1tools specification
    (:attr:`spec`, loaded on first use)."""

    name: str
    codec: str
    parsed: dict[str, Any]  # asn1tools.parse_string() result: module -> {types, values, imports, ...}
    sources: dict[str, str]  # file name -> text (for facts the parser drops, e.g. object sets)
    digest: str
    spec_cache: Path | None = field(default=None, repr=False)  # where the compiled specification is cached

    @cached_property
    def spec(self) -> Any:
        """The asn1tools specification (asn1tools.compiler.Specification): from the cache, or compiled
        from the parse tree (and cached) the first time; asn1tools is imported then, patched."""
        with _lock:
            return _load_spec(self)


def _asn1tools_version() -> bytes:
    """asn1tools' version file (its bytes name the version) without importing asn1tools."""
    spec = importlib.util.find_spec("asn1tools")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("asn1tools is not installed")
    return (Path(spec.origin).parent / "version.py").read_bytes()


def _digest(set_name: str, codec: str, sources: dict[str, str]) -> str:
    h = hashlib.sha256(_asn1tools_version())
    for part in (str(_CACHE_FORMAT), set_name, codec, sys.version):
        h.update(part.encode() + b"\0")
    h.update(Path(__file__).read_bytes())  # a change to how we compile also invalidates the cache
    for name, text in sorted(sources.items()):
        h.update(name.encode() + b"\0" + text.encode() + b"\0")
    return h.hexdigest()


def _read_cache(path: Path) -> tuple[Any, ...] | None:
    try:
        with path.open("rb") as f:
            payload: tuple[Any, ...] = pickle.load(f)
            return payload
    except FileNotFoundError:
        return None
    except Exception:  # a corrupt or foreign cache file is simply rebuilt
        return None


def write_cache(path: Path, payload: Any) -> None:
    """Pickle ``payload`` to ``path`` atomically (also :mod:`rsu.security.certcache`); failures are ignored."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pickle")
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)  # atomic: a concurrent reader sees the old file or the new one
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:
        pass  # a read-only or full cache directory costs start-up time, nothing else


def per_effective_constraints(parsed: dict[str, Any]) -> dict[str, Any]:
    """Rewrite value-range unions (``2..4 | 6..8``) to the range that spans them (``2..8``), in place.

    X.691 encodes a constrained whole number by its *effective* constraint, the smallest
    range that contains every root value. asn1tools instead keeps only the first range of
    a union (GDD ``Code-Units (2..4|6..8)`` came out 1 bit short, and units 6..8 failed),
    while pycrate follows the standard. The exact union is still enforced by our own
    validation (``rsu.codec.values``), which reads the unmodified parse tree.
    """

    def walk(node: object) -> None:
        if isinstance(node, dict):
            ranges = node.get("restricted-to")
            if isinstance(ranges, (list, tuple)):
                root = [r for r in ranges if r is not None]
                if len(root) > 1 and all(_numeric_bound(r) for r in root):
                    lows = [r[0] if isinstance(r, (list, tuple)) else r for r in root]
                    highs = [r[1] if isinstance(r, (list, tuple)) else r for r in root]
                    merged = [(min(lows), max(highs))]
                    node["restricted-to"] = merged + ([None] if len(root) != len(ranges) else [])
            for value in node.values():
                walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)

    walk(parsed)
    return parsed


def _numeric_bound(r: object) -> bool:
    items = r if isinstance(r, (list, tuple)) else [r]
    return all(isinstance(v, int) and not isinstance(v, bool) for v in items)


_lock = threading.Lock()
_memo: dict[tuple[str, str], CompiledSet] = {}


def compile_set(set_name: str, codec: str = "uper") -> CompiledSet:
    """The parse tree of one module set (from the cache, or parsed and cached). Memoised per process;
    the specification is compiled or loaded on first use of :attr:`CompiledSet.spec`."""
    key = (set_name, codec)
    with _lock:
        if key in _memo:
            return _memo[key]
        sources = {p.name: p.read_text(encoding="utf-8") for p in module_files(set_name)}
        digest = _digest(set_name, codec, sources)
        folder = cache_dir()
        stem = f"{set_name}-{codec}-{digest[:32]}"
        path = folder / f"{stem}.pickle" if folder else None
        cached = _read_cache(path) if path else None
        if cached is not None and len(cached) == 2 and cached[0] == digest:
            parsed = cached[1]
        else:
            import asn1tools

            text = "\n".join(sources[name] for name in sorted(sources))
            parsed = asn1tools.parse_string(text)
            if path:
                write_cache(path, (digest, parsed))
        result = CompiledSet(
            set_name, codec, parsed, sources, digest, folder / f"{stem}.spec.pickle" if folder else None
        )
        _memo[key] = result
        return result


def _load_spec(compiled: CompiledSet) -> Any:
    import asn1tools

    from rsu.codec import asn1patches  # noqa: F401  (X.691 fixes to asn1tools, applied on import)

    path = compiled.spec_cache
    cached = _read_cache(path) if path else None
    if cached is not None and len(cached) == 2 and cached[0] == compiled.digest:
        return cached[1]
    spec = asn1tools.compile_dict(per_effective_constraints(copy.deepcopy(compiled.parsed)), compiled.codec)
    if path:
        write_cache(path, (compiled.digest, spec))
    return spec

"""MAPEM content from JER JSON files, one per intersection -> RLT.

:class:`MapFileLoader` (plain object, no timers): :meth:`poll` looks at each file's mtime, size
and inode and re-reads the files that changed; :meth:`reload` re-reads every file (the daemon
calls it on SIGHUP). A file whose content changed is handed to the RLT service:
``trigger`` the first time, ``update`` after that (or when the entry already exists, e.g. restored
from the store after a restart). **Revisions are the RLT service's**: it bumps an intersection's
``revision`` when, and only when, its content changes (a touched but unchanged file changes
nothing), and the TLM service then checks every SPATEM against the new revision and signal
groups.

A file that is missing, unreadable, not JSON, not a MAPEM, or of another intersection, is an
error: it is counted (``map-file-missing``, ``map-file-invalid``, ``map-file-wrong-intersection``,
``rlt-<code>``) and logged once per change, and **the MAPEM on the air stays as it was** (static
geometry is safer kept than withdrawn); the next good version replaces it.

:class:`MapFilePoller` is the asyncio loop calling :meth:`MapFileLoader.poll` every
``poll_interval_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rsu.clock import Clock, iso_utc
from rsu.integrations.config import MapFilesConfig, intersection_key
from rsu.integrations.counters import Counters
from rsu.services.errors import ServiceError
from rsu.transports.base import DropCounter

if TYPE_CHECKING:  # the port only: the controller feed is imported when it is configured
    from rsu.integrations.controller import Services

log = logging.getLogger("rsu.integrations.mapfiles")


@dataclass
class MapChange:
    """What one poll/reload did with one file."""

    intersection: str
    path: str
    action: str  # triggered | updated | unchanged | error
    revisions: dict | None = None  # intersection key -> revision now on the air
    error: str | None = None
    warnings: tuple[str, ...] = ()


@dataclass
class _File:
    key: str
    path: Path
    stat: tuple | None = None  # (mtime_ns, size, inode) last looked at
    content_hash: str | None = None  # of the JSON last handed to RLT successfully
    error: str | None = None
    loaded_at: float | None = None
    revisions: dict | None = None


class MapFileLoader:
    def __init__(
        self,
        config: MapFilesConfig,
        services: Services,
        *,
        clock: Clock,
        drops: DropCounter | None = None,
        source: str = "map-files",
    ) -> None:
        self.config = config
        self.services = services
        self.clock = clock
        self.counters = Counters(source, drops)
        self._files = {key: _File(key, Path(path).expanduser()) for key, path in config.intersections.items()}

    def poll(self) -> list[MapChange]:
        """Re-read the files whose mtime, size or inode changed since the last look."""
        out = []
        for f in self._files.values():
            st = self._stat(f)
            if st is not None and st == f.stat:
                continue
            if st is None and f.stat is None and f.error is not None:
                continue  # still missing: already reported
            f.stat = st
            out.append(self._load(f))
        return out

    def reload(self) -> list[MapChange]:
        """Re-read every file now (SIGHUP)."""
        self.counters.count("reloads")
        out = []
        for f in self._files.values():
            f.stat = self._stat(f)
            out.append(self._load(f, force_report=True))
        return out

    def status(self) -> dict:
        return {
            "poll_interval_s": self.config.poll_interval_s,
            "files": {
                k: {
                    "path": str(f.path),
                    "error": f.error,
                    "revisions": f.revisions,
                    "loaded_at": iso_utc(f.loaded_at) if f.loaded_at else None,
                }
                for k, f in self._files.items()
            },
            **self.counters.snapshot(),
        }

    # --- internals ------------------------------------------------------------------------------------
    @staticmethod
    def _stat(f: _File) -> tuple | None:
        try:
            s = os.stat(f.path)
        except OSError:
            return None
        return (s.st_mtime_ns, s.st_size, s.st_ino)

    def _fail(self, f: _File, reason: str, detail: str, force_report: bool) -> MapChange:
        message = f"{reason}: {detail}"
        if message != f.error or force_report:
            self.counters.drop(reason, detail)
            log.error("MAP file %s (intersection %s): %s; the MAPEM on the air is kept", f.path, f.key, detail)
        f.error = message
        return MapChange(f.key, str(f.path), "error", f.revisions, message)

    def _load(self, f: _File, force_report: bool = False) -> MapChange:
        obj, problem = read_map_file(f.path, f.key)
        if problem is not None:
            return self._fail(f, *problem, force_report)
        digest = hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        if digest == f.content_hash and f.error is None:
            return MapChange(f.key, str(f.path), "unchanged", f.revisions)
        request: dict = {"payload": obj}
        if self.config.dissemination is not None:
            request["dissemination"] = self.config.dissemination
        try:
            try:
                self.services.get("rlt", f.key)
                action = "updated"
                answer = self.services.update("rlt", f.key, request)
            except ServiceError as e:
                if e.code != "unknown_id":
                    raise
                action = "triggered"
                answer = self.services.trigger("rlt", request)
        except ServiceError as e:
            return self._fail(f, f"rlt-{e.code}", str(e), force_report)
        if answer.get("unchanged"):
            action = "unchanged"
        f.content_hash = digest
        f.error = None
        f.loaded_at = self.clock.now()
        ident = answer.get("identification") or {}
        f.revisions = {
            el["id"]: el["revision"] for el in ident.get("intersections", []) + ident.get("roadSegments", [])
        }
        self.counters.count(f"map-{action}")
        if action != "unchanged":
            log.info("MAP file %s: MAPEM %s %s (revisions %s)", f.path, f.key, action, f.revisions)
        return MapChange(f.key, str(f.path), action, f.revisions, None, tuple(answer.get("warnings", ())))


def read_map_file(path: Path, key: str) -> tuple[dict | None, tuple[str, str] | None]:
    """The JER JSON MAPEM of ``path`` for intersection ``key``: (object, None) or (None, (reason, detail))."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, ("map-file-missing", "file not found")
    except OSError as e:
        return None, ("map-file-missing", f"cannot read: {e}")
    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        return None, ("map-file-invalid", f"not JSON: {e}")
    if not isinstance(obj, dict) or not isinstance(obj.get("map"), dict):
        return None, ("map-file-invalid", 'not the JER JSON of a MAPEM (an object with "map")')
    keys = _element_keys(obj["map"])
    if keys != key:
        return None, ("map-file-wrong-intersection", f"describes {keys or 'nothing'!r}, configured for {key!r}")
    return obj, None


def _element_keys(m: dict) -> str | None:
    """The RLT entry id a MapData value describes ("1201", "7.1201+1202", "rs12"), None if it cannot tell."""
    keys = []
    try:
        for el in m.get("intersections") or []:
            ref = el["id"]
            keys.append(intersection_key(f"{ref['region']}.{ref['id']}" if "region" in ref else ref["id"], "id"))
        for el in m.get("roadSegments") or []:
            ref = el["id"]
            keys.append("rs" + (f"{ref['region']}.{ref['id']}" if "region" in ref else str(ref["id"])))
    except (KeyError, TypeError, ValueError):
        return None
    return "+".join(keys) or None


class MapFilePoller:
    """Calls ``loader.poll()`` every ``poll_interval_s`` (the first poll loads every file)."""

    def __init__(self, loader: MapFileLoader) -> None:
        self.loader = loader
        self._task: asyncio.Task | None = None
        self.polled = asyncio.Event()  # set after each poll (tests and start-up await it)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="map-file-poller")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                self.loader.poll()
            except Exception:
                log.exception("MAP file poll failed")
            self.polled.set()
            await asyncio.sleep(self.loader.config.poll_interval_s)

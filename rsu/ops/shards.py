"""Shards of a daemon run as worker processes (``workers: N``): who owns which intersection, and the
configuration each worker runs on. Plain functions and one small persisted table; no processes here
(:mod:`rsu.ops.workers` runs them).

Ownership rules (docs/scaling.md):

* An intersection (the key of the services, ``"1201"`` or ``"7.1201"``) belongs to exactly one worker:
  its SPATEM (TLM), its MAPEM (RLT) and its controller feed go there. The table is written to
  ``<state_dir>/workers/shards.json`` (atomically, fsync'd) *before* the first message of a new
  intersection is forwarded, so an intersection, its store entries and its message counters stay
  with their worker across restarts and kill -9: ``MsgCount``, revisions and timestamps a receiver
  compares continue from the same store and never go backwards.
* Everything that is not tied to an intersection (IVI, GPC, TLC requests and answers, the received
  message stream) belongs to worker 0, whose store allocates the identifiers those services number
  (iviIdentificationNumber ...), so they stay unique and in order. Only worker 0 receives.
* A new intersection goes to the worker owning the fewest; the configured ones are placed at start
  in configuration order, so a configured city is balanced to within one intersection per worker.
  One that an API trigger names is placed before the trigger is forwarded and forgotten again if
  the owner refuses it; the table holds at most MAX_INTERSECTIONS. The controller feed is routed
  by its configured list only (``workers > 1`` needs the list).
* Fewer workers than before is refused while a removed worker still owns intersections (their
  active messages live in that worker's store).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rsu import catalog

SHARD_FILE = "shards.json"
INTERSECTION_SERVICES = {"tlm", "rlt"}  # services whose entries are keyed by intersection
MAX_INTERSECTIONS = 65536  # the table's bound: API triggers for new intersections beyond it are refused


class ShardsFull(Exception):
    """The shard table holds MAX_INTERSECTIONS intersections: a new one cannot be placed."""


def resolve_count(value: int | str) -> int:
    """``workers:`` -> the number of worker processes (``auto``: one per CPU this process may use)."""
    if value == "auto":
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not Linux
            return max(1, os.cpu_count() or 1)
    return int(value)


def workers_dir(state_path: Path) -> Path:
    return state_path / "workers"


def table_path(state_path: Path) -> Path:
    """The shard table of a state directory; once it exists, the state runs through the supervisor
    (even with ``workers: 1``: the messages live in the workers' stores)."""
    return workers_dir(state_path) / SHARD_FILE


def ref_key(ref: Any) -> str | None:
    """An IntersectionReferenceID (JER ``{"region": 7, "id": 1201}``), a number or ``"7.1201"`` -> the
    services' key; None when it is none of these (the owner then reports the error)."""
    if isinstance(ref, dict) and isinstance(ref.get("id"), int):
        return f"{ref['region']}.{ref['id']}" if isinstance(ref.get("region"), int) else str(ref["id"])
    if isinstance(ref, int) and not isinstance(ref, bool):
        return str(ref)
    if isinstance(ref, str) and ref.strip():
        return ref.strip()
    return None


def payload_keys(service: str, body: Any) -> list[str]:
    """The intersections a trigger body names (TLM: ``payload.spat.intersections[].id``, RLT:
    ``payload.map.intersections[].id``); [] for other services or a body that does not say."""
    svc = catalog.SERVICE_ALIASES.get(service.lower())
    if svc not in INTERSECTION_SERVICES or not isinstance(body, dict):
        return []
    payload = body.get("payload")
    inner = payload.get("spat" if svc == "tlm" else "map") if isinstance(payload, dict) else None
    items = inner.get("intersections") if isinstance(inner, dict) else None
    if not isinstance(items, list):
        return []
    keys = [ref_key(i.get("id")) if isinstance(i, dict) else None for i in items]
    return [k for k in keys if k is not None]


def id_keys(service: str, entry_id: str) -> list[str]:
    """The intersections of a TLM/RLT entry id (``"1201"``, ``"7.1201+1202"``); [] for other services."""
    if catalog.SERVICE_ALIASES.get(service.lower()) not in INTERSECTION_SERVICES:
        return []
    return [k for k in entry_id.split("+") if k]


def feed_key(data: bytes) -> str | None:
    """The intersection of one JSON controller-feed datagram (its ``intersection`` member), or None."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    return ref_key(obj.get("intersection")) if isinstance(obj, dict) else None


class ShardTable:
    """Intersection key -> worker index, persisted in ``path`` (JSON), written before it is relied on."""

    def __init__(self, path: Path, count: int) -> None:
        self.path = path
        self.count = count
        self.owners: dict[str, int] = {}
        if path.exists():
            data = json.loads(path.read_text())
            self.owners = {str(k): int(v) for k, v in data.get("owners", {}).items()}

    def beyond(self) -> dict[str, int]:
        """Intersections owned by a worker that no longer exists (``workers:`` was lowered)."""
        return {k: w for k, w in self.owners.items() if w >= self.count}

    def owner(self, key: str) -> int | None:
        return self.owners.get(key)

    def loads(self) -> list[int]:
        counts = [0] * self.count
        for w in self.owners.values():
            if w < self.count:
                counts[w] += 1
        return counts

    def place(self, keys: Iterable[str]) -> int | None:
        """The worker of an entry naming ``keys``: the owner they share, else a new placement on the
        least-loaded worker (persisted before returning); None when they belong to different workers."""
        keys = list(dict.fromkeys(keys))
        owners = {self.owners[k] for k in keys if k in self.owners}
        if len(owners) > 1:
            return None
        if owners:
            worker = owners.pop()
        else:
            loads = self.loads()
            worker = loads.index(min(loads))
        new = [k for k in keys if k not in self.owners]
        if new and len(self.owners) + len(new) > MAX_INTERSECTIONS:
            raise ShardsFull(f"{len(self.owners)} intersections are placed, at most {MAX_INTERSECTIONS}")
        if new:
            for k in new:
                self.owners[k] = worker
            self.save()
        return worker

    def forget(self, keys: Iterable[str]) -> None:
        """Drop placements made for a request the owner refused (so refused requests cannot grow the table)."""
        gone = [k for k in keys if self.owners.pop(k, None) is not None]
        if gone:
            self.save()

    def owned_by(self, worker: int) -> set[str]:
        return {k for k, w in self.owners.items() if w == worker}

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump({"workers": self.count, "owners": self.owners}, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def configured_keys(config: Any) -> list[str]:
    """The intersections the configuration names (controller feed, then MAP files), in file order."""
    keys: list[str] = []
    integ = config.integrations
    if integ.controller is not None:
        keys += [ix.key for ix in integ.controller.intersections]
    if integ.map_files is not None:
        keys += list(integ.map_files.intersections)
    return list(dict.fromkeys(keys))


def worker_port(base: int, worker: int) -> int:
    """Worker ``worker``'s own port next to ``base`` (the API's, the controller feed's)."""
    return base + 1 + worker


def derived_mac(mac: str, worker: int) -> str:
    """Worker ``worker``'s GN MAC from a configured one: the last octet plus the worker index (each
    worker is its own GN address, with its own sequence numbers, so receivers' duplicate detection
    never confuses two workers)."""
    octets = [int(x, 16) for x in mac.replace("-", ":").split(":")]
    octets[-1] = (octets[-1] + worker) & 0xFF
    return ":".join(f"{o:02x}" for o in octets)


def worker_config(data: dict, config: Any, worker: int, owned: set[str]) -> dict:
    """The configuration (as written in a file) worker ``worker`` runs on: ``data`` is the operator's
    file with ``--set`` applied, ``config`` the validated :class:`rsu.ops.config.Config` of it."""
    from rsu.ops.config import _default_transports

    d = copy.deepcopy(data)
    d.pop("workers", None)
    d["state_dir"] = str(workers_dir(config.state_path) / str(worker))
    security = d.setdefault("security", {}) or {}
    d["security"] = {**security, "pki_dir": str(config.pki_path)}  # one PKI for all (worker 0 creates it)
    api = {k: v for k, v in (d.get("api") or {}).items() if k not in ("tls", "auth")}
    # loopback, plain HTTP; only the supervisor's bearer token gets in (the supervisor's guard checked the
    # client, applied its rate limit and audited the action); the worker writes its own audit lines too
    d["api"] = {
        **api,
        "host": "127.0.0.1",
        "port": worker_port(config.api.port, worker),
        "auth": {"tokens": True, "rate_limit": {"per_minute": 0}},
    }
    integ = dict(d.get("integrations") or {})
    ctl = integ.get("controller")
    if isinstance(ctl, dict):
        ctl = dict(ctl, host="127.0.0.1", port=worker_port(config.integrations.controller.port, worker))
        if ctl.get("intersections"):
            ctl["intersections"] = [
                ix
                for ix, cfg in zip(ctl["intersections"], config.integrations.controller.intersections)
                if cfg.key in owned
            ]
            # (none left: an empty list is "any intersection" for a JSON feed; the supervisor routes none here)
        integ["controller"] = ctl
    maps = integ.get("map_files")
    if isinstance(maps, dict):
        mine = {k: v for k, v in (maps.get("intersections") or {}).items() if ref_key(k) in owned}
        if mine:
            integ["map_files"] = dict(maps, intersections=mine)
        else:
            integ.pop("map_files")
    if worker > 0:
        integ.pop("ntrip", None)  # GPC (RTCMEM) is worker 0's
        d.pop("pki", None)  # the PKI client runs in worker 0; the others sign with the shared ATs
    if integ:
        d["integrations"] = integ
    entries = d.get("transports")
    if entries is None:
        entries = _default_transports()
    out = []
    for entry, cfg in zip(entries, config.transports):
        entry = dict(entry)
        if cfg.type == "gn-udp":
            if cfg.mac:
                entry["mac"] = derived_mac(cfg.mac, worker)
            if worker > 0:
                entry["accept_ports"] = []  # only worker 0 receives (SREM -> TLC, IS_DataProviding)
            elif cfg.accept_ports is None:  # not the SPATEM/MAPEM its siblings send (multicast loops them back)
                entry["accept_ports"] = sorted(
                    k.btp_port for k in catalog.MESSAGES if k not in (catalog.SPATEM, catalog.MAPEM)
                )
        else:
            entry["client_id"] = f"{cfg.client_id or cfg.source}-w{worker}"  # a broker keeps one session per id
            if worker > 0:
                entry["subscribe"] = []
        if getattr(cfg, "pcap", None):
            p = Path(cfg.pcap)
            entry["pcap"] = str(p.with_name(f"{p.stem}.w{worker}{p.suffix}"))
        out.append(entry)
    d["transports"] = out
    return d


def config_issues(config: Any, count: int) -> list[tuple[str, str]]:
    """What ``workers: N`` (N > 1) needs of the rest of the configuration: (path, reason) pairs."""
    if count <= 1:
        return []
    issues = []
    if config.api.port == 0:
        issues.append(("api.port", "must be a fixed port with workers > 1 (worker k listens on api.port + 1 + k)"))
    elif config.api.port + count > 65535:
        issues.append(("api.port", f"api.port + {count} workers exceeds 65535"))
    ctl = config.integrations.controller
    if ctl is not None:
        if ctl.format != "json":
            issues.append(
                (
                    "integrations.controller.format",
                    "workers > 1 route the JSON feed only (TSCBM names "
                    "its intersection by the sender's address, which forwarding hides); use workers: 1",
                )
            )
        if not ctl.intersections:
            issues.append(
                (
                    "integrations.controller.intersections",
                    "list the feed's intersections with workers > 1 "
                    "(the feed is routed by this list; an unlisted intersection is dropped by worker 0)",
                )
            )
        if not ctl.port:
            issues.append(
                (
                    "integrations.controller.port",
                    "must be a fixed port with workers > 1 (worker k listens on port + 1 + k)",
                )
            )
        elif ctl.port + count > 65535:
            issues.append(("integrations.controller.port", f"port + {count} workers exceeds 65535"))
    return issues

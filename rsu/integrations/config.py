"""Configuration of the field integrations: dataclasses with defaults, ``from_dict(data, prefix)`` and
``validate(prefix)`` that name the field (``integrations.controller.intersections[0].signal_groups[2].phase:
...``), in the style of :mod:`rsu.transports.config`. Unknown keys are refused by name. Nothing is
opened here except that files named by the config (password, MAP files) are checked to exist.

Sections (all optional; a missing section is a disabled integration)::

    integrations:
      controller: {...}   # ControllerFeedConfig: traffic-controller feed -> TLM (SPATEM)
      map_files:  {...}   # MapFilesConfig: MAPEM JER files -> RLT
      ntrip:      {...}   # NtripConfig: NTRIP caster -> GPC (RTCMEM)

``docs/integrations.md`` documents every option with examples.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsu.secretfile import read_secret_file

MOVEMENTS = ("protected", "permissive")
GROUP_TYPES = ("vehicle", "pedestrian", "overlap")
FORMATS = ("json", "tscbm")
STALE_BEHAVIOURS = ("stop", "unavailable")
TIME_SOURCES = ("controller", "receipt")
_KEY = re.compile(r"^(?:(\d{1,5})\.)?(\d{1,5})$")  # "1201" or "7.1201" (region.id)
_STREAM = re.compile(r"^[A-Za-z0-9_.-]{1,60}$")


class ConfigError(ValueError):
    """An integrations configuration error; the message starts with the field's path."""


# --- helpers --------------------------------------------------------------------------------------------
def _fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _mapping(data: Any, prefix: str) -> dict:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or '(section)'}: expected a mapping, found {type(data).__name__}")
    return dict(data)


def _check_unknown(cls, data: dict, prefix: str) -> None:
    names = _fields(cls)
    unknown = sorted(str(k) for k in data if k not in names)
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown option (known: {', '.join(sorted(names))})")


def _number(p: str, name: str, v: Any, lo: float, hi: float, *, lo_open: bool = False) -> None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if not ok or v > hi or v < lo or (lo_open and v == lo):
        rng = f"{'>' if lo_open else '>='} {lo:g} and <= {hi:g}"
        raise ConfigError(f"{p}{name}: {v!r} is not a number {rng}")


def _integer(p: str, name: str, v: Any, lo: int, hi: int) -> None:
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ConfigError(f"{p}{name}: {v!r} is not an integer within {lo}..{hi}")


def _choice(p: str, name: str, v: Any, allowed: tuple[str, ...]) -> None:
    if v not in allowed:
        raise ConfigError(f"{p}{name}: {v!r} (expected one of: {', '.join(allowed)})")


def _host(p: str, name: str, v: Any) -> None:
    if not isinstance(v, str) or not v or any(c.isspace() for c in v):
        raise ConfigError(f"{p}{name}: {v!r} is not a host name or address")


def _position(p: str, lat: Any, lon: Any) -> None:
    _number(p, "latitude", lat, -90.0, 90.0)
    _number(p, "longitude", lon, -180.0, 180.0)


def intersection_key(value: Any, path: str) -> str:
    """Config form of an intersection (``1201``, ``"1201"``, ``"7.1201"``) -> the services' key."""
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise ConfigError(f"{path}: {value!r} is not an intersection id (1201 or region.id such as 7.1201)")
    m = _KEY.match(text)
    if not m or int(m.group(2)) > 65535 or (m.group(1) is not None and int(m.group(1)) > 65535):
        raise ConfigError(f"{path}: {value!r} is not an intersection id (0..65535, or region.id such as 7.1201)")
    return text


def reference_id(key: str) -> dict:
    """Intersection key -> IntersectionReferenceID JER (``{"id": 1201}`` / ``{"region": 7, "id": 1201}``)."""
    region, _, ident = key.rpartition(".")
    return {"region": int(region), "id": int(ident)} if region else {"id": int(ident)}


# --- traffic-controller feed ------------------------------------------------------------------------------
@dataclass
class SignalGroupMapConfig:
    """One signal group of an intersection, driven by one controller phase, overlap or pedestrian phase.

    ``movement`` says what green means for it (protected / permissive MovementPhaseState);
    ``plans`` overrides it per timing plan (the TSCBM "timebase ASC action" byte).
    """

    signal_group: int = 0
    phase: int | None = None  # controller phase 1..16 (vehicle or pedestrian)
    overlap: int | None = None  # controller overlap 1..16 (type overlap)
    type: str | None = None  # vehicle | pedestrian | overlap; default: overlap if overlap is given, else vehicle
    movement: str = "permissive"
    plans: dict[int, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any, prefix: str = "") -> "SignalGroupMapConfig":
        d = _mapping(data, prefix)
        _check_unknown(cls, d, prefix)
        plans = d.get("plans")
        if plans is not None:
            plans = _mapping(plans, prefix + "plans.")
            out: dict[int, str] = {}
            for k, v in plans.items():
                try:
                    plan = int(k)
                except (TypeError, ValueError):
                    raise ConfigError(f"{prefix}plans.{k}: a timing plan number 0..255 is expected") from None
                out[plan] = v
            d["plans"] = out
        cfg = cls(**d)
        cfg.validate(prefix)
        return cfg

    def validate(self, prefix: str = "") -> None:
        p = prefix
        _integer(p, "signal_group", self.signal_group, 1, 255)
        if self.type is None:
            self.type = "overlap" if self.overlap is not None else "vehicle"
        _choice(p, "type", self.type, GROUP_TYPES)
        if self.type == "overlap":
            if self.phase is not None:
                raise ConfigError(f"{p}phase: an overlap signal group names its overlap, not a phase")
            _integer(p, "overlap", self.overlap, 1, 16)
        else:
            if self.overlap is not None:
                raise ConfigError(f"{p}overlap: given for a {self.type} signal group (use type: overlap)")
            _integer(p, "phase", self.phase, 1, 16)
        _choice(p, "movement", self.movement, MOVEMENTS)
        for plan, movement in self.plans.items():
            _integer(p, "plans", plan, 0, 255)
            _choice(p, f"plans.{plan}", movement, MOVEMENTS)

    def movement_for(self, plan: int | None) -> str:
        """protected / permissive under timing plan ``plan``."""
        return self.plans.get(plan, self.movement) if plan is not None else self.movement


@dataclass
class ControllerIntersectionConfig:
    """An intersection the controller feed drives."""

    id: Any = None  # 1201 or "7.1201"
    controller: str | None = None  # TSCBM: source address of its controller (None: the only TSCBM intersection)
    name: str | None = None  # IntersectionState.name to send (optional)
    signal_groups: tuple[SignalGroupMapConfig, ...] = ()  # TSCBM phase map

    @classmethod
    def from_dict(cls, data: Any, prefix: str = "") -> "ControllerIntersectionConfig":
        d = _mapping(data, prefix)
        _check_unknown(cls, d, prefix)
        groups = d.get("signal_groups") or []
        if not isinstance(groups, (list, tuple)):
            raise ConfigError(f"{prefix}signal_groups: expected a list")
        d["signal_groups"] = tuple(SignalGroupMapConfig.from_dict(g, f"{prefix}signal_groups[{i}].")
                                   for i, g in enumerate(groups))
        cfg = cls(**d)
        cfg.validate(prefix)
        return cfg

    @property
    def key(self) -> str:
        return intersection_key(self.id, "id")

    def validate(self, prefix: str = "") -> None:
        p = prefix
        intersection_key(self.id, f"{p}id")
        if self.controller is not None:
            _host(p, "controller", self.controller)
        if self.name is not None and (not isinstance(self.name, str) or not 1 <= len(self.name) <= 63):
            raise ConfigError(f"{p}name: must be a string of 1..63 characters")
        seen: dict[int, int] = {}
        for i, g in enumerate(self.signal_groups):
            if g.signal_group in seen:
                raise ConfigError(f"{p}signal_groups[{i}].signal_group: {g.signal_group} is already mapped by "
                                  f"signal_groups[{seen[g.signal_group]}]")
            seen[g.signal_group] = i


@dataclass
class ControllerFeedConfig:
    """Traffic-controller feed -> TLM: UDP listener (JSON or TSCBM datagrams), phase map, watchdog."""

    format: str = "json"  # json | tscbm (UDP datagrams; the HTTP route always takes JSON)
    host: str = "127.0.0.1"  # UDP listen address
    port: int | None = 6053  # UDP listen port (null: no UDP listener, HTTP only; 0: any free port)
    intersections: tuple[ControllerIntersectionConfig, ...] = ()  # JSON: empty = any intersection
    watchdog_timeout_s: float = 1.0  # no update for this long = the feed is lost
    stale_behaviour: str = "stop"  # stop (terminate the SPATEM stream) | unavailable (report it)
    unavailable_interval_s: float = 1.0  # how often "unavailable" SPATEMs are sent while the feed is lost
    unavailable_max_s: float = 60.0  # after this long without feed, stop even in unavailable mode
    time_source: str = "controller"  # TSCBM times relative to: the blob's timestamp | the datagram's arrival
    max_clock_skew_s: float = 2.0  # updates whose timestamp is further from our clock are dropped
    age_report_interval_s: float = 1.0  # how often feed ages are reported (metrics) between events

    @classmethod
    def from_dict(cls, data: Any, prefix: str = "") -> "ControllerFeedConfig":
        d = _mapping(data, prefix)
        _check_unknown(cls, d, prefix)
        ixs = d.get("intersections") or []
        if not isinstance(ixs, (list, tuple)):
            raise ConfigError(f"{prefix}intersections: expected a list")
        d["intersections"] = tuple(ControllerIntersectionConfig.from_dict(x, f"{prefix}intersections[{i}].")
                                   for i, x in enumerate(ixs))
        cfg = cls(**d)
        cfg.validate(prefix)
        return cfg

    def validate(self, prefix: str = "") -> None:
        p = prefix
        _choice(p, "format", self.format, FORMATS)
        _host(p, "host", self.host)
        if self.port is not None:
            _integer(p, "port", self.port, 0, 65535)
        _number(p, "watchdog_timeout_s", self.watchdog_timeout_s, 0.0, 3600.0, lo_open=True)
        _choice(p, "stale_behaviour", self.stale_behaviour, STALE_BEHAVIOURS)
        _number(p, "unavailable_interval_s", self.unavailable_interval_s, 0.1, 60.0)
        _number(p, "unavailable_max_s", self.unavailable_max_s, 0.0, 86400.0)
        _choice(p, "time_source", self.time_source, TIME_SOURCES)
        _number(p, "max_clock_skew_s", self.max_clock_skew_s, 0.0, 3600.0, lo_open=True)
        _number(p, "age_report_interval_s", self.age_report_interval_s, 0.0, 3600.0, lo_open=True)
        keys: dict[str, int] = {}
        controllers: dict[str | None, int] = {}
        for i, ix in enumerate(self.intersections):
            ip = f"{p}intersections[{i}]."
            if ix.key in keys:
                raise ConfigError(f"{ip}id: intersection {ix.key} is already configured by intersections[{keys[ix.key]}]")
            keys[ix.key] = i
            if self.format == "tscbm":
                if not ix.signal_groups:
                    raise ConfigError(f"{ip}signal_groups: a TSCBM intersection needs its phase map")
                if ix.controller is None and len(self.intersections) > 1:
                    raise ConfigError(f"{ip}controller: required when several intersections share the TSCBM "
                                      "listener (the source address tells them apart)")
                if ix.controller in controllers:
                    raise ConfigError(f"{ip}controller: {ix.controller} is already used by intersections[{controllers[ix.controller]}]"
                                      " (each TSCBM controller drives one intersection)")
                controllers[ix.controller] = i
        if self.format == "tscbm" and not self.intersections:
            raise ConfigError(f"{p}intersections: the TSCBM format needs at least one intersection with its phase map")

    def intersection(self, key: str) -> ControllerIntersectionConfig | None:
        for ix in self.intersections:
            if ix.key == key:
                return ix
        return None


# --- MAP files --------------------------------------------------------------------------------------------
@dataclass
class MapFilesConfig:
    """MAPEM content from JER JSON files, one per intersection (``{"1201": "/etc/rsu/maps/1201.json"}``)."""

    intersections: dict[str, str] = field(default_factory=dict)  # intersection key (RLT entry id) -> file
    poll_interval_s: float = 2.0  # how often the files' mtimes are checked (reload() forces a read)
    dissemination: dict | None = None  # dissemination parameters given to RLT (e.g. repetition_interval_s)

    @classmethod
    def from_dict(cls, data: Any, prefix: str = "") -> "MapFilesConfig":
        d = _mapping(data, prefix)
        _check_unknown(cls, d, prefix)
        files = _mapping(d.get("intersections"), prefix + "intersections.")
        out: dict[str, str] = {}
        for k, v in files.items():
            ids = [intersection_key(part, f"{prefix}intersections.{k}") for part in str(k).split("+")]
            out["+".join(ids)] = v
        d["intersections"] = out
        cfg = cls(**d)
        cfg.validate(prefix)
        return cfg

    def validate(self, prefix: str = "") -> None:
        p = prefix
        if not self.intersections:
            raise ConfigError(f"{p}intersections: name at least one intersection and its MAP file")
        for key, path in self.intersections.items():
            if not isinstance(path, (str, Path)) or not str(path):
                raise ConfigError(f"{p}intersections.{key}: expected the path of a JER JSON MAPEM file")
            parent = Path(path).expanduser().resolve().parent
            if not parent.is_dir():
                raise ConfigError(f"{p}intersections.{key}: directory {parent} does not exist")
        _number(p, "poll_interval_s", self.poll_interval_s, 0.05, 3600.0)
        if self.dissemination is not None and not isinstance(self.dissemination, dict):
            raise ConfigError(f"{p}dissemination: expected a mapping of dissemination parameters")


# --- NTRIP --------------------------------------------------------------------------------------------------
@dataclass
class NtripConfig:
    """NTRIP client to a caster; its RTCM 3 frames become RTCMEMs (GPC)."""

    host: str = ""
    port: int = 2101
    mountpoint: str = ""
    username: str | None = None
    password_file: str | None = None  # first line is the password
    version: int = 2  # NTRIP 1 or 2
    gga: bool = False  # send GGA sentences from the RSU position (network-RTK / VRS mountpoints)
    gga_interval_s: float = 10.0
    latitude: float | None = None  # RSU position (degrees, WGS84): GGA, and the RTCMEM destination area
    longitude: float | None = None
    altitude_m: float = 0.0  # height above mean sea level for GGA
    area_radius_m: float = 1000.0  # RTCMEM GeoBroadcast circle around the RSU position (0: derived / SHB)
    stream: str = "ntrip"  # GPC stream name (entry id); further RTCMEMs of a batch: NAME.2, NAME.3, ...
    max_rtcmem_bytes: int = 1100  # encoded RTCMEM size limit a batch is packed into
    flush_gap_s: float = 0.1  # a batch is sent after this quiet gap in the stream ...
    max_batch_age_s: float = 1.0  # ... or when its first frame is this old
    max_correction_age_s: float = 10.0  # no new frame for this long: the RTCMEM stops (no stale corrections)
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0  # no byte for this long: reconnect
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    user_agent: str = "NTRIP rsu"

    @classmethod
    def from_dict(cls, data: Any, prefix: str = "") -> "NtripConfig":
        d = _mapping(data, prefix)
        _check_unknown(cls, d, prefix)
        cfg = cls(**d)
        cfg.validate(prefix)
        return cfg

    def validate(self, prefix: str = "") -> None:
        p = prefix
        _host(p, "host", self.host)
        _integer(p, "port", self.port, 1, 65535)
        if not isinstance(self.mountpoint, str) or not re.match(r"^[A-Za-z0-9_.\-]{1,100}$", self.mountpoint):
            raise ConfigError(f"{p}mountpoint: {self.mountpoint!r} is not a mountpoint name (letters, digits, _ . -)")
        if self.username is not None and (not isinstance(self.username, str) or ":" in self.username
                                          or not self.username):
            raise ConfigError(f"{p}username: must be a non-empty string without ':'")
        if self.password_file is not None:
            if not self.username:
                raise ConfigError(f"{p}password_file: given without username")
            if not isinstance(self.password_file, (str, Path)) or not Path(self.password_file).is_file():
                raise ConfigError(f"{p}password_file: {self.password_file} is not a readable file")
        if self.version not in (1, 2) or isinstance(self.version, bool):
            raise ConfigError(f"{p}version: {self.version!r} (expected 1 or 2)")
        if not isinstance(self.gga, bool):
            raise ConfigError(f"{p}gga: expected true or false")
        _number(p, "gga_interval_s", self.gga_interval_s, 1.0, 3600.0)
        if self.gga or self.latitude is not None or self.longitude is not None:
            if self.latitude is None or self.longitude is None:
                raise ConfigError(f"{p}latitude/longitude: the RSU position is required"
                                  + (" for GGA" if self.gga else " (give both)"))
            _position(p, self.latitude, self.longitude)
        _number(p, "altitude_m", self.altitude_m, -1000.0, 10000.0)
        _number(p, "area_radius_m", self.area_radius_m, 0.0, 65535.0)
        if not isinstance(self.stream, str) or not _STREAM.match(self.stream):
            raise ConfigError(f"{p}stream: 1..60 characters of A-Z a-z 0-9 _ . -")
        _integer(p, "max_rtcmem_bytes", self.max_rtcmem_bytes, 200, 65535)
        _number(p, "flush_gap_s", self.flush_gap_s, 0.0, 10.0, lo_open=True)
        _number(p, "max_batch_age_s", self.max_batch_age_s, 0.0, 60.0, lo_open=True)
        _number(p, "max_correction_age_s", self.max_correction_age_s, 0.0, 3600.0, lo_open=True)
        _number(p, "connect_timeout_s", self.connect_timeout_s, 0.0, 600.0, lo_open=True)
        _number(p, "read_timeout_s", self.read_timeout_s, 0.0, 3600.0, lo_open=True)
        _number(p, "backoff_initial_s", self.backoff_initial_s, 0.0, 3600.0, lo_open=True)
        _number(p, "backoff_max_s", self.backoff_max_s, 0.0, 3600.0, lo_open=True)
        if self.backoff_initial_s > self.backoff_max_s:
            raise ConfigError(f"{p}backoff_initial_s: larger than backoff_max_s")
        if not isinstance(self.user_agent, str) or not self.user_agent.startswith("NTRIP ") or "\r" in self.user_agent \
                or "\n" in self.user_agent:
            raise ConfigError(f"{p}user_agent: must start with 'NTRIP ' (casters check it) and be one line")

    def read_password(self) -> str | None:
        return read_secret_file(self.password_file, error=ConfigError) if self.password_file else None


# --- the whole section --------------------------------------------------------------------------------------
@dataclass
class IntegrationsConfig:
    controller: ControllerFeedConfig | None = None
    map_files: MapFilesConfig | None = None
    ntrip: NtripConfig | None = None

    @classmethod
    def from_dict(cls, data: Any, prefix: str = "integrations.") -> "IntegrationsConfig":
        d = _mapping(data, prefix)
        _check_unknown(cls, d, prefix)
        return cls(
            controller=ControllerFeedConfig.from_dict(d["controller"], prefix + "controller.")
            if d.get("controller") is not None else None,
            map_files=MapFilesConfig.from_dict(d["map_files"], prefix + "map_files.")
            if d.get("map_files") is not None else None,
            ntrip=NtripConfig.from_dict(d["ntrip"], prefix + "ntrip.") if d.get("ntrip") is not None else None)

    def validate(self, prefix: str = "integrations.") -> None:
        if self.controller is not None:
            self.controller.validate(prefix + "controller.")
        if self.map_files is not None:
            self.map_files.validate(prefix + "map_files.")
        if self.ntrip is not None:
            self.ntrip.validate(prefix + "ntrip.")

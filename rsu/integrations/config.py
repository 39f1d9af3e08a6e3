"""Configuration of the field integrations: pydantic dataclasses with defaults, every value checked by name
(``integrations.controller.intersections[0].signal_groups[2].phase: ...``), in the style of
:mod:`rsu.transports.config`: validated with the whole file, every error at once; ``from_dict(data, prefix)``
and ``validate(prefix)`` for a section on its own. Unknown keys are refused by name. Nothing is opened
here except that files named by the config (password, MAP files) are checked to exist. Errors are
:class:`rsu.ops.config_core.ConfigError`.

Sections (all optional; a missing section is a disabled integration)::

    integrations:
      controller: {...}   # ControllerFeedConfig: traffic-controller feed -> TLM (SPATEM)
      map_files:  {...}   # MapFilesConfig: MAPEM JER files -> RLT
      ntrip:      {...}   # NtripConfig: NTRIP caster -> GPC (RTCMEM)

``docs/integrations.md`` documents every option with examples.
"""

from __future__ import annotations

import re
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, model_validator

from rsu.ops.config_core import ConfigError, LayerConfig, Problems, check, config_dataclass, floats, ints
from rsu.secretfile import read_secret_file

__all__ = [
    "ConfigError",
    "ControllerFeedConfig",
    "ControllerIntersectionConfig",
    "IntegrationsConfig",
    "MapFilesConfig",
    "NtripConfig",
    "SignalGroupMapConfig",
    "intersection_key",
    "reference_id",
]

MOVEMENTS = ("protected", "permissive")
GROUP_TYPES = ("vehicle", "pedestrian", "overlap")
FORMATS = ("json", "tscbm")
STALE_BEHAVIOURS = ("stop", "unavailable")
TIME_SOURCES = ("controller", "receipt")
_KEY = re.compile(r"^(?:(\d{1,5})\.)?(\d{1,5})$")  # "1201" or "7.1201" (region.id)
_STREAM = re.compile(r"^[A-Za-z0-9_.-]{1,60}$")


# --- helpers --------------------------------------------------------------------------------------------
def _one_of(allowed: tuple[str, ...]) -> Any:
    def ok(v: Any) -> Any:
        if v not in allowed:
            raise ValueError(f"{v!r} (expected one of: {', '.join(allowed)})")
        return v

    return ok


def _host(v: Any) -> Any:
    if not isinstance(v, str) or not v or any(c.isspace() for c in v):
        raise ValueError(f"{v!r} is not a host name or address")
    return v


Host = Annotated[str, check(_host)]


def _optional(fn: Any) -> Any:
    return lambda v: v if v is None else fn(v)


def _listed(v: Any) -> Any:
    if v is None:
        return ()
    if not isinstance(v, (list, tuple)):
        raise ValueError("expected a list")
    return v


def _key_text(value: Any) -> str:
    """Config form of an intersection (``1201``, ``"1201"``, ``"7.1201"``) -> the services' key; ValueError."""
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise ValueError(f"{value!r} is not an intersection id (1201 or region.id such as 7.1201)")
    m = _KEY.match(text)
    if not m or int(m.group(2)) > 65535 or (m.group(1) is not None and int(m.group(1)) > 65535):
        raise ValueError(f"{value!r} is not an intersection id (0..65535, or region.id such as 7.1201)")
    return text


def intersection_key(value: Any, path: str) -> str:
    """Config form of an intersection (``1201``, ``"1201"``, ``"7.1201"``) -> the services' key."""
    try:
        return _key_text(value)
    except ValueError as e:
        raise ConfigError(f"{path}: {e}") from None


def reference_id(key: str) -> dict:
    """Intersection key -> IntersectionReferenceID JER (``{"id": 1201}`` / ``{"region": 7, "id": 1201}``)."""
    region, _, ident = key.rpartition(".")
    return {"region": int(region), "id": int(ident)} if region else {"id": int(ident)}


# --- traffic-controller feed ------------------------------------------------------------------------------
def _plans(v: Any) -> Any:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ValueError(f"expected a mapping, found {type(v).__name__}")
    out: dict[int, str] = {}
    found = Problems()
    for k, movement in v.items():
        try:
            plan = int(k)
        except (TypeError, ValueError):
            found.add(str(k), "a timing plan number 0..255 is expected")
            continue
        if not 0 <= plan <= 255:
            found.add("", f"{plan!r} is not an integer within 0..255")
        elif movement not in MOVEMENTS:
            found.add(str(plan), f"{movement!r} (expected one of: {', '.join(MOVEMENTS)})")
        out[plan] = movement
    found.raise_any()
    return out


@config_dataclass
class SignalGroupMapConfig(LayerConfig):
    """One signal group of an intersection, driven by one controller phase, overlap or pedestrian phase.

    ``movement`` says what green means for it (protected / permissive MovementPhaseState);
    ``plans`` overrides it per timing plan (the TSCBM "timebase ASC action" byte).
    """

    signal_group: Annotated[int, ints(1, 255)] = Field(default=0, validate_default=True)
    phase: Annotated[int | None, ints(1, 16, optional=True)] = None  # controller phase 1..16 (vehicle or pedestrian)
    overlap: Annotated[int | None, ints(1, 16, optional=True)] = None  # controller overlap 1..16 (type overlap)
    type: Annotated[str | None, check(_optional(_one_of(GROUP_TYPES)))] = None  # vehicle |
    # pedestrian | overlap; default: overlap if overlap is given, else vehicle
    movement: Annotated[str, check(_one_of(MOVEMENTS))] = "permissive"
    plans: Annotated[dict[int, str], check(_plans)] = field(default_factory=dict)

    @model_validator(mode="after")
    def _phase_or_overlap(self) -> SignalGroupMapConfig:
        if self.type is None:
            self.type = "overlap" if self.overlap is not None else "vehicle"
        found = Problems()
        if self.type == "overlap":
            if self.phase is not None:
                found.add("phase", "an overlap signal group names its overlap, not a phase")
            elif self.overlap is None:
                found.add("overlap", "None is not an integer within 1..16")
        elif self.overlap is not None:
            found.add("overlap", f"given for a {self.type} signal group (use type: overlap)")
        elif self.phase is None:
            found.add("phase", "None is not an integer within 1..16")
        found.raise_any()
        return self

    def movement_for(self, plan: int | None) -> str:
        """protected / permissive under timing plan ``plan``."""
        return self.plans.get(plan, self.movement) if plan is not None else self.movement


def _name(v: Any) -> Any:
    if v is not None and (not isinstance(v, str) or not 1 <= len(v) <= 63):
        raise ValueError("must be a string of 1..63 characters")
    return v


@config_dataclass
class ControllerIntersectionConfig(LayerConfig):
    """An intersection the controller feed drives."""

    id: Annotated[str, check(_key_text)] = Field(default=None, validate_default=True)  # 1201 or "7.1201" in the file;
    # here the services' key ("1201", "7.1201")
    controller: Annotated[str | None, check(_optional(_host))] = None  # TSCBM: source address of its controller
    # (None: the only TSCBM intersection)
    name: Annotated[str | None, check(_name)] = None  # IntersectionState.name to send (optional)
    signal_groups: Annotated[tuple[SignalGroupMapConfig, ...], check(_listed)] = ()  # TSCBM phase map

    @property
    def key(self) -> str:
        """The services' key of this intersection ("1201", "7.1201")."""
        return self.id

    @model_validator(mode="after")
    def _groups_once(self) -> ControllerIntersectionConfig:
        found = Problems()
        seen: dict[int, int] = {}
        for i, g in enumerate(self.signal_groups):
            if g.signal_group in seen:
                found.add(
                    f"signal_groups[{i}].signal_group",
                    f"{g.signal_group} is already mapped by signal_groups[{seen[g.signal_group]}]",
                )
            seen.setdefault(g.signal_group, i)
        found.raise_any()
        return self


@config_dataclass
class ControllerFeedConfig(LayerConfig):
    """Traffic-controller feed -> TLM: UDP listener (JSON or TSCBM datagrams), phase map, watchdog."""

    # json | tscbm (UDP datagrams; the HTTP route always takes JSON)
    format: Annotated[str, check(_one_of(FORMATS))] = "json"
    host: Host = "127.0.0.1"  # UDP listen address
    # UDP listen port (null: no UDP listener, HTTP only; 0: any)
    port: Annotated[int | None, ints(0, 65535, optional=True)] = 6053
    intersections: Annotated[tuple[ControllerIntersectionConfig, ...], check(_listed)] = ()  # JSON: empty = any
    # no update for this long = the feed is lost
    watchdog_timeout_s: Annotated[float, floats(0.0, 3600.0, lo_open=True)] = 1.0
    # stop (terminate the SPATEM stream) | unavailable
    stale_behaviour: Annotated[str, check(_one_of(STALE_BEHAVIOURS))] = "stop"
    # how often "unavailable" SPATEMs are sent while lost
    unavailable_interval_s: Annotated[float, floats(0.1, 60.0)] = 1.0
    # after this long without feed, stop even in unavailable mode
    unavailable_max_s: Annotated[float, floats(0.0, 86400.0)] = 60.0
    # TSCBM times relative to: the blob's timestamp | arrival
    time_source: Annotated[str, check(_one_of(TIME_SOURCES))] = "controller"
    # updates further from our clock are dropped
    max_clock_skew_s: Annotated[float, floats(0.0, 3600.0, lo_open=True)] = 2.0
    age_report_interval_s: Annotated[float, floats(0.0, 3600.0, lo_open=True)] = 1.0  # how often feed ages are reported

    @model_validator(mode="after")
    def _intersections(self) -> ControllerFeedConfig:
        found = Problems()
        keys: dict[str, int] = {}
        controllers: dict[str | None, int] = {}
        for i, ix in enumerate(self.intersections):
            ip = f"intersections[{i}]."
            if ix.key in keys:
                found.add(ip + "id", f"intersection {ix.key} is already configured by intersections[{keys[ix.key]}]")
            keys.setdefault(ix.key, i)
            if self.format == "tscbm":
                if not ix.signal_groups:
                    found.add(ip + "signal_groups", "a TSCBM intersection needs its phase map")
                if ix.controller is None and len(self.intersections) > 1:
                    found.add(
                        ip + "controller",
                        "required when several intersections share the TSCBM listener "
                        "(the source address tells them apart)",
                    )
                elif ix.controller in controllers:
                    found.add(
                        ip + "controller",
                        f"{ix.controller} is already used by intersections"
                        f"[{controllers[ix.controller]}] (each TSCBM controller drives one "
                        "intersection)",
                    )
                controllers.setdefault(ix.controller, i)
        if self.format == "tscbm" and not self.intersections:
            found.add("intersections", "the TSCBM format needs at least one intersection with its phase map")
        found.raise_any()
        return self

    def intersection(self, key: str) -> ControllerIntersectionConfig | None:
        for ix in self.intersections:
            if ix.key == key:
                return ix
        return None


# --- MAP files --------------------------------------------------------------------------------------------
def _map_files(v: Any) -> Any:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ValueError(f"expected a mapping, found {type(v).__name__}")
    out: dict[str, str] = {}
    found = Problems()
    for k, path in v.items():
        try:
            key = "+".join(_key_text(part) for part in str(k).split("+"))
        except ValueError as e:
            found.add(str(k), str(e))
            continue
        if not isinstance(path, (str, Path)) or not str(path):
            found.add(key, "expected the path of a JER JSON MAPEM file")
            continue
        parent = Path(path).expanduser().resolve().parent
        if not parent.is_dir():
            found.add(key, f"directory {parent} does not exist")
        out[key] = str(path)
    found.raise_any()
    return out


def _dissemination(v: Any) -> Any:
    if v is not None and not isinstance(v, dict):
        raise ValueError("expected a mapping of dissemination parameters")
    return v


@config_dataclass
class MapFilesConfig(LayerConfig):
    """MAPEM content from JER JSON files, one per intersection (``{"1201": "/etc/rsu/maps/1201.json"}``)."""

    intersections: Annotated[dict[str, str], check(_map_files)] = field(default_factory=dict)  # intersection key
    # (RLT entry id) -> file
    # how often the files' mtimes are checked (reload() forces a read)
    poll_interval_s: Annotated[float, floats(0.05, 3600.0)] = 2.0
    dissemination: Annotated[dict | None, check(_dissemination)] = None  # dissemination parameters given to RLT
    # (e.g. repetition_interval_s)

    @model_validator(mode="after")
    def _some(self) -> MapFilesConfig:
        found = Problems()
        if not self.intersections:
            found.add("intersections", "name at least one intersection and its MAP file")
        found.raise_any()
        return self


# --- NTRIP --------------------------------------------------------------------------------------------------
def _mountpoint(v: Any) -> Any:
    if not isinstance(v, str) or not re.match(r"^[A-Za-z0-9_.\-]{1,100}$", v):
        raise ValueError(f"{v!r} is not a mountpoint name (letters, digits, _ . -)")
    return v


def _username(v: Any) -> Any:
    if v is not None and (not isinstance(v, str) or ":" in v or not v):
        raise ValueError("must be a non-empty string without ':'")
    return v


def _readable(v: Any) -> Any:
    if v is not None and (not isinstance(v, (str, Path)) or not Path(v).is_file()):
        raise ValueError(f"{v} is not a readable file")
    return v if v is None else str(v)


def _version(v: Any) -> Any:
    if v not in (1, 2) or isinstance(v, bool):
        raise ValueError(f"{v!r} (expected 1 or 2)")
    return v


def _strict_bool(v: Any) -> Any:
    if not isinstance(v, bool):
        raise ValueError("expected true or false")
    return v


def _stream(v: Any) -> Any:
    if not isinstance(v, str) or not _STREAM.match(v):
        raise ValueError("1..60 characters of A-Z a-z 0-9 _ . -")
    return v


def _user_agent(v: Any) -> Any:
    if not isinstance(v, str) or not v.startswith("NTRIP ") or "\r" in v or "\n" in v:
        raise ValueError("must start with 'NTRIP ' (casters check it) and be one line")
    return v


@config_dataclass
class NtripConfig(LayerConfig):
    """NTRIP client to a caster; its RTCM 3 frames become RTCMEMs (GPC)."""

    host: Host = Field(default="", validate_default=True)
    port: Annotated[int, ints(1, 65535)] = 2101
    mountpoint: Annotated[str, check(_mountpoint)] = Field(default="", validate_default=True)
    username: Annotated[str | None, check(_username)] = None
    password_file: Annotated[str | None, check(_readable)] = None  # first line is the password
    version: Annotated[int, check(_version)] = 2  # NTRIP 1 or 2
    gga: Annotated[bool, check(_strict_bool)] = False  # send GGA sentences from the RSU position (network-RTK /
    # VRS mountpoints)
    gga_interval_s: Annotated[float, floats(1.0, 3600.0)] = 10.0
    # RSU position (degrees, WGS84): GGA, and the RTCMEM area
    latitude: Annotated[float | None, floats(-90.0, 90.0, optional=True)] = None
    longitude: Annotated[float | None, floats(-180.0, 180.0, optional=True)] = None
    altitude_m: Annotated[float, floats(-1000.0, 10000.0)] = 0.0  # height above mean sea level for GGA
    # RTCMEM GeoBroadcast circle around the RSU (0: derived / SHB)
    area_radius_m: Annotated[float, floats(0.0, 65535.0)] = 1000.0
    stream: Annotated[str, check(_stream)] = "ntrip"  # GPC stream name (entry id); further RTCMEMs of a batch:
    # NAME.2, NAME.3, ...
    max_rtcmem_bytes: Annotated[int, ints(200, 65535)] = 1100  # encoded RTCMEM size limit a batch is packed into
    # a batch is sent after this quiet gap in the stream ...
    flush_gap_s: Annotated[float, floats(0.0, 10.0, lo_open=True)] = 0.1
    max_batch_age_s: Annotated[float, floats(0.0, 60.0, lo_open=True)] = 1.0  # ... or when its first frame is this old
    # no new frame for this long: the RTCMEM stops
    max_correction_age_s: Annotated[float, floats(0.0, 3600.0, lo_open=True)] = 10.0
    connect_timeout_s: Annotated[float, floats(0.0, 600.0, lo_open=True)] = 10.0
    read_timeout_s: Annotated[float, floats(0.0, 3600.0, lo_open=True)] = 30.0  # no byte for this long: reconnect
    backoff_initial_s: Annotated[float, floats(0.0, 3600.0, lo_open=True)] = 1.0
    backoff_max_s: Annotated[float, floats(0.0, 3600.0, lo_open=True)] = 60.0
    user_agent: Annotated[str, check(_user_agent)] = "NTRIP rsu"

    @model_validator(mode="after")
    def _together(self) -> NtripConfig:
        found = Problems()
        if self.password_file is not None and not self.username:
            found.add("password_file", "given without username")
        if (self.gga or self.latitude is not None or self.longitude is not None) and (
            self.latitude is None or self.longitude is None
        ):
            found.add(
                "latitude/longitude", "the RSU position is required" + (" for GGA" if self.gga else " (give both)")
            )
        if self.backoff_initial_s > self.backoff_max_s:
            found.add("backoff_initial_s", "larger than backoff_max_s")
        found.raise_any()
        return self

    def read_password(self) -> str | None:
        return read_secret_file(self.password_file, error=ConfigError) if self.password_file else None


# --- the whole section --------------------------------------------------------------------------------------
@config_dataclass
class IntegrationsConfig(LayerConfig):
    """The ``integrations:`` section: each integration is optional (absent: disabled)."""

    PREFIX = "integrations."

    controller: ControllerFeedConfig | None = None
    map_files: MapFilesConfig | None = None
    ntrip: NtripConfig | None = None

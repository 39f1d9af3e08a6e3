"""The daemon's configuration: one YAML file, validated as a whole (see config_core for the error form).

Sections: ``station`` (id, position), ``state_dir``, ``security``, ``services``, ``transports``,
``integrations``, ``api``, ``logging``. Every section has defaults, so an empty file (or no file:
:data:`EMBEDDED_DEFAULT`) runs a working RSU on loopback with a local test PKI. The documented,
commented example is ``config/rsu.example.yaml``.

Every section is a pydantic model or dataclass, validated in one pass: a ConfigError lists every
problem of every section, each under its path (``transports[1].qos``,
``integrations.controller.intersections[0].id``). The transport entries and the integrations are the
layers' own config classes (``rsu.transports.config``, ``rsu.integrations.config``), so the daemon hands
the layers the objects validated here, nothing is parsed again. The station fills in what the entries
leave out (RSU position, MQTT source) before validation. Secrets are never inline: MQTT passwords come
from ``password_file``, private keys from the PKI directory.

A section defined in another module plugs in with one line in :class:`Config`
(``forwarding: ForwardingSection = ForwardingSection()``); its errors are reported like the others.
"""

from __future__ import annotations

import copy
import os
import re
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from rsu.api.auth_config import AuditSettings, AuthSettings, TlsSettings, host_issue
from rsu.forward.config import ForwardSection
from rsu.health.config import ClockSection
from rsu.integrations.config import IntegrationsConfig
from rsu.ops.config_core import (
    ConfigError,
    ConfigIssue,
    Problems,
    Seconds,
    format_path,
    load_yaml_file,
    parse_duration,
    tagged,
    validate,
    within,
)
from rsu.pki.config import PkiClientSection
from rsu.services.store import Durability
from rsu.transports.config import GnUdpConfig, MqttConfig

Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Position(_Section):
    latitude: float = Field(44.837592, ge=-90, le=90, description="degrees, WGS 84")
    longitude: float = Field(-0.579431, ge=-180, le=180, description="degrees, WGS 84")
    altitude_m: float | None = Field(None, ge=-1000, le=10000, description="metres, WGS 84 ellipsoid")


class Station(_Section):
    id: int = Field(3120101, ge=0, le=4294967295, description="ItsPduHeader stationID of what we send")
    position: Position = Position()


class Provider(_Section):
    country: str = Field("FR", pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2, coded in ITA2")
    issuer: int = Field(57, ge=0, le=16383)  # matches config/examples/ivim-speed-limit.json

    @property
    def service_provider(self) -> Any:
        """This provider as the security layer's value (:class:`rsu.security.ssp.ServiceProvider`: the IVIM
        SSP and the PKI client's permissions)."""
        from rsu.security import ssp

        return ssp.ServiceProvider.of(self.country, self.issuer)


class SecurityLimits(_Section):
    """Bounds on what other stations can make the security entity keep (rsu.limits)."""

    held_frames: int = Field(64, ge=0, le=100_000, description="frames held for an unknown signer (0: none)")
    hold_seconds: Duration = Field(2.0, le=60, description="how long a frame waits for its signer's certificate")
    p2pcd_per_frame: int = Field(8, ge=0, le=64, description="HashedId3s one outgoing message asks for")
    p2pcd_pending: int = Field(32, ge=1, le=100_000, description="certificate requests waiting to be sent")
    p2pcd_max_age: Duration = Field(10.0, le=3600, description="a certificate request not sent by then is forgotten")
    certificate_cache: int = Field(4096, ge=16, le=1_000_000, description="verified certificates remembered")
    replay_entries: int = Field(
        65536, ge=16, le=10_000_000, description="accepted messages remembered for replay detection"
    )


class Security(_Section):
    enabled: bool = True
    pki_dir: Path | None = None  # default: <state_dir>/pki
    create_test_pki: bool = True  # create a local test PKI in pki_dir when it holds none
    test_pki_at_hours: int = Field(168, ge=1, le=8760)
    trust_dir: Path | None = None  # root/AA certificates; default: pki_dir
    tickets_dir: Path | None = None  # AT certificates + private keys; default: <pki_dir>/at
    # at most a week: ATs are valid for about that long
    rotation_margin: Annotated[Seconds, within(0, 7 * 86400)] = 3600.0
    certificate_interval: Annotated[Seconds, within(0, 60)] = 1.0  # 0 = the full certificate in every message
    max_age: Annotated[Seconds, within(0.05, 86400)] = 30.0
    max_future: Annotated[Seconds, within(0, 600)] = 2.0
    accept_unsecured: bool = False  # deliver unsigned received messages (test benches only)
    limits: SecurityLimits = SecurityLimits()


class Services(_Section):
    ivi_provider: Provider = Provider()
    # what an acknowledged change survives: a power cut (every commit fsync-ed) or a crash of rsu (kill -9)
    # only (rsu.services.store: the data is in the kernel before the answer, not on the disk)
    store_durability: Durability = "power_cut"
    rules: dict[str, Any] = Field(default_factory=dict)  # rsu.services.defaults.ServiceRules overrides
    message_defaults: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("rules")
    @classmethod
    def _rules(cls, value: dict[str, Any]) -> dict[str, Any]:
        """Checked as the service layer checks them (unknown keys, types, ranges: rsu.services.defaults)."""
        from rsu.services.defaults import rule_issues

        return _service_checked(value, rule_issues)

    @field_validator("message_defaults")
    @classmethod
    def _message_defaults(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Checked as the service layer checks them (also the repetition bounds of each message)."""
        from rsu.services.defaults import message_default_issues

        return _service_checked(value, message_default_issues)


def _service_checked(value: dict[str, Any], issues_of: Any) -> dict[str, Any]:
    found = Problems()
    for path, message in issues_of(value, ""):
        found.add(path.lstrip("."), message)
    found.raise_any()
    return value


class Api(_Section):
    host: str = "127.0.0.1"  # loopback unless clients authenticate (rsu.api.auth_config.host_problem)
    port: int = Field(8301, ge=0, le=65535, description="0 = any free port")
    max_connections: int = Field(256, ge=1, le=16384)
    header_timeout_s: Annotated[Seconds, within(0.5, 300)] = 10.0
    idle_timeout_s: Annotated[Seconds, within(1, 3600)] = 60.0
    tls: TlsSettings | None = None  # TLS 1.3, client certificates; auth: roles, tokens, lockout (rsu.api.auth_config)
    auth: AuthSettings = AuthSettings()
    audit: AuditSettings = AuditSettings()

    _host = model_validator(mode="wrap")(host_issue)

    def limits(self):
        """The connection bounds of the API server (rsu.api.limits)."""
        from rsu.api.limits import ConnectionLimits

        return ConnectionLimits(self.max_connections, self.header_timeout_s, self.idle_timeout_s)


class Logging(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v


TRANSPORT_TYPES = {"gn-udp": GnUdpConfig, "mqtt": MqttConfig}  # transports[i].type -> its config class
if TYPE_CHECKING:  # what tagged() builds at run time, spelled for the type checker
    TransportConfig = GnUdpConfig | MqttConfig
else:
    TransportConfig = tagged("type", TRANSPORT_TYPES)


def _workers(v: Any) -> Any:
    """``workers:``: a number, or ``auto`` = one per core this process may use (resolved when loaded)."""
    if v == "auto":
        from rsu.ops.shards import resolve_count

        return min(64, resolve_count("auto"))
    if isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 64:
        return v
    raise ValueError(f"expected a number of worker processes 1..64 or 'auto' (one per core), found {v!r}")


def _default_transports() -> list[dict[str, Any]]:
    """The ``transports`` of a file that has none (as written in a file)."""
    return [{"type": "gn-udp", "name": "gn"}]


def _default_transport_objects() -> list[TransportConfig]:
    """The ``transports`` of a Config made in code without any."""
    return [GnUdpConfig(latitude=Position().latitude, longitude=Position().longitude)]


class Config(_Section):
    station: Station = Station()
    state_dir: Path | None = None  # default: $STATE_DIRECTORY, else ~/.local/state/rsu
    security: Security = Security()
    services: Services = Services()
    transports: list[TransportConfig] = Field(default_factory=_default_transport_objects)
    integrations: IntegrationsConfig = Field(default_factory=IntegrationsConfig)
    api: Api = Api()
    logging: Logging = Logging()
    pki: PkiClientSection | None = None  # TS 102 941 PKI client (rsu.pki.config); absent: none
    forward: ForwardSection = ForwardSection()  # sinks towards the centre, pre-signed forward (rsu.forward)
    clock: ClockSection = ClockSection()  # clock and GNSS health, the unsynchronized policy (rsu.health.config)
    # worker processes, each owning a shard of intersections ("auto": one per core; docs/scaling.md)
    workers: Annotated[int, BeforeValidator(_workers), Field(ge=1, le=64)] = 1

    @model_validator(mode="after")
    def _workers_fit(self) -> Config:
        from rsu.ops.shards import config_issues, resolve_count

        found = Problems()
        for path, reason in config_issues(self, resolve_count(self.workers)):
            found.add(path, reason)
        found.raise_any()
        return self

    @model_validator(mode="before")
    @classmethod
    def _station_fills_in(cls, data: Any) -> Any:
        """The RSU position (and MQTT source) of the station, for the entries that do not give their own."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        station = _station_or_default(data)
        entries = data.get("transports", _default_transports())
        if isinstance(entries, list):
            data["transports"] = [_with_station(entry, station) for entry in entries]
        integrations = data.get("integrations")
        if isinstance(integrations, dict) and isinstance(integrations.get("ntrip"), dict):
            ntrip = {
                "latitude": station.position.latitude,
                "longitude": station.position.longitude,
                **integrations["ntrip"],
            }
            data["integrations"] = {**integrations, "ntrip": ntrip}
        return data

    @field_validator("transports")
    @classmethod
    def _names_once(cls, entries: list[Any]) -> list[Any]:
        found = Problems()
        names: dict[str, int] = {}
        for i, cfg in enumerate(entries):
            if cfg.name in names:
                found.add(f"[{i}].name", f"{cfg.name!r} is already the name of transports[{names[cfg.name]}]")
            names.setdefault(cfg.name, i)
        found.raise_any()
        return entries

    # derived paths ------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        if self.state_dir is not None:
            return self.state_dir.expanduser()
        env = os.environ.get("STATE_DIRECTORY")
        if env:
            return Path(env.split(":")[0])
        return Path.home() / ".local" / "state" / "rsu"

    @property
    def pki_path(self) -> Path:
        return (self.security.pki_dir or self.state_path / "pki").expanduser()

    @property
    def trust_path(self) -> Path:
        return (self.security.trust_dir or self.pki_path).expanduser()

    @property
    def tickets_path(self) -> Path:
        return (self.security.tickets_dir or self.pki_path / "at").expanduser()


def _with_station(entry: Any, station: Station) -> Any:
    if not isinstance(entry, dict):
        return entry
    filled = {"latitude": station.position.latitude, "longitude": station.position.longitude, **entry}
    if entry.get("type") == "mqtt":
        filled.setdefault("source", f"rsu_{station.id}")
    return filled


def transport_configs(config: Config) -> list[tuple[str, Any]]:
    """(type, transport config object) per entry, as validated (the station filled in position and source)."""
    return [(cfg.type, cfg) for cfg in config.transports]


def integrations_config(config: Config) -> IntegrationsConfig:
    """The integrations section as rsu.integrations' config object (the station filled in the RSU position)."""
    return config.integrations


def parse(data: Any, source: str | None = None) -> Config:
    """Validate parsed YAML (a mapping) into a Config; ConfigError lists every issue of every section."""
    return validate(Config, data, source)


def _station_or_default(data: Any) -> Station:
    try:
        return Station.model_validate(data.get("station") or {}) if isinstance(data, dict) else Station()
    except Exception:
        return Station()


def load(path: str | Path | None, overrides: typing.Sequence[str] = ()) -> Config:
    """The configuration from ``path``, or the embedded default when ``path`` is None, with the
    ``PATH=VALUE`` overrides of ``rsu run --set`` applied on top (see :func:`apply_overrides`)."""
    data, source = ({}, "embedded default") if path is None else (load_yaml_file(path) or {}, str(path))
    if not overrides:
        return parse(data, source)
    data, issues = apply_overrides(data, overrides)
    try:
        config = parse(data, source)
    except ConfigError as e:
        issues.extend(e.issues)
    if issues:
        raise ConfigError(issues, source)
    return config


_OVERRIDE_PATH = re.compile(r"[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*|\[\d+\])*")
_OVERRIDE_PART = re.compile(r"\.?([A-Za-z_][\w-]*)|\[(\d+)\]")


def apply_overrides(data: Any, overrides: typing.Sequence[str]) -> tuple[Any, list[ConfigIssue]]:
    """A copy of the parsed YAML ``data`` with each ``PATH=VALUE`` set, and every override that could
    not be applied (reported together with the validation's own issues).

    PATH is written as the error messages write it (``api.port``, ``transports[0].group``); VALUE
    is read as YAML (``8302`` is a number, ``'8302'`` a string). A missing section is created;
    ``transports[0]`` of a file without a ``transports`` list is the default GN-UDP entry."""
    if not isinstance(data, dict):
        return data, [ConfigIssue("", "--set needs a mapping at the top level of the file")]
    issues: list[ConfigIssue] = []
    for item in overrides:  # each on a copy: an override that fails leaves nothing behind
        trial = copy.deepcopy(data)
        issue = _apply_override(trial, item)
        if issue is None:
            data = trial
        else:
            issues.append(issue)
    return data, issues


def _apply_override(data: dict[str, Any], item: str) -> ConfigIssue | None:
    path, sep, text = item.partition("=")
    path = path.strip()
    if not sep or not _OVERRIDE_PATH.fullmatch(path):
        return ConfigIssue(
            path or item,
            f"--set expects PATH=VALUE such as api.port=8302 or transports[0].group=239.1.2.3, found {item!r}",
        )
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        return ConfigIssue(path, f"--set value is not YAML: {str(e).splitlines()[0]}")
    keys = [name if name else int(index) for name, index in _OVERRIDE_PART.findall(path)]
    node: Any = data
    for depth, key in enumerate(keys):
        here = format_path(tuple(keys[: depth + 1]))
        if isinstance(key, int) and not isinstance(node, list):
            return ConfigIssue(here, "not a list")
        if isinstance(key, int) and key >= len(node):
            return ConfigIssue(here, f"no such entry (the list has {len(node)})")
        if isinstance(key, str) and not isinstance(node, dict):
            return ConfigIssue(here, "cannot set a key inside a value that is not a mapping")
        if depth == len(keys) - 1:
            node[key] = value
            return None
        if isinstance(key, str) and key not in node:  # create it; a top-level list starts as its default
            default = _default_transports() if (depth, key) == (0, "transports") else []
            node[key] = {} if not isinstance(keys[depth + 1], int) else default
        node = node[key]
    return None

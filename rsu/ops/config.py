"""The daemon's configuration: one YAML file, validated as a whole (see config_core for the error form).

Sections: ``station`` (id, position), ``state_dir``, ``security``, ``services``, ``transports``,
``integrations``, ``api``, ``logging``. Every section has defaults, so an empty file (or no file:
:data:`EMBEDDED_DEFAULT`) runs a working RSU on loopback with a local test PKI. The documented,
commented example is ``config/rsu.example.yaml``.

Transport entries are validated by the transport layer's own config classes
(``rsu.transports.config``), with their errors reported under ``transports[i].field`` like
everything else. Secrets are never inline: MQTT passwords come from ``password_file``,
private keys from the PKI directory.
"""

from __future__ import annotations

import copy
import os
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from rsu.api.auth_config import AuditSettings, AuthSettings, TlsSettings, host_problem

from rsu.ops.config_core import (ConfigError, ConfigIssue, duration, format_path, load_yaml_file,
                                   parse_duration, validate)
from rsu.pki.config import PkiClientSection

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


class SecurityLimits(_Section):
    """Bounds on what other stations can make the security entity keep (rsu.limits)."""

    held_frames: int = Field(64, ge=0, le=100_000, description="frames held for an unknown signer (0: none)")
    hold_seconds: Duration = Field(2.0, le=60, description="how long a frame waits for its signer's certificate")
    p2pcd_per_frame: int = Field(8, ge=0, le=64, description="HashedId3s one outgoing message asks for")
    p2pcd_pending: int = Field(32, ge=1, le=100_000, description="certificate requests waiting to be sent")
    p2pcd_max_age: Duration = Field(10.0, le=3600, description="a certificate request not sent by then is forgotten")
    certificate_cache: int = Field(4096, ge=16, le=1_000_000, description="verified certificates remembered")
    replay_entries: int = Field(65536, ge=16, le=10_000_000, description="accepted messages remembered for "
                                                                          "replay detection")


class Security(_Section):
    enabled: bool = True
    pki_dir: Path | None = None  # default: <state_dir>/pki
    create_test_pki: bool = True  # create a local test PKI in pki_dir when it holds none
    test_pki_at_hours: int = Field(168, ge=1, le=8760)
    trust_dir: Path | None = None  # root/AA certificates; default: pki_dir
    tickets_dir: Path | None = None  # AT certificates + private keys; default: <pki_dir>/at
    rotation_margin: duration(0, 7 * 86400) = 3600.0  # at most a week: ATs are valid for about that long
    certificate_interval: duration(0, 60) = 1.0  # 0 = the full certificate in every message
    max_age: duration(0.05, 86400) = 30.0
    max_future: duration(0, 600) = 2.0
    accept_unsecured: bool = False  # deliver unsigned received messages (test benches only)
    limits: SecurityLimits = SecurityLimits()


class Services(_Section):
    ivi_provider: Provider = Provider()
    rules: dict[str, Any] = Field(default_factory=dict)  # rsu.services.defaults.ServiceRules overrides
    message_defaults: dict[str, dict[str, Any]] = Field(default_factory=dict)


class Api(_Section):
    host: str = "127.0.0.1"  # loopback unless clients authenticate: api_issues()
    port: int = Field(8301, ge=0, le=65535, description="0 = any free port")
    max_connections: int = Field(256, ge=1, le=16384)
    header_timeout_s: duration(0.5, 300) = 10.0
    idle_timeout_s: duration(1, 3600) = 60.0

    tls: TlsSettings | None = None  # rsu.api.auth_config
    auth: AuthSettings = AuthSettings()
    audit: AuditSettings = AuditSettings()

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


def _default_transports() -> list[dict[str, Any]]:
    return [{"type": "gn-udp", "name": "gn"}]


class Config(_Section):
    station: Station = Station()
    state_dir: Path | None = None  # default: $STATE_DIRECTORY, else ~/.local/state/rsu
    security: Security = Security()
    services: Services = Services()
    transports: list[dict[str, Any]] = Field(default_factory=_default_transports)
    integrations: dict[str, Any] = Field(default_factory=dict)
    api: Api = Api()
    logging: Logging = Logging()
    pki: PkiClientSection | None = None  # TS 102 941 PKI client (rsu.pki.config); absent: none

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


TRANSPORT_TYPES = ("gn-udp", "mqtt")


def transport_configs(config: Config) -> list[tuple[str, Any]]:
    """(type, transport config object) per entry; the station fills in position and MQTT source."""
    return [_transport(i, entry, config.station) for i, entry in enumerate(config.transports)]


def _transport(i: int, entry: Any, station: Station) -> tuple[str, Any]:
    from rsu.transports.config import GnUdpConfig, MqttConfig

    prefix = f"transports[{i}]."
    if not isinstance(entry, dict):
        raise ValueError(f"transports[{i}]: expected a mapping with a type, found {entry!r}")
    data = dict(entry)
    kind = data.pop("type", None)
    data.setdefault("latitude", station.position.latitude)
    data.setdefault("longitude", station.position.longitude)
    if kind == "gn-udp":
        return kind, GnUdpConfig.from_dict(data, prefix)
    if kind == "mqtt":
        data.setdefault("source", f"rsu_{station.id}")
        return kind, MqttConfig.from_dict(data, prefix)
    raise ValueError(f"{prefix}type: expected one of {', '.join(TRANSPORT_TYPES)}, found {kind!r}")


def transport_issues(entries: Any, station: Station) -> list[ConfigIssue]:
    """Every transport entry checked on its own, so all broken entries are reported at once."""
    from rsu.transports.config import ConfigError as TransportConfigError

    if not isinstance(entries, list):
        return []  # the schema reports the wrong type
    issues: list[ConfigIssue] = []
    names: dict[str, int] = {}
    for i, entry in enumerate(entries):
        try:
            _, cfg = _transport(i, entry, station)
        except (TransportConfigError, ValueError, TypeError) as e:
            path, sep, message = str(e).partition(": ")
            issues.append(ConfigIssue(path, message) if sep else ConfigIssue(f"transports[{i}]", str(e)))
            continue
        if cfg.name in names:
            issues.append(ConfigIssue(f"transports[{i}].name",
                                      f"{cfg.name!r} is already the name of transports[{names[cfg.name]}]"))
        names.setdefault(cfg.name, i)
    return issues


def api_issues(data: Any) -> list[ConfigIssue]:
    """``api.host``: loopback unless clients must authenticate (rsu.api.auth_config.host_problem); checked
    even when other api settings are wrong, so that every error is reported at once."""
    api = data.get("api") if isinstance(data, dict) else None
    if not isinstance(api, dict) or not isinstance(api.get("host"), str):
        return []  # the default, or the schema reports the wrong type
    try:
        tls = TlsSettings.model_validate(api["tls"]) if api.get("tls") is not None else None
        auth = AuthSettings.model_validate(api.get("auth") or {})
    except ValidationError:
        return []  # the schema reports it
    problem = host_problem(api["host"], tls, auth)
    return [ConfigIssue("api.host", problem)] if problem else []


def service_issues(data: Any) -> list[ConfigIssue]:
    """``services.rules`` / ``services.message_defaults`` checked as the service layer checks them (unknown
    keys, types, ranges, repetition bounds: rsu.services.defaults), every problem at once."""
    from rsu.services.defaults import message_default_issues, rule_issues

    services = data.get("services") if isinstance(data, dict) else None
    if not isinstance(services, dict):
        return []  # absent, or the schema reports the wrong type
    rules, defaults = services.get("rules"), services.get("message_defaults")
    found = rule_issues(rules, "services.rules") if isinstance(rules, dict) else []
    if isinstance(defaults, dict):
        found += message_default_issues(defaults, "services.message_defaults")
    return [ConfigIssue(path, message) for path, message in found]


def integrations_config(config: Config):
    """The integrations section as rsu.integrations' config object; the station fills in the RSU position."""
    return _integrations(config.integrations, config.station)


def _integrations(data: Any, station: Station):
    from rsu.integrations.config import IntegrationsConfig

    data = dict(data or {})
    ntrip = data.get("ntrip")
    if isinstance(ntrip, dict):
        ntrip = dict(ntrip)
        ntrip.setdefault("latitude", station.position.latitude)
        ntrip.setdefault("longitude", station.position.longitude)
        data["ntrip"] = ntrip
    config = IntegrationsConfig.from_dict(data, "integrations.")
    config.validate("integrations.")
    return config


def integration_issues(data: Any, station: Station) -> list[ConfigIssue]:
    """The integrations section checked by rsu.integrations' own config classes."""
    from rsu.integrations.config import ConfigError as IntegrationConfigError

    if data is not None and not isinstance(data, dict):
        return []  # the schema reports the wrong type
    try:
        _integrations(data, station)
    except (IntegrationConfigError, ValueError, TypeError) as e:
        path, sep, message = str(e).partition(": ")
        return [ConfigIssue(path, message) if sep else ConfigIssue("integrations", str(e))]
    return []


def parse(data: Any, source: str | None = None) -> Config:
    """Validate parsed YAML (a mapping) into a Config; ConfigError lists every issue of every section."""
    issues: list[ConfigIssue] = []
    config: Config | None = None
    try:
        config = validate(Config, data, source)
    except ConfigError as e:
        issues.extend(e.issues)
    station = config.station if config is not None else _station_or_default(data)
    raw = data.get("transports", _default_transports()) if isinstance(data, dict) else None
    issues.extend(transport_issues(raw, station))
    issues.extend(service_issues(data))
    issues.extend(api_issues(data))
    if isinstance(data, dict):
        issues.extend(integration_issues(data.get("integrations"), station))
    if issues:
        raise ConfigError(issues, source)
    assert config is not None
    return config


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
        return ConfigIssue(path or item, "--set expects PATH=VALUE such as api.port=8302 or "
                                         f"transports[0].group=239.1.2.3, found {item!r}")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        return ConfigIssue(path, f"--set value is not YAML: {str(e).splitlines()[0]}")
    keys = [name if name else int(index) for name, index in _OVERRIDE_PART.findall(path)]
    node: Any = data
    for depth, key in enumerate(keys):
        here = format_path(tuple(keys[:depth + 1]))
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
            field = Config.model_fields.get(key) if depth == 0 else None
            default = field.get_default(call_default_factory=True) if field is not None else None
            node[key] = ({} if not isinstance(keys[depth + 1], int)
                         else copy.deepcopy(default) if isinstance(default, list) else [])
        node = node[key]
    return None

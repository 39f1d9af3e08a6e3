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

import os
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from rsu.ops.config_core import ConfigError, ConfigIssue, load_yaml_file, parse_duration, validate
from rsu.pki.config import PkiClientSection

Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Position(_Section):
    latitude: float = Field(44.837592, ge=-90, le=90, description="degrees, WGS 84")
    longitude: float = Field(-0.579431, ge=-180, le=180, description="degrees, WGS 84")
    altitude_m: float | None = None


class Station(_Section):
    id: int = Field(3120101, ge=0, le=4294967295, description="ItsPduHeader stationID of what we send")
    position: Position = Position()


class Provider(_Section):
    country: str = Field("FR", pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2, coded in ITA2")
    issuer: int = Field(57, ge=0, le=16383)  # matches config/examples/ivim-speed-limit.json


class Security(_Section):
    enabled: bool = True
    pki_dir: Path | None = None  # default: <state_dir>/pki
    create_test_pki: bool = True  # create a local test PKI in pki_dir when it holds none
    test_pki_at_hours: int = Field(168, ge=1, le=8760)
    trust_dir: Path | None = None  # root/AA certificates; default: pki_dir
    tickets_dir: Path | None = None  # AT certificates + private keys; default: <pki_dir>/at
    rotation_margin: Duration = 3600.0
    certificate_interval: Duration = 1.0
    max_age: Duration = 30.0
    max_future: Duration = 2.0
    accept_unsecured: bool = False  # deliver unsigned received messages (test benches only)


class Services(_Section):
    ivi_provider: Provider = Provider()
    rules: dict[str, Any] = Field(default_factory=dict)  # rsu.services.defaults.ServiceRules overrides
    message_defaults: dict[str, dict[str, Any]] = Field(default_factory=dict)


class Api(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8301, ge=0, le=65535)


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


def _type_ok(value: Any, hint: Any) -> bool:
    for t in typing.get_args(hint) or (hint,):
        if t is type(None) and value is None:
            return True
        if t is bool and isinstance(value, bool):
            return True
        if t in (int, float, str) and isinstance(value, (int, float) if t is float else t) \
                and not isinstance(value, bool):
            return True
    return False


def service_issues(data: Any) -> list[ConfigIssue]:
    """``services.rules`` / ``services.message_defaults`` checked as the service layer will use them
    (unknown keys, value types, then the layer's own checks), so check-config catches what would
    otherwise stop the daemon at start."""
    from dataclasses import fields

    from rsu.services.defaults import MESSAGE_DEFAULTS, MessageDefaults, ServiceRules

    services = data.get("services") if isinstance(data, dict) else None
    if not isinstance(services, dict):
        return []  # absent, or the schema reports the wrong type
    rules, defaults = services.get("rules"), services.get("message_defaults")
    issues: list[ConfigIssue] = []
    checks = [("services.rules", rules, ServiceRules)] if isinstance(rules, dict) else []
    if isinstance(defaults, dict):
        for name, values in defaults.items():
            if name not in MESSAGE_DEFAULTS:
                issues.append(ConfigIssue(f"services.message_defaults.{name}",
                                          f"not a message type (expected one of: {', '.join(MESSAGE_DEFAULTS)})"))
            elif isinstance(values, dict):
                checks.append((f"services.message_defaults.{name}", values, MessageDefaults))
    for path, values, cls in checks:
        hints = typing.get_type_hints(cls)
        known = [f.name for f in fields(cls) if f.name != "kind"]
        for key, value in values.items():
            if key not in known:
                issues.append(ConfigIssue(f"{path}.{key}", f"unknown setting (expected one of: {', '.join(known)})"))
            elif not _type_ok(value, hints[key]):
                expected = " or ".join("null" if t is type(None) else t.__name__
                                       for t in typing.get_args(hints[key]) or (hints[key],))
                issues.append(ConfigIssue(f"{path}.{key}", f"expected {expected}, found {value!r}"))
    if not issues:
        from rsu.services.layer import _check_message_defaults, _rules

        for path, value, check in (("services.rules", rules, _rules),
                                   ("services.message_defaults", defaults, _check_message_defaults)):
            if isinstance(value, dict):
                try:
                    check(value)
                except (ValueError, TypeError) as e:
                    issues.append(ConfigIssue(path, str(e)))
    return issues


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


def load(path: str | Path | None) -> Config:
    """The configuration from ``path``, or the embedded default when ``path`` is None."""
    if path is None:
        return parse({}, "embedded default")
    return parse(load_yaml_file(path) or {}, str(path))

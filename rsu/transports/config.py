"""Configuration of the transports: dataclasses with defaults and a ``validate()`` that names the field.

``from_dict`` builds a config from the (YAML) mapping and rejects unknown keys by name, so a
misspelt option never silently does nothing. Paths are checked for existence at ``validate()``
time; nothing is opened here.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsu import catalog
from rsu.secretfile import read_secret_file
from rsu.transports.ethernet import parse_mac


class ConfigError(ValueError):
    """A transport configuration error; the message starts with the field name."""


def _from_dict(cls, data: dict[str, Any] | None, prefix: str):
    data = dict(data or {})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown option (known: {', '.join(sorted(names))})")
    for key, value in list(data.items()):
        if isinstance(value, list):
            data[key] = tuple(value)
    cfg = cls(**data)
    cfg.validate(prefix)
    return cfg


def _check_position(prefix: str, lat: Any, lon: Any) -> None:
    if lat is None or lon is None:
        raise ConfigError(f"{prefix}latitude/longitude: the RSU position is required")
    for name, v, lim in (("latitude", lat, 90.0), ("longitude", lon, 180.0)):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or abs(v) > lim:
            raise ConfigError(f"{prefix}{name}: {v!r} is not a number within ±{lim:g} degrees")


def _check_int(prefix: str, name: str, v: Any, lo: int, hi: int) -> None:
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ConfigError(f"{prefix}{name}: {v!r} is not an integer within {lo}..{hi}")


SECRET_FILE_FIELDS = frozenset({"password_file", "key_file"})


def _check_file(prefix: str, name: str, v: Any) -> None:
    if v is None:
        return
    if not isinstance(v, (str, Path)) or not Path(v).is_file():
        # a password pasted where its file's path belongs must not be echoed into logs or terminals
        shown = "the value given" if name in SECRET_FILE_FIELDS else str(v)
        raise ConfigError(f"{prefix}{name}: {shown} is not a readable file")


@dataclass
class GnUdpConfig:
    """GeoNetworking + BTP-B over UDP (Ethernet II header + GN packet in each datagram).

    ``group`` is the IPv4 multicast group, joined on ``interface`` (Linux ``ip_mreqn``); every
    station sends to and listens on ``group:port``. The RSU position, the GN address fields and
    the pcap path are here too; ``mac=None`` means a random locally administered MAC per start.
    """

    name: str = "gn"
    default: bool = True  # used when DisseminationParams.transports is empty
    group: str = "239.118.122.97"
    port: int = 8947
    interface: str = "lo"
    ttl: int = 1  # multicast TTL
    multicast_loop: bool = True  # needed for other stations on this host; own frames are filtered by MAC
    latitude: float | None = None  # RSU position (degrees, WGS 84): the long position vector
    longitude: float | None = None
    position_accurate: bool = True  # PAI bit
    mac: str | None = None  # GN address MID and Ethernet source; None = random locally administered
    station_type: int = 15  # roadSideUnit
    manual_address: bool = True  # GN_ADDR M bit: address configured, not auto-generated
    secured: bool = True  # send NH=secured packets (needs the signing function)
    check_destination_area: bool = True  # drop GeoBroadcasts whose area does not contain the RSU
    accept_ports: tuple[int, ...] | None = None  # BTP ports delivered up; None = every catalog port
    pcap: str | None = None  # write every sent and received frame to this pcap file
    duplicate_entries: int = 4096  # bound of the GN duplicate list ((source, SN) pairs remembered)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, prefix: str = "") -> "GnUdpConfig":
        return _from_dict(cls, data, prefix)

    def validate(self, prefix: str = "") -> None:
        p = prefix
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"{p}name: must be a non-empty string")
        try:
            addr = ipaddress.IPv4Address(self.group)
        except (ipaddress.AddressValueError, ValueError):
            raise ConfigError(f"{p}group: {self.group!r} is not an IPv4 address") from None
        if not addr.is_multicast:
            raise ConfigError(f"{p}group: {self.group} is not an IPv4 multicast address (224.0.0.0/4)")
        _check_int(p, "port", self.port, 1, 65535)
        _check_int(p, "ttl", self.ttl, 0, 255)
        try:
            socket.if_nametoindex(self.interface)
        except (OSError, TypeError, ValueError):
            raise ConfigError(f"{p}interface: no network interface named {self.interface!r}") from None
        _check_position(p, self.latitude, self.longitude)
        if self.mac is not None:
            try:
                mac = parse_mac(self.mac)
            except ValueError as e:
                raise ConfigError(f"{p}mac: {e}") from None
            if mac[0] & 0x01:
                raise ConfigError(f"{p}mac: {self.mac} is a group (multicast) address")
        _check_int(p, "station_type", self.station_type, 0, 31)
        _check_int(p, "duplicate_entries", self.duplicate_entries, 16, 1_000_000)
        if self.accept_ports is not None:
            for port in self.accept_ports:
                _check_int(p, "accept_ports", port, 0, 65535)
        if self.pcap is not None:
            parent = Path(self.pcap).expanduser().resolve().parent
            if not parent.is_dir():
                raise ConfigError(f"{p}pcap: directory {parent} does not exist")

    @property
    def ports(self) -> frozenset[int]:
        return frozenset(self.accept_ports) if self.accept_ports is not None else frozenset(catalog.BY_BTP_PORT)


DEFAULT_TYPE_NAMES = {m.name: m.name for m in catalog.MESSAGES}  # spatem, mapem, ivim, srem, ssem, rtcmem


@dataclass
class MqttConfig:
    """MQTT v5 to a broker (indirect delivery), topic scheme of the C-ITS MQTT deployments::

        {prefix}/{publish_queue|subscribe_queue}/{suffix}/{type}/{source}/{q1}/{q2}/.../{qN}
    """

    name: str = "mqtt"
    default: bool = True
    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str | None = None  # None: "{source}"
    keepalive: int = 30
    # TLS and authentication
    tls: bool = False  # also implied by ca_file / cert_file
    ca_file: str | None = None
    cert_file: str | None = None  # client certificate (PEM)
    key_file: str | None = None
    username: str | None = None
    password_file: str | None = None  # the password is read from this file (first line)
    # topics
    prefix: str = "default"  # may contain "/"; "" gives a "/"-rooted topic as in its-client
    publish_queue: str = "inQueue"
    subscribe_queue: str = "outQueue"  # with a plain broker (no inQueue->outQueue copier) use "inQueue"
    suffix: str = "v2x"
    source: str | None = None  # our station id / uuid in topics; None: "rsu_{hostname}"
    type_names: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_TYPE_NAMES))
    quadkey_depth: int = 22  # digits (topic levels) in published topics
    latitude: float | None = None  # RSU position: quadkey when neither area nor reference point is given
    longitude: float | None = None
    subscribe: tuple[str, ...] = ("srem",)  # message types received
    subscribe_depth: int = 16  # quadkey digits of the subscribed region (0 = no geographic filter)
    subscribe_neighbours: bool = True  # also the 8 tiles around the RSU's tile
    # publications
    qos: int = 1
    payload_format: str = "secured"  # "secured" (the 1609.2 bytes), "json" (envelope) or "its-client" (v2 JSON)
    expiry_s: dict[str, float] = field(default_factory=dict)  # per type; default: the message lifetime
    retain_types: tuple[str, ...] = ("mapem", "ivim")  # published retained (with expiry)
    queue_max: int = 1000  # publications held while disconnected
    # reconnect backoff (seconds)
    backoff_initial: float = 0.5
    backoff_max: float = 30.0

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, prefix: str = "") -> "MqttConfig":
        if data and isinstance(data.get("type_names"), dict):
            data = {**data, "type_names": {**DEFAULT_TYPE_NAMES, **data["type_names"]}}
        return _from_dict(cls, data, prefix)

    def validate(self, prefix: str = "") -> None:
        p = prefix
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"{p}name: must be a non-empty string")
        if not isinstance(self.host, str) or not self.host:
            raise ConfigError(f"{p}host: must be a host name or address")
        _check_int(p, "port", self.port, 1, 65535)
        _check_int(p, "keepalive", self.keepalive, 1, 65535)
        for name in ("ca_file", "cert_file", "key_file", "password_file"):
            _check_file(p, name, getattr(self, name))
        if self.key_file and not self.cert_file:
            raise ConfigError(f"{p}key_file: given without cert_file")
        if self.password_file and not self.username:
            raise ConfigError(f"{p}password_file: given without username")
        for name in ("publish_queue", "subscribe_queue", "suffix"):
            _check_level(p, name, getattr(self, name))
        if not isinstance(self.prefix, str) or any(c in self.prefix for c in "+#\0"):
            raise ConfigError(f"{p}prefix: {self.prefix!r} must be a topic string without wildcards")
        if self.source is not None:
            _check_level(p, "source", self.source)
        unknown = sorted(set(self.type_names) - set(catalog.BY_NAME))
        if unknown:
            raise ConfigError(f"{p}type_names.{unknown[0]}: not a message type "
                              f"(expected {', '.join(catalog.BY_NAME)})")
        for kind, name in self.type_names.items():
            _check_level(p, f"type_names.{kind}", name)
        if len(set(self.type_names.values())) != len(self.type_names):
            raise ConfigError(f"{p}type_names: two message types share one topic name")
        _check_int(p, "quadkey_depth", self.quadkey_depth, 0, 31)
        _check_int(p, "subscribe_depth", self.subscribe_depth, 0, 31)
        _check_position(p, self.latitude, self.longitude)
        for name in self.subscribe:
            if name not in catalog.BY_NAME:
                raise ConfigError(f"{p}subscribe: {name!r} is not a message type")
        for name in self.retain_types:
            if name not in catalog.BY_NAME:
                raise ConfigError(f"{p}retain_types: {name!r} is not a message type")
        for name, v in self.expiry_s.items():
            if name not in catalog.BY_NAME:
                raise ConfigError(f"{p}expiry_s.{name}: not a message type")
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 < v <= 4294967295:
                raise ConfigError(f"{p}expiry_s.{name}: {v!r} is not a positive number of seconds")
        _check_int(p, "qos", self.qos, 0, 2)
        if self.payload_format not in ("secured", "json", "its-client"):
            raise ConfigError(f"{p}payload_format: {self.payload_format!r} (expected secured, json or its-client)")
        _check_int(p, "queue_max", self.queue_max, 1, 1_000_000)
        for name in ("backoff_initial", "backoff_max"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not 0 < v <= 3600:
                raise ConfigError(f"{p}{name}: {v!r} is not within 0..3600 s")
        if self.backoff_initial > self.backoff_max:
            raise ConfigError(f"{p}backoff_initial: larger than backoff_max")

    @property
    def use_tls(self) -> bool:
        return bool(self.tls or self.ca_file or self.cert_file)

    @property
    def source_id(self) -> str:
        return self.source or f"rsu_{_topic_safe(socket.gethostname())}"

    def read_password(self) -> str | None:
        return read_secret_file(self.password_file, error=ConfigError) if self.password_file else None


def _topic_safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text) or "rsu"


def _check_level(prefix: str, name: str, v: Any) -> None:
    if not isinstance(v, str) or not v or any(c in v for c in "/+#\0"):
        raise ConfigError(f"{prefix}{name}: {v!r} must be one non-empty topic level (no / + #)")

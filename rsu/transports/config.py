"""Configuration of the transports: pydantic dataclasses with defaults, every value checked by name.

A transport entry of the file (``transports[i]``) is validated by these classes as part of the whole
configuration (:mod:`rsu.ops.config`), every error at once, unknown keys refused by name so a misspelt
option never silently does nothing. Built directly (tests, tools) they check their values at construction;
``from_dict(data, prefix)`` reads a mapping and ``validate(prefix)`` checks a built one again, the RSU
position included. Errors are :class:`rsu.ops.config_core.ConfigError`. Paths are checked for
existence; nothing is opened here.
"""

from __future__ import annotations

import ipaddress
import math
import socket
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ValidationInfo, model_validator

from rsu import catalog
from rsu.ops.config_core import ConfigError, LayerConfig, Problems, check, config_dataclass, ints, is_complete
from rsu.secretfile import read_secret_file
from rsu.transports.ethernet import parse_mac

__all__ = ["ConfigError", "GnUdpConfig", "MqttConfig"]


def _name(v: Any) -> Any:
    if not isinstance(v, str) or not v:
        raise ValueError("must be a non-empty string")
    return v


def _degrees(limit: float) -> Any:
    """Check of an optional position in degrees within ±limit."""

    def ok(v: Any) -> Any:
        if v is None:
            return v
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or abs(v) > limit:
            raise ValueError(f"{v!r} is not a number within ±{limit:g} degrees")
        return float(v)

    return check(ok)


Latitude = Annotated[float | None, _degrees(90.0)]
Longitude = Annotated[float | None, _degrees(180.0)]
Name = Annotated[str, check(_name)]


def _position(found: Problems, lat: Any, lon: Any, info: ValidationInfo | None) -> None:
    if (info is None or is_complete(info)) and (lat is None or lon is None):
        found.add("latitude/longitude", "the RSU position is required")


SECRET_FILE_FIELDS = frozenset({"password_file", "key_file"})


def _file(name: str) -> Any:
    """Check of an optional path naming a readable file (a secret's file name is not echoed)."""

    def ok(v: Any) -> Any:
        if v is None:
            return v
        if not isinstance(v, (str, Path)) or not Path(v).is_file():
            # a password pasted where its file's path belongs must not be echoed into logs or terminals
            shown = "the value given" if name in SECRET_FILE_FIELDS else str(v)
            raise ValueError(f"{shown} is not a readable file")
        return str(v)

    return check(ok)


def _group(v: Any) -> Any:
    try:
        addr = ipaddress.IPv4Address(v)
    except (ipaddress.AddressValueError, ValueError):
        raise ValueError(f"{v!r} is not an IPv4 address") from None
    if not addr.is_multicast:
        raise ValueError(f"{v} is not an IPv4 multicast address (224.0.0.0/4)")
    return v


def _interface(v: Any) -> Any:
    try:
        socket.if_nametoindex(v)
    except (OSError, TypeError, ValueError):
        raise ValueError(f"no network interface named {v!r}") from None
    return v


def _mac(v: Any) -> Any:
    if v is None:
        return v
    mac = parse_mac(v)  # ValueError names the problem
    if mac[0] & 0x01:
        raise ValueError(f"{v} is a group (multicast) address")
    return v


def _ports(v: Any) -> Any:
    if v is None:
        return v
    for port in v:
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise ValueError(f"{port!r} is not an integer within 0..65535")
    return tuple(v)


def _pcap(v: Any) -> Any:
    if v is not None:
        parent = Path(v).expanduser().resolve().parent
        if not parent.is_dir():
            raise ValueError(f"directory {parent} does not exist")
    return v


@config_dataclass
class GnUdpConfig(LayerConfig):
    """GeoNetworking + BTP-B over UDP (Ethernet II header + GN packet in each datagram).

    ``group`` is the IPv4 multicast group, joined on ``interface`` (Linux ``ip_mreqn``); every
    station sends to and listens on ``group:port``. The RSU position, the GN address fields and
    the pcap path are here too; ``mac=None`` means a random locally administered MAC per start.
    """

    name: Name = "gn"
    default: bool = True  # used when DisseminationParams.transports is empty
    group: Annotated[str, check(_group)] = "239.118.122.97"
    port: Annotated[int, ints(1, 65535)] = 8947
    interface: Annotated[str, check(_interface)] = "lo"
    ttl: Annotated[int, ints(0, 255)] = 1  # multicast TTL
    multicast_loop: bool = True  # needed for other stations on this host; own frames are filtered by MAC
    latitude: Latitude = None  # RSU position (degrees, WGS 84): the long position vector
    longitude: Longitude = None
    position_accurate: bool = True  # PAI bit
    mac: Annotated[str | None, check(_mac)] = None  # GN address MID and Ethernet source; None = random LAA
    station_type: Annotated[int, ints(0, 31)] = 15  # roadSideUnit
    manual_address: bool = True  # GN_ADDR M bit: address configured, not auto-generated
    secured: bool = True  # send NH=secured packets (needs the signing function)
    check_destination_area: bool = True  # drop GeoBroadcasts whose area does not contain the RSU
    accept_ports: Annotated[tuple[int, ...] | None, check(_ports)] = None  # BTP ports delivered up; None = all
    pcap: Annotated[str | None, check(_pcap)] = None  # write every sent and received frame to this pcap file
    duplicate_entries: Annotated[int, ints(16, 1_000_000)] = 4096  # bound of the GN duplicate list ((source, SN) pairs)
    type: Literal["gn-udp"] = "gn-udp"  # the transports[i].type that selects this class

    @model_validator(mode="after")
    def _complete(self, info: ValidationInfo) -> GnUdpConfig:
        found = Problems()
        _position(found, self.latitude, self.longitude, info)
        found.raise_any()
        return self

    @property
    def ports(self) -> frozenset[int]:
        return frozenset(self.accept_ports) if self.accept_ports is not None else frozenset(catalog.BY_BTP_PORT)


DEFAULT_TYPE_NAMES = {m.name: m.name for m in catalog.MESSAGES}  # spatem, mapem, ivim, srem, ssem, rtcmem


def _host(v: Any) -> Any:
    if not isinstance(v, str) or not v:
        raise ValueError("must be a host name or address")
    return v


def _level(v: Any) -> Any:
    if not isinstance(v, str) or not v or any(c in v for c in "/+#\0"):
        raise ValueError(f"{v!r} must be one non-empty topic level (no / + #)")
    return v


Level = Annotated[str, check(_level)]


def _source(v: Any) -> Any:
    return v if v is None else _level(v)


def _prefix(v: Any) -> Any:
    if not isinstance(v, str) or any(c in v for c in "+#\0"):
        raise ValueError(f"{v!r} must be a topic string without wildcards")
    return v


def _type_names(v: Any) -> Any:
    if not isinstance(v, dict):
        return v  # the dict type reports it
    names = {**DEFAULT_TYPE_NAMES, **v}
    found = Problems()
    for kind in sorted(set(names) - set(catalog.BY_NAME)):
        found.add(str(kind), f"not a message type (expected {', '.join(catalog.BY_NAME)})")
    for kind, name in names.items():
        if kind in catalog.BY_NAME:
            try:
                _level(name)
            except ValueError as e:
                found.add(kind, str(e))
    if not found.items and len(set(names.values())) != len(names):
        found.add("", "two message types share one topic name")
    found.raise_any()
    return names


def _message_types(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        for name in v:
            if name not in catalog.BY_NAME:
                raise ValueError(f"{name!r} is not a message type")
        return tuple(v)
    return v


def _expiry(v: Any) -> Any:
    if not isinstance(v, dict):
        return v
    found = Problems()
    for name, seconds in v.items():
        if name not in catalog.BY_NAME:
            found.add(str(name), "not a message type")
        elif not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 < seconds <= 4294967295:
            found.add(str(name), f"{seconds!r} is not a positive number of seconds")
    found.raise_any()
    return v


def _payload_format(v: Any) -> Any:
    if v not in ("secured", "json", "its-client"):
        raise ValueError(f"{v!r} (expected secured, json or its-client)")
    return v


def _backoff(v: Any) -> Any:
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 < v <= 3600:
        raise ValueError(f"{v!r} is not within 0..3600 s")
    return v


@config_dataclass
class MqttConfig(LayerConfig):
    """MQTT v5 to a broker (indirect delivery), topic scheme of the C-ITS MQTT deployments::

    {prefix}/{publish_queue|subscribe_queue}/{suffix}/{type}/{source}/{q1}/{q2}/.../{qN}
    """

    name: Name = "mqtt"
    default: bool = True
    host: Annotated[str, check(_host)] = "127.0.0.1"
    port: Annotated[int, ints(1, 65535)] = 1883
    client_id: str | None = None  # None: "{source}"
    keepalive: Annotated[int, ints(1, 65535)] = 30
    # TLS and authentication
    tls: bool = False  # also implied by ca_file / cert_file
    ca_file: Annotated[str | None, _file("ca_file")] = None
    cert_file: Annotated[str | None, _file("cert_file")] = None  # client certificate (PEM)
    key_file: Annotated[str | None, _file("key_file")] = None
    username: str | None = None
    password_file: Annotated[str | None, _file("password_file")] = None  # the password: this file's first line
    # topics
    prefix: Annotated[str, check(_prefix)] = "default"  # may contain "/"; "" gives a "/"-rooted topic
    publish_queue: Level = "inQueue"
    subscribe_queue: Level = "outQueue"  # with a plain broker (no inQueue->outQueue copier) use "inQueue"
    suffix: Level = "v2x"
    source: Annotated[str | None, check(_source)] = None  # our station id / uuid in topics; None: "rsu_{hostname}"
    type_names: Annotated[dict[str, str], check(_type_names)] = field(
        default_factory=lambda: dict(DEFAULT_TYPE_NAMES)
    )  # message type -> topic level (defaults merged in)
    quadkey_depth: Annotated[int, ints(0, 31)] = 22  # digits (topic levels) in published topics
    latitude: Latitude = None  # RSU position: quadkey when neither area nor reference point is given
    longitude: Longitude = None
    subscribe: Annotated[tuple[str, ...], check(_message_types)] = ("srem",)  # message types received
    subscribe_depth: Annotated[int, ints(0, 31)] = 16  # quadkey digits of the subscribed region (0: no filter)
    subscribe_neighbours: bool = True  # also the 8 tiles around the RSU's tile
    # publications
    qos: Annotated[int, ints(0, 2)] = 1
    payload_format: Annotated[str, check(_payload_format)] = (
        "secured"  # "secured" (the 1609.2 bytes), "json" (envelope)
    )
    # or "its-client" (Orange its-client v2 JSON)
    expiry_s: Annotated[dict[str, float], check(_expiry)] = field(default_factory=dict)  # per type (default:
    # the message lifetime)
    retain_types: Annotated[tuple[str, ...], check(_message_types)] = ("mapem", "ivim")  # published retained
    queue_max: Annotated[int, ints(1, 1_000_000)] = 1000  # publications held while disconnected
    # reconnect backoff (seconds)
    backoff_initial: Annotated[float, check(_backoff)] = 0.5
    backoff_max: Annotated[float, check(_backoff)] = 30.0
    type: Literal["mqtt"] = "mqtt"  # the transports[i].type that selects this class

    @model_validator(mode="after")
    def _complete(self, info: ValidationInfo) -> MqttConfig:
        found = Problems()
        if self.key_file and not self.cert_file:
            found.add("key_file", "given without cert_file")
        if self.password_file and not self.username:
            found.add("password_file", "given without username")
        _position(found, self.latitude, self.longitude, info)
        if self.backoff_initial > self.backoff_max:
            found.add("backoff_initial", "larger than backoff_max")
        found.raise_any()
        return self

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

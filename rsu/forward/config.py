"""The ``forward:`` section: sinks towards the traffic centre, and the pre-signed forward endpoint.

Example (docs/operations.md "Forwarding to the centre")::

    forward:
      sinks:
        - type: mqtt
          name: centre
          host: tmc.example.org
          port: 8883
          ca_file: /etc/rsu/centre-ca.pem
          topic: "rsu/{station}/{service}/{message}"
          services: [tlc]            # only SREM/SSEM; absent: everything received
          envelope: true             # also the 1609.2 data as received (base64)
        - type: webhook
          name: archive
          url: https://archive.example.org/rsu
          token_file: /etc/rsu/archive.token
      presigned:
        transports: [mqtt]           # absent: every MQTT transport

Every sink has its own disk queue (``<state_dir>/forward/<name>.sqlite``) bounded by
``queue_max_items`` and ``queue_max_age``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rsu.ops.config_core import Seconds, within
from rsu.services.defaults import SERVICE_ALIASES

SINK_NAME = r"^[A-Za-z0-9_-]{1,40}$"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Sink(_Section):
    name: str = Field(pattern=SINK_NAME, description="metrics label and queue file name")
    services: list[str] | None = Field(
        None, description="tlm, rlt, ivi, tlc, gpc (or a message name); absent: every service"
    )
    psids: list[Annotated[int, Field(ge=0, le=0xFFFFFFFF)]] | None = Field(
        None, description="ITS-AIDs of the signer's permission; absent: any (unsigned messages only then)"
    )
    envelope: bool = Field(False, description="also send the secured data as received (base64)")
    format: Literal["rsu", "its-client"] = "rsu"
    queue_max_items: int = Field(100_000, ge=1, le=10_000_000)
    queue_max_age: Annotated[Seconds, within(1, 30 * 86400)] = 86400.0
    retry_initial: Annotated[Seconds, within(0.01, 60)] = 0.5
    retry_max: Annotated[Seconds, within(0.1, 3600)] = 30.0
    ca_file: Path | None = None
    cert_file: Path | None = None  # client certificate (mutual TLS)
    key_file: Path | None = None

    @field_validator("services")
    @classmethod
    def _services(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        bad = [s for s in v if s.lower() not in SERVICE_ALIASES]
        if bad:
            raise ValueError(
                f"unknown service {', '.join(map(repr, bad))} (expected one of "
                f"{', '.join(sorted(set(SERVICE_ALIASES.values())))} or a message name)"
            )
        return sorted({SERVICE_ALIASES[s.lower()] for s in v})

    @model_validator(mode="after")
    def _pairs(self):
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        for f in (
            self.ca_file,
            self.cert_file,
            self.key_file,
            getattr(self, "password_file", None),
            getattr(self, "token_file", None),
        ):
            if f is not None and not f.expanduser().is_file():
                raise ValueError(f"file not found: {f}")
        return self


class MqttSink(_Sink):
    type: Literal["mqtt"]
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    tls: bool = Field(False, description="TLS even without ca_file (system trust store)")
    topic: str = Field(
        "rsu/{station}/{service}/{message}",
        min_length=1,
        description="placeholders: {station}, {service}, {message}, {sink}",
    )
    qos: Literal[1, 2] = 1  # at-least-once: the broker acknowledges before the item leaves the queue
    inflight: int = Field(
        32,
        ge=1,
        le=1000,
        description="publications awaiting the broker's acknowledgement at once (a high round-trip time needs more)",
    )
    client_id: str | None = None
    username: str | None = None
    password_file: Path | None = None
    keepalive: int = Field(30, ge=5, le=3600)

    @field_validator("topic")
    @classmethod
    def _topic(cls, v: str) -> str:
        if "#" in v or "+" in v:
            raise ValueError("a publication topic has no wildcards")
        try:
            v.format(station="s", service="s", message="m", sink="k")
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"unknown placeholder {e} (expected station, service, message, sink)") from None
        return v


class WebhookSink(_Sink):
    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://[^\s/]+", description="POSTed one JSON message at a time")
    token_file: Path | None = Field(None, description="sent as 'Authorization: Bearer <token>'")
    timeout_s: Annotated[Seconds, within(0.1, 300)] = 10.0


Sink = Annotated[MqttSink | WebhookSink, Field(discriminator="type")]


class Presigned(_Section):
    transports: list[str] | None = Field(None, description="transport names; absent: every MQTT transport")
    max_repetitions: int = Field(3600, ge=1, le=1_000_000)
    min_interval: Annotated[Seconds, within(0.05, 3600)] = 0.1
    max_active: int = Field(64, ge=1, le=10_000, description="repeating pre-signed messages at once")


class ForwardSection(_Section):
    sinks: list[Sink] = Field(default_factory=list)
    presigned: Presigned = Presigned()

    @model_validator(mode="after")
    def _unique(self):
        names = [s.name for s in self.sinks]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"sink names must be unique: {', '.join(dup)}")
        return self

"""What a sink sends for a received-message event, sans-I/O: the filter, the queued record, the delivery.

Layer: takes IS_DataProviding events (``type: received``, as :meth:`rsu.services.layer.ServiceLayer.receive`
publishes them, with ``security.secured_data`` the 1609.2 data as received, hex) and gives bytes.

``rsu`` format (one JSON object per message)::

    {"id": "3120101-centre-42",          # station, sink, queue id: never reused, de-duplicate on it
     "station": 3120101,                 # the RSU that received it
     "message": "srem", "service": "tlc", "received_at": "...", "station_id": 2104711,
     "pdu": {...JER of the facilities PDU...},
     "security": {"its_aid": 140, "ssp": "...", "signer": "...", "verification": "ok"},
     "transport": {"transport": "gn", ...},
     "secured_data": "<base64 of the 1609.2 data>"}     # only with envelope: true

``its-client`` format: :func:`rsu.transports.itsclient.to_its_client` (the id travels in the MQTT user
property / HTTP header ``rsu-message-id`` only, since that format has no field for it).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from rsu.forward.config import MqttSink

ID_HEADER = "rsu-message-id"


@dataclass(frozen=True)
class Delivery:
    ident: str
    topic: str | None  # MQTT sinks
    payload: bytes


def matches(sink, event: dict) -> bool:
    """Whether ``sink`` (a sink config) takes ``event``."""
    if event.get("type") != "received":
        return False
    if sink.services is not None and event.get("service") not in sink.services:
        return False
    if sink.psids is not None and (event.get("security") or {}).get("its_aid") not in sink.psids:  # noqa: SIM103  one test per filter
        return False
    return True


def record(sink, event: dict, source: str, now_ms: int) -> bytes:
    """The bytes the sink's queue keeps for ``event`` (everything but the id, known once queued)."""
    security = dict(event.get("security") or {})
    secured = security.pop("secured_data", None)
    if sink.format == "its-client":
        from rsu import catalog
        from rsu.codec.facilities import get_codec
        from rsu.transports.itsclient import to_its_client

        body: dict[str, Any] = to_its_client(
            get_codec(), catalog.BY_NAME[event["message"]], event["pdu"], source=source, timestamp_ms=now_ms
        )
    else:
        # everything the services published (with what they added, e.g. the IVI collection state)
        # but the hub's own event id and type
        body = {k: v for k, v in event.items() if k not in ("id", "type", "security")}
        body["security"] = security
        if sink.envelope and secured:
            body["secured_data"] = base64.b64encode(bytes.fromhex(secured)).decode("ascii")
    meta = {"service": event.get("service"), "message": event.get("message")}
    return json.dumps({"meta": meta, "body": body}, separators=(",", ":"), ensure_ascii=False).encode()


def delivery(sink, seq: int, stored: bytes, station: int) -> Delivery:
    """What to send for the queued item ``seq``."""
    obj = json.loads(stored)
    ident = f"{station}-{sink.name}-{seq}"
    body = obj["body"]
    if sink.format == "rsu":
        body = {"id": ident, "station": station, **body}
    topic = None
    if isinstance(sink, MqttSink):
        meta = obj["meta"]
        topic = sink.topic.format(
            station=station,
            service=meta.get("service") or "unknown",
            message=meta.get("message") or "unknown",
            sink=sink.name,
        )
    return Delivery(ident, topic, json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode())

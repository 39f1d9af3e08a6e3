"""The one table of identifiers for the TS 103 301 infrastructure services.

Every number that identifies a message on the air lives here exactly once and is
used by the sender and the receiver alike: the ItsPduHeader messageID and
protocolVersion, the ITS-AID (PSID) that signs it, and the BTP-B destination port.
SSP bit layouts live beside the security code (``rsu.security.ssp``) and key
into this table by ``MessageKind.name``.

Sources and confidence (see ``docs`` in the README, section "Identifiers"):

* messageID, ITS-AID, BTP port: confirmed in the ETSI ASN.1 header comments,
  the ITS-AID registry (ISO TC204 / ETSI TS 102 965) and TS 103 248 port list.
* protocolVersion: our ASN.1 set is the "version2" one (ISO TS 19091 v2,
  ISO TS 19321 v2). Its PDU comments say SPATEM/MAPEM/IVIM/SREM/SSEM "shall be
  set to 2"; the RTCMEM module is still version 1. We send those numbers and
  decode only them: a version-1 SPATEM uses a different DSRC schema, and
  decoding it with the version-2 schema would silently give wrong values.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MessageKind:
    """One facilities message type (one row of the table)."""

    name: str  # lower-case short name used on the CLI, in the API and in config
    pdu: str  # ASN.1 type of the whole PDU (ItsPduHeader + body)
    module: str  # ASN.1 module that defines ``pdu``
    body: str  # name of the member after ``header`` in the PDU
    message_id: int  # ItsPduHeader.messageID
    protocol_version: int  # ItsPduHeader.protocolVersion that we send
    service: str  # TS 103 301 service entity
    its_aid: int  # ITS-AID / PSID of the signing authorization ticket
    btp_port: int  # BTP-B destination port
    # Dissemination bounds (the hard limits; a deployment may only narrow them, see
    # rsu.services.defaults): the most transmissions per second of one entry (for SPATEM: of one
    # intersection), and the longest repetition interval (None: the facility never repeats it).
    # TS 103 301 numbers were not seen: SPATEM 10 Hz is the common reading of TP TLM_GEN_RATE_BV_01;
    # the others are our readings, explained in docs/services.md.
    max_rate_hz: float = 10.0
    max_interval_s: float | None = 10.0

    @property
    def min_interval_s(self) -> float:
        """The shortest interval between two transmissions of one entry (1 / max_rate_hz)."""
        return 1.0 / self.max_rate_hz

    @property
    def accepted_versions(self) -> frozenset[int]:
        """protocolVersion values this build can decode (schema-compatible)."""
        return frozenset({self.protocol_version})


SPATEM = MessageKind("spatem", "SPATEM", "SPATEM-PDU-Descriptions", "spat", 4, 2, "TLM", 137, 2004,
                     max_rate_hz=10.0, max_interval_s=None)
MAPEM = MessageKind("mapem", "MAPEM", "MAPEM-PDU-Descriptions", "map", 5, 2, "RLT", 138, 2003,
                    max_rate_hz=10.0, max_interval_s=10.0)
IVIM = MessageKind("ivim", "IVIM", "IVIM-PDU-Descriptions", "ivi", 6, 2, "IVI", 139, 2006,
                   max_rate_hz=10.0, max_interval_s=10.0)
SREM = MessageKind("srem", "SREM", "SREM-PDU-Descriptions", "srm", 9, 2, "TLC", 140, 2007,
                   max_rate_hz=10.0, max_interval_s=10.0)
SSEM = MessageKind("ssem", "SSEM", "SSEM-PDU-Descriptions", "ssm", 10, 2, "TLC", 637, 2008,
                   max_rate_hz=10.0, max_interval_s=10.0)
RTCMEM = MessageKind("rtcmem", "RTCMEM", "RTCMEM-PDU-Descriptions", "rtcmc", 13, 1, "GPC", 540802, 2013,
                     max_rate_hz=10.0, max_interval_s=60.0)

MESSAGES: tuple[MessageKind, ...] = (SPATEM, MAPEM, IVIM, SREM, SSEM, RTCMEM)

BY_NAME: dict[str, MessageKind] = {m.name: m for m in MESSAGES}
BY_MESSAGE_ID: dict[int, MessageKind] = {m.message_id: m for m in MESSAGES}
BY_ITS_AID: dict[int, MessageKind] = {m.its_aid: m for m in MESSAGES}
BY_BTP_PORT: dict[int, MessageKind] = {m.btp_port: m for m in MESSAGES}

# ITS-AIDs of the TS 102 941 PKI messages (signed data exchanged with the PKI, never broadcast)
ITS_AID_CRL = 622  # certificate revocation list
ITS_AID_SCR = 623  # secured certificate request: enrolment and authorization requests/responses
ITS_AID_CTL = 624  # certificate trust list (ECTL, Root CA CTL)


def by_name(name: str) -> MessageKind:
    """Look a message kind up by its short name (case-insensitive); KeyError names the choices."""
    try:
        return BY_NAME[name.lower()]
    except KeyError:
        raise KeyError(f"unknown message type {name!r} (expected one of: {', '.join(BY_NAME)})") from None

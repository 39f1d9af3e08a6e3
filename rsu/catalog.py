"""The one table of identifiers for the TS 103 301 infrastructure services.

Every number that identifies a message on the air lives here exactly once and is
used by the sender and the receiver alike: the ItsPduHeader messageID and
protocolVersion, the ITS-AID (PSID) that signs it, the BTP-B destination port, the
BitmapSsp layout of its authorization tickets (:class:`SspSpec`; the logic that reads
and checks SSPs is :mod:`rsu.security.ssp`) and its default repetition interval (the
other dissemination defaults are :mod:`rsu.services.defaults`). Everything else in
``rsu`` derives these facts from here (``tests/test_catalog.py`` looks for restatements).

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
class Permission:
    """One permission bit of a BitmapSsp (octet 0 is the SSP version; bits are MSB first)."""

    name: str
    octet: int  # index into the SSP octets
    mask: int
    meaning: str


@dataclass(frozen=True)
class SspSpec:
    """The BitmapSsp layout of one message type's authorization tickets (see docs/ssp.md).

    The layouts follow the bit masks of a vanetza fork (about TS 103 301 V1.3.1), the ETSI TTCN ATS
    certificate profiles (Release 2) and the issue ranges in the ETSI test root and the French
    production root."""

    label: str  # how SSP messages name the service ("TLC request")
    version: int  # octet 0
    length: int  # octets in all
    permissions: tuple[Permission, ...] = ()
    provider_octets: tuple[int, ...] = ()  # IVI: octets 1..3 carry the ServiceProviderId
    note: str = ""


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
    # The default repetition interval (None: the facility never repeats it); a deployment may change it
    # within the bounds above. The readings behind each number are in docs/services.md.
    repetition_s: float | None = None
    ssp: SspSpec | None = None  # None only for kinds made up by tests (every row below has one)

    @property
    def min_interval_s(self) -> float:
        """The interval of the rate limit (1 / max_rate_hz): the repetition interval's lower bound, and for a
        message the facility never repeats (SPATEM) the rate's interval (see RATE_TOLERANCE below)."""
        return 1.0 / self.max_rate_hz

    @property
    def accepted_versions(self) -> frozenset[int]:
        """protocolVersion values this build can decode (schema-compatible)."""
        return frozenset({self.protocol_version})


# The rate limit of a message the facility never repeats (SPATEM, per intersection: rsu.services.tlm), in
# intervals of the rate (min_interval_s: 0.1 s at 10 Hz). TS 103 301 and TP TLM_GEN_RATE_BV_01 ask only for "a
# valid transmission rate" (read as up to max_rate_hz) and set no rule on spacing; ours (docs/services.md, "Rate
# limit"): a token bucket of 1 + RATE_TOLERANCE sends refilled at the rate (a send may come up to RATE_TOLERANCE
# intervals ahead of the rate's schedule: the long-run rate never exceeds max_rate_hz, and a late state does not
# delay the states after it), and no two sends closer than RATE_MIN_SPACING intervals (no bursts). A rule with no
# tolerance (one interval after the last send, or at most max_rate_hz sends in any 1 s) carries a late send's delay
# into every later state of a source at exactly the rate (a ratchet).
RATE_TOLERANCE = 1.0
RATE_MIN_SPACING = 0.5


_ROLE_NAMES = (  # ISO TS 19091 BasicVehicleRole 1..18, in enumeration order
    "publicTransport",
    "specialTransport",
    "dangerousGoods",
    "roadWork",
    "roadRescue",
    "emergency",
    "safetyCar",
    "none-unknown",
    "truck",
    "motorcycle",
    "roadSideSource",
    "police",
    "fire",
    "ambulance",
    "dot",
    "transit",
    "slowMoving",
    "stopNgo",
)
# SREM: one bit per requestor role, right after the base permission (octet 1, 0x80 = bit index 0)
_ROLE_BITS = tuple(
    Permission(
        f"role.{name}", 1 + bit // 8, 0x80 >> (bit % 8), f"priority/preemption requests for requestor role {name}"
    )
    for bit, name in enumerate(_ROLE_NAMES, start=1)
)

# IVIM: octet 4 bits 0x40..0x02, one per ISO 14823 pictogram category (named after the category's value)
_ISO14823_BITS = tuple(
    Permission(f"iso14823.{name}", 4, 0x40 >> i, f"ISO 14823 codes, {meaning}")
    for i, (name, meaning) in enumerate(
        (
            ("dangerWarning", "service category dangerWarning"),
            ("regulatory", "service category regulatory"),
            ("informative", "service category informative"),
            ("publicFacilities", "publicFacilitiesPictogram"),
            ("ambientCondition", "ambientCondition"),
            ("roadCondition", "roadCondition"),
        )
    )
)

# TLM: the facility does not repeat SPATEM (TS 103 301 5.4.2 as seen in the V1.0.4 draft); each transmission
# is a fresh generation. RLT: continuous repetition (TP RLT_GEN_COM_BV_01), 1 s by default (V2X Hub MAP plugin
# and common practice). IVI: T_GenIvimMin/T_GenIvimMax (TP IVI_GEN_GFQ_TI_01/02) were not seen: 0.1 s .. 10 s,
# 1 s by default. TLC: SSEM repeated while a request is active, an SREM relayed by the RSU until terminated:
# 1 s (no source). GPC: RTCM corrections, 1 s by default (typical RTCM observation rate), up to 60 s for
# slowly-changing station data (no source).
SPATEM = MessageKind(
    "spatem",
    "SPATEM",
    "SPATEM-PDU-Descriptions",
    "spat",
    4,
    2,
    "TLM",
    137,
    2004,
    max_rate_hz=10.0,
    max_interval_s=None,
    repetition_s=None,
    ssp=SspSpec(
        "TLM",
        1,
        2,
        (
            Permission(
                "intersectionState", 1, 0x80, "IntersectionState without prioritization or manoeuvre-assist information"
            ),
            Permission(
                "prioritization",
                1,
                0x40,
                "public-transport prioritization response (IntersectionState addGrpC activePrioritizations)",
            ),
            Permission(
                "maneuverAssist",
                1,
                0x20,
                "manoeuvre-assist information (IntersectionState.maneuverAssistList, MovementState.maneuverAssistList)",
            ),
        ),
    ),
)
MAPEM = MessageKind(
    "mapem",
    "MAPEM",
    "MAPEM-PDU-Descriptions",
    "map",
    5,
    2,
    "RLT",
    138,
    2003,
    max_rate_hz=10.0,
    max_interval_s=10.0,
    repetition_s=1.0,
    ssp=SspSpec(
        "RLT",
        1,
        2,
        (
            Permission("intersections", 1, 0x80, "MapData.intersections"),
            Permission("roadSegments", 1, 0x40, "MapData.roadSegments"),
        ),
    ),
)
IVIM = MessageKind(
    "ivim",
    "IVIM",
    "IVIM-PDU-Descriptions",
    "ivi",
    6,
    2,
    "IVI",
    139,
    2006,
    max_rate_hz=10.0,
    max_interval_s=10.0,
    repetition_s=1.0,
    ssp=SspSpec(
        "IVI",
        1,
        6,
        (
            Permission(
                "viennaConvention", 4, 0x80, "road sign codes of the Vienna Convention (RSCode viennaConvention)"
            ),
            *_ISO14823_BITS,
            Permission("itisCodes", 4, 0x01, "SAE J2540 ITIS codes (RSCode itisCodes)"),
            Permission("laneStatus", 5, 0x80, "laneStatus in GIC or text-container parts"),
            Permission("roadConfigurationContainer", 5, 0x40, "road configuration container (rcc)"),
            Permission("textContainer", 5, 0x20, "text container (tc)"),
            Permission("layoutContainer", 5, 0x10, "layout container (lac)"),
            Permission("negation", 5, 0x08, "iviStatus = negation"),
        ),
        provider_octets=(1, 2, 3),
        note="octets 1-3: ServiceProviderId = 10-bit ITA2 country code + 14-bit issuer id",
    ),
)
SREM = MessageKind(
    "srem",
    "SREM",
    "SREM-PDU-Descriptions",
    "srm",
    9,
    2,
    "TLC",
    140,
    2007,
    max_rate_hz=10.0,
    max_interval_s=10.0,
    repetition_s=1.0,
    ssp=SspSpec(
        "TLC request",
        2,
        4,
        (
            Permission("signalRequest", 1, 0x80, "sending SREM at all (requests without a specific role)"),
            *_ROLE_BITS,
        ),
        note="SSP version 2 (Release 2 profiles); one bit per requestor role 1..18",
    ),
)
SSEM = MessageKind(
    "ssem",
    "SSEM",
    "SSEM-PDU-Descriptions",
    "ssm",
    10,
    2,
    "TLC",
    637,
    2008,
    max_rate_hz=10.0,
    max_interval_s=10.0,
    repetition_s=1.0,
    ssp=SspSpec("TLC status", 1, 1, note="version octet only"),
)
RTCMEM = MessageKind(
    "rtcmem",
    "RTCMEM",
    "RTCMEM-PDU-Descriptions",
    "rtcmc",
    13,
    1,
    "GPC",
    540802,
    2013,
    max_rate_hz=10.0,
    max_interval_s=60.0,
    repetition_s=1.0,
    ssp=SspSpec("GPC", 1, 1, note="version octet only"),
)

MESSAGES: tuple[MessageKind, ...] = (SPATEM, MAPEM, IVIM, SREM, SSEM, RTCMEM)

BY_NAME: dict[str, MessageKind] = {m.name: m for m in MESSAGES}
BY_MESSAGE_ID: dict[int, MessageKind] = {m.message_id: m for m in MESSAGES}
BY_ITS_AID: dict[int, MessageKind] = {m.its_aid: m for m in MESSAGES}
BY_BTP_PORT: dict[int, MessageKind] = {m.btp_port: m for m in MESSAGES}

# The service entities, by the lower-case name the API, the CLI and the store use ("tlm" ...), with the
# message types each sends (TLC sends SSEM and, as a relay, SREM); and every name that leads to a
# service (its own, or one of its message names).
SERVICES: dict[str, tuple[MessageKind, ...]] = {
    service: tuple(m for m in MESSAGES if m.service.lower() == service)
    for service in dict.fromkeys(m.service.lower() for m in MESSAGES)
}
SERVICE_ALIASES: dict[str, str] = {**{s: s for s in SERVICES}, **{m.name: m.service.lower() for m in MESSAGES}}

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

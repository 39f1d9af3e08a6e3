"""The SSP table: BitmapSsp layout per TS 103 301 service, and the permissions a message's content needs.

One place, used by both directions:

* the **sender** (:mod:`rsu.security.pool`) asks :func:`required` what a PDU needs and
  signs only with an AT whose SSP grants it (:func:`check`);
* the **receiver** (:mod:`rsu.security.verify`) runs the same :func:`check` with the
  signer's SSP and drops content that the SSP does not cover.

Layer: facilities content (decoded asn1tools values, see :mod:`rsu.codec.values`)
versus SSP octets from a certificate's ``appPermissions`` (``bitmapSsp``).

Sources, readings and open points are documented in ``docs/ssp.md``; the short
version: octet 0 is the SSP version, then permission bits MSB first. The layouts
are data of :mod:`rsu.catalog` (``MessageKind.ssp``, with their sources), like the
ITS-AIDs; this module holds the logic that reads, writes and checks them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from rsu import catalog
from rsu.catalog import MessageKind, Permission, SspSpec


class SspFormatError(ValueError):
    """SSP octets that do not fit the service's layout (version, length or reserved bits)."""


@dataclass(frozen=True)
class SspLayout:
    """The SSP layout of one message kind (read from its catalog :class:`~rsu.catalog.SspSpec`), with the
    lookups the checks need."""

    kind: MessageKind
    service: str  # how messages about the SSP name the service ("TLC request")
    version: int
    length: int
    permissions: tuple[Permission, ...]
    provider_octets: tuple[int, ...] = ()  # IVI: octets 1..3 carry the ServiceProviderId
    note: str = ""
    _by_name: dict[str, Permission] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update({p.name: p for p in self.permissions})

    @classmethod
    def of(cls, kind: MessageKind, spec: SspSpec) -> SspLayout:
        return cls(kind, spec.label, spec.version, spec.length, spec.permissions, spec.provider_octets, spec.note)

    @property
    def its_aid(self) -> int:
        return self.kind.its_aid

    def permission(self, name: str) -> Permission | None:
        return self._by_name.get(name)

    def reserved_masks(self) -> list[int]:
        """Per octet, the bits that carry no meaning (must be 0)."""
        masks = [0xFF] * self.length
        masks[0] = 0
        for o in self.provider_octets:
            masks[o] = 0
        for p in self.permissions:
            masks[p.octet] &= ~p.mask & 0xFF
        return masks


LAYOUTS: dict[str, SspLayout] = {m.name: SspLayout.of(m, m.ssp) for m in catalog.MESSAGES if m.ssp is not None}
BY_ITS_AID: dict[int, SspLayout] = {lay.its_aid: lay for lay in LAYOUTS.values()}


def layout(kind: MessageKind | str) -> SspLayout:
    name = kind if isinstance(kind, str) else kind.name
    return LAYOUTS[name]


# ====================================================================== service provider id (IVI)

# ITA2 (ITU-T S.1) letter shift, 5 bits written bit 1 first (= MSB here).
ITA2 = {
    "A": 0b11000,
    "B": 0b10011,
    "C": 0b01110,
    "D": 0b10010,
    "E": 0b10000,
    "F": 0b10110,
    "G": 0b01011,
    "H": 0b00101,
    "I": 0b01100,
    "J": 0b11010,
    "K": 0b11110,
    "L": 0b01001,
    "M": 0b00111,
    "N": 0b00110,
    "O": 0b00011,
    "P": 0b01101,
    "Q": 0b11101,
    "R": 0b01010,
    "S": 0b10100,
    "T": 0b00001,
    "U": 0b11100,
    "V": 0b01111,
    "W": 0b11001,
    "X": 0b10111,
    "Y": 0b10101,
    "Z": 0b10001,
}
_ITA2_REV = {v: k for k, v in ITA2.items()}


def country_code_bits(country: str) -> int:
    """ISO 3166-1 alpha-2 -> 10-bit ITA2 CountryCode (ISO 14816), e.g. "GB" -> 0b0101110011."""
    c = country.upper()
    if len(c) != 2 or any(ch not in ITA2 for ch in c):
        raise ValueError(f"country code must be two letters A-Z, got {country!r}")
    return (ITA2[c[0]] << 5) | ITA2[c[1]]


def country_from_bits(bits: int) -> str | None:
    a, b = _ITA2_REV.get(bits >> 5), _ITA2_REV.get(bits & 0x1F)
    return a + b if a and b else None


@dataclass(frozen=True)
class ServiceProvider:
    """ISO 14816 Provider: 10-bit country code (ITA2) + 14-bit issuer identifier."""

    country_bits: int
    issuer: int

    @classmethod
    def of(cls, country: str, issuer: int) -> ServiceProvider:
        if not 0 <= issuer < 1 << 14:
            raise ValueError(f"provider identifier must be 0..16383, got {issuer}")
        return cls(country_code_bits(country), issuer)

    @classmethod
    def from_value(cls, value: dict[str, Any]) -> ServiceProvider:
        """From the asn1tools value {'countryCode': (bytes, 10), 'providerIdentifier': int}."""
        data, nbits = value["countryCode"]
        bits = int.from_bytes(data, "big") >> (len(data) * 8 - nbits) if data else 0
        return cls(bits & 0x3FF, value["providerIdentifier"])

    def to_value(self) -> dict[str, Any]:
        return {"countryCode": ((self.country_bits << 6).to_bytes(2, "big"), 10), "providerIdentifier": self.issuer}

    @classmethod
    def from_octets(cls, b: bytes) -> ServiceProvider:
        n = int.from_bytes(b, "big")
        return cls(n >> 14, n & 0x3FFF)

    def octets(self) -> bytes:
        return ((self.country_bits << 14) | self.issuer).to_bytes(3, "big")

    @property
    def country(self) -> str | None:
        return country_from_bits(self.country_bits)

    def to_json(self) -> dict[str, Any]:
        return {
            "country": self.country,
            "countryCodeBits": f"{self.country_bits:010b}",
            "providerIdentifier": self.issuer,
        }

    def __str__(self) -> str:
        return f"{self.country or format(self.country_bits, '010b')}/{self.issuer}"


# ====================================================================== SSP octets <-> permissions


@dataclass(frozen=True)
class Grant:
    """What one SSP grants: named permissions (+ the IVI service provider)."""

    layout: SspLayout
    permissions: frozenset[str]
    provider: ServiceProvider | None = None


def parse(kind: MessageKind | str, ssp: bytes | None) -> Grant:
    """SSP octets -> Grant. SspFormatError if version, length or reserved bits do not fit."""
    lay = layout(kind)
    if type(ssp) is bytes:  # every received message checks its signer's SSP: the grants are kept
        return _parse_kept(lay.kind.name, ssp)
    return _parse(lay, ssp)


@lru_cache(maxsize=1024)
def _parse_kept(kind_name: str, ssp: bytes) -> Grant:
    """:func:`_parse` remembered per (message type, SSP octets); a failure is not remembered (it raises)."""
    return _parse(layout(kind_name), ssp)


def _parse(lay: SspLayout, ssp: bytes | None) -> Grant:
    if ssp is None:
        raise SspFormatError(f"{lay.service}: certificate entry carries no SSP")
    if len(ssp) < 1:
        raise SspFormatError(f"{lay.service}: empty SSP")
    if ssp[0] != lay.version:
        raise SspFormatError(f"{lay.service}: SSP version {ssp[0]} (expected {lay.version})")
    if len(ssp) != lay.length:
        raise SspFormatError(f"{lay.service}: SSP is {len(ssp)} octets (expected {lay.length})")
    for i, m in enumerate(lay.reserved_masks()):
        if ssp[i] & m:
            raise SspFormatError(f"{lay.service}: reserved SSP bits set in octet {i} ({ssp[i] & m:#04x})")
    perms = frozenset(p.name for p in lay.permissions if ssp[p.octet] & p.mask)
    provider = ServiceProvider.from_octets(ssp[1:4]) if lay.provider_octets else None
    return Grant(lay, perms, provider)


def encode(kind: MessageKind | str, permissions: Iterable[str] = (), provider: ServiceProvider | None = None) -> bytes:
    """Named permissions (+ provider for IVI) -> SSP octets. ValueError on an unknown name."""
    lay = layout(kind)
    out = bytearray(lay.length)
    out[0] = lay.version
    for name in permissions:
        p = lay.permission(name)
        if p is None:
            raise ValueError(
                f"{lay.service} has no SSP permission {name!r} "
                f"(known: {', '.join(x.name for x in lay.permissions) or 'none'})"
            )
        out[p.octet] |= p.mask
    if lay.provider_octets:
        if provider is None:
            raise ValueError(f"{lay.service} SSP needs a service provider id")
        out[1:4] = provider.octets()
    return bytes(out)


def full(kind: MessageKind | str, provider: ServiceProvider | None = None) -> bytes:
    """The SSP granting every permission of the service."""
    lay = layout(kind)
    return encode(lay.kind.name, [p.name for p in lay.permissions], provider)


def describe_permission(psid: int, ssp: bytes | None) -> dict[str, Any]:
    """One appPermissions entry as JSON, decoding the SSP by the table when the psid is ours."""
    out: dict[str, Any] = {"psid": psid, "ssp": ssp.hex() if ssp is not None else None}
    lay = BY_ITS_AID.get(psid)
    if lay is None:
        return out
    out["service"] = lay.service
    out["message"] = lay.kind.pdu
    try:
        g = parse(lay.kind, ssp)
    except SspFormatError as e:
        out["sspError"] = str(e)
        return out
    out["sspVersion"] = g.layout.version  # what parse found in octet 0
    out["permissions"] = [p.name for p in lay.permissions if p.name in g.permissions]
    if g.provider is not None:
        out["serviceProviderId"] = g.provider.to_json()
    return out


# ====================================================================== content -> required permissions


@dataclass(frozen=True)
class Requirement:
    """What a message's content needs from the signer's SSP."""

    kind: MessageKind
    permissions: frozenset[str]
    provider: ServiceProvider | None = None  # IVIM: must equal the SSP's provider id


@dataclass(frozen=True)
class SspCheck:
    ok: bool
    missing: tuple[str, ...] = ()  # permission names (or "serviceProviderId")
    detail: str = ""

    def __bool__(self) -> bool:
        return self.ok


def required(kind: MessageKind, value: dict[str, Any]) -> Requirement:
    """Permissions needed by a decoded PDU (the whole PDU value: header + body)."""
    body = value.get(kind.body, value)
    fn = _REQUIRED.get(kind.name)
    perms, provider = fn(body) if fn else (set(), None)
    return Requirement(kind, frozenset(perms), provider)


_PERMITTED = SspCheck(True)  # immutable: the one answer for every permitted content


def check_grant(req: Requirement, grant: Grant) -> SspCheck:
    if req.permissions <= grant.permissions and (req.provider is None or grant.provider == req.provider):
        return _PERMITTED  # what every received message that is accepted gets: no names to sort
    missing = sorted(req.permissions - grant.permissions)
    details = []
    if missing:
        details.append("missing permission " + ", ".join(missing))
    if req.provider is not None and grant.provider != req.provider:
        missing.append("serviceProviderId")
        details.append(f"serviceProviderId {req.provider} does not match the SSP's {grant.provider}")
    if not missing:
        return _PERMITTED
    return SspCheck(False, tuple(missing), f"{grant.layout.service}: " + "; ".join(details))


def check(
    kind: MessageKind, ssp: bytes | None, value: dict[str, Any] | None = None, *, requirement: Requirement | None = None
) -> SspCheck:
    """Does ``ssp`` permit this content (``value``, or its ``requirement``)? A malformed SSP is a failed
    check, never an exception; giving neither the content nor its requirement is a TypeError."""
    try:
        grant = parse(kind, ssp)
    except SspFormatError as e:
        return SspCheck(False, ("ssp",), str(e))
    if requirement is not None:
        req = requirement
    elif value is not None:
        req = required(kind, value)
    else:
        raise TypeError("ssp.check needs the content (value) or its requirement")
    return check_grant(req, grant)


def _spatem(spat: dict[str, Any]) -> tuple[set[str], None]:
    need: set[str] = set()
    for ist in spat.get("intersections", []):
        need.add("intersectionState")
        if ist.get("maneuverAssistList"):
            need.add("maneuverAssist")
        for state in ist.get("states", []):
            if state.get("maneuverAssistList"):
                need.add("maneuverAssist")
        for ext in ist.get("regional", []) or []:
            v = ext.get("regExtValue")
            if ext.get("regionId") == 3 and isinstance(v, dict) and v.get("activePrioritizations"):
                need.add("prioritization")
    return need, None


def _mapem(m: dict[str, Any]) -> tuple[set[str], None]:
    need: set[str] = set()
    if m.get("intersections"):
        need.add("intersections")
    if m.get("roadSegments"):
        need.add("roadSegments")
    return need, None


def _rs_code(code: tuple[str, Any], need: set[str]) -> None:
    alt, v = code
    if alt == "viennaConvention":
        need.add("viennaConvention")
    elif alt == "itisCodes":
        need.add("itisCodes")
    elif alt == "iso14823":
        cat_alt, cat = v["pictogramCode"]["serviceCategoryCode"]
        if cat_alt == "publicFacilitiesPictogram":
            need.add("iso14823.publicFacilities")
        else:  # trafficSignPictogram / ambientOrRoadConditionPictogram: the enumerated value names the bit
            need.add(f"iso14823.{cat}")
    # anyCatalogue (and unknown extension alternatives): no SSP bit is defined; see docs/ssp.md


def _ivim(ivi: dict[str, Any]) -> tuple[set[str], ServiceProvider | None]:
    need: set[str] = set()
    mandatory = ivi["mandatory"]
    provider: ServiceProvider | None = ServiceProvider.from_value(mandatory["serviceProviderId"])
    if mandatory.get("iviStatus") == 3:
        # A negation withdraws another provider's IVI and carries that provider's id (TS 103 301
        # IVI termination): the negation bit is the permission, the SSP's own provider id cannot match.
        need.add("negation")
        provider = None
    for alt, container in ivi.get("optional", []) or []:
        if alt == "giv":
            for part in container:
                if "laneStatus" in part:
                    need.add("laneStatus")
                for rs in part.get("roadSignCodes", []):
                    _rs_code(rs["code"], need)
        elif alt == "rcc":
            need.add("roadConfigurationContainer")
        elif alt == "tc":
            need.add("textContainer")
            if any("laneStatus" in part for part in container):
                need.add("laneStatus")
        elif alt == "lac":
            need.add("layoutContainer")
        # glc, avc, mlc, rsc: no SSP bit defined
    return need, provider


def _srem(srm: dict[str, Any]) -> tuple[set[str], None]:
    need = {"signalRequest"}
    if srm.get("requests"):
        rtype = srm.get("requestor", {}).get("type")
        role = rtype.get("role") if rtype else None
        if role and role != "basicVehicle":
            need.add(f"role.{role}")  # roles without a bit (cyclist, ...) can never be granted
    return need, None


_REQUIRED: dict[str, Callable[[dict[str, Any]], tuple[set[str], ServiceProvider | None]]] = {
    catalog.SPATEM.name: _spatem,
    catalog.MAPEM.name: _mapem,
    catalog.IVIM.name: _ivim,
    catalog.SREM.name: _srem,
}

"""A whole test PKI answering HTTP-shaped requests: CPOC, DC, EA and AA over the authorities of
:mod:`tests.pki.authorities` (TLM made here, ETSI test root/EA/AA keys).

:meth:`PkiWorld.handle` maps (method, path, body, now) to (status, content type, body); the
sans-I/O client tests call it directly through :meth:`PkiWorld.serve`, the HTTP tests put it
behind aiohttp handlers. ``misbehave`` makes one endpoint answer badly.
"""

from __future__ import annotations

import copy

from cryptography.hazmat.primitives.asymmetric import ec

from rsu import clock
from rsu.pki import client as C
from tests.pki import authorities as A
from tests.pki.helpers import SeededRandomness

ITS_ID = b"RSU-WORLD-0001"


class PkiWorld:
    def __init__(self, canonical_public: ec.EllipticCurvePublicKey, base: str = "http://pki.test") -> None:
        self.tlm = A.make_tlm("world-tlm")
        self.root = A.etsi_root()
        self.ea = A.TestEA({ITS_ID: canonical_public})
        self.aa = A.TestAA(self.ea)
        self.base = base
        self.list_period = 7 * 86400  # nextUpdate = now + this
        self.published: dict[str, tuple[float, int, bytes]] = {}  # kind -> (signed at, sequence, bytes)
        self.revoked: list[bytes] = []
        self.misbehave: dict[str, str] = {}  # endpoint ("cpoc", "dc", "ea", "aa") -> what
        self.requests: list[tuple[str, str]] = []
        self.next_tlm: A.Issued | None = None  # after rollover(): the successor TLM
        self.link: bytes | None = None  # after link_rollover(): the TLM link certificate the CPOC serves
        self.link_in_ectl = True
        self.served: dict[
            str, bytes
        ] = {}  # "ectl"/"ctl" -> what the CPOC/DC answers instead of its full list  # link_rollover(): the old TLM's ECTL lists the new TLM (without successorTo)

    def rollover(self) -> None:
        """A new TLM (later validity start): the old TLM's ECTL links it, and the CPOC serves its ECTL too."""
        self.next_tlm = A.make_tlm(
            "world-tlm-2", start=self.tlm.certificate.value["toBeSigned"]["validityPeriod"]["start"] + 86400
        )
        if "ectl" in self.published:  # re-issued (next sequence) at the next request
            _, sequence, data = self.published["ectl"]
            self.published["ectl"] = (float("-inf"), sequence, data)

    def link_rollover(self, now: float, *, in_ectl: bool = True) -> None:
        """A new TLM trusted only through a TLM link certificate signed by the old one, which the CPOC serves
        at ``gettlmlinkcertificate`` (the old TLM's ECTL lists the new one without successorTo, or, with
        ``in_ectl`` False, not at all: then only ``gettlmcertificate/`` has it)."""
        self.rollover()
        self.link_in_ectl = in_ectl
        self.link = A.tlm_link(self.tlm, self.next_tlm.certificate, expiry=clock.time32(now + 30 * 86400), now=now)

    def reissue(self, start: float, years: int = 4) -> None:
        """A TLM, root, EA and AA valid from ``start`` (POSIX) for ``years``: the root, EA and AA re-issued
        with their ETSI test keys (same keys, names and encryption keys) and allowed to issue every
        permission, so that ATs for all five services of rsu can be had at any date (the ETSI test
        certificates expired in 2020 and their AA may not issue SSEM or RTCMEM permissions)."""
        t32 = clock.time32(start)
        self.tlm = A.make_tlm("world-tlm", start=t32)

        def tbs(c, groups):
            value = copy.deepcopy(c.value["toBeSigned"])
            value["validityPeriod"] = {"start": t32, "duration": ("years", years)}
            value["certIssuePermissions"] = groups
            return value

        everything = {
            "subjectPermissions": ("all", None),
            "minChainLength": 1,
            "chainLengthRange": 1,
            "eeType": (b"\xc0", 8),
        }
        root_key = self.root.key
        self.root = A.Issued(A.issue_certificate(tbs(self.root.certificate, [everything]), None, root_key), root_key)
        leaf = {**everything, "chainLengthRange": 0}
        for authority in (self.ea, self.aa):
            authority.cert = A.issue_certificate(tbs(authority.cert, [leaf]), self.root)
            authority.issued = A.Issued(authority.cert, authority.issued.key)

    # ------------------------------------------------------------------ URLs
    @property
    def cpoc_url(self) -> str:
        return f"{self.base}/cpoc"

    @property
    def dc_url(self) -> str:
        return f"{self.base}/dc/"  # with a trailing slash, as some DCs are listed

    def config(self, **kw) -> C.ClientConfig:
        from rsu.pki.requests import service_permissions
        from rsu.security import ssp

        values = dict(
            its_id=ITS_ID,
            cpoc_url=self.cpoc_url,
            tlm_ids=(self.tlm.certificate.hashed_id8,),
            root_id=self.root.certificate.hashed_id8,
            permissions=service_permissions(["spatem", "mapem", "ivim"], ssp.ServiceProvider.of("FR", 7)),
        )
        values.update(kw)
        return C.ClientConfig(**values)

    # ------------------------------------------------------------------ lists
    def _publish(self, kind: str, now: float, make) -> bytes:
        """A list is re-issued (next sequence) once half its period has passed, else served again as is."""
        signed_at, sequence, data = self.published.get(kind, (None, -1, b""))
        if signed_at is None or now - signed_at >= self.list_period / 2:
            sequence = (sequence + 1) % 256
            data = make(sequence)
            self.published[kind] = (now, sequence, data)
        return data

    def ectl(self, now: float) -> bytes:
        return self.served.get("ectl") or self._publish("ectl", now, lambda seq: self._ectl(now, seq))

    def ctl(self, now: float) -> bytes:
        return self.served.get("ctl") or self._publish("ctl", now, lambda seq: self._ctl(now, seq))

    def delta(self, kind: str, now: float, sequence: int, commands: list) -> bytes:
        """A delta ECTL (by the TLM) or CTL (by the root), isFullCtl FALSE: e.g. to serve at the full-list URL
        (``served``)."""
        signer, content = (
            (self.tlm, "certificateTrustListTlm") if kind == "ectl" else (self.root, "certificateTrustListRca")
        )
        return A.signed_list(
            signer,
            content,
            A.ctl_body(sequence, commands, full=False, next_update=clock.time32(now + self.list_period)),
            now=now,
        )

    def _ectl(self, now: float, sequence: int, signer: A.Issued | None = None) -> bytes:
        signer = signer or self.tlm
        commands = [A.add_rca(self.root.certificate), A.add_dc(self.dc_url, self.root.certificate)]
        if self.next_tlm is None:
            commands.append(A.add_tlm(self.tlm.certificate, self.cpoc_url))
        elif self.link is not None:  # the link certificate, not the ECTL, vouches for the new TLM
            commands.append(A.add_tlm(self.tlm.certificate, self.cpoc_url))
            if self.link_in_ectl:
                commands.append(A.add_tlm(self.next_tlm.certificate, self.cpoc_url))
        else:
            commands.append(A.add_tlm(self.next_tlm.certificate, self.cpoc_url, successor_to=self.tlm.certificate))
        return A.signed_list(
            signer,
            "certificateTrustListTlm",
            A.ctl_body(sequence, commands, next_update=clock.time32(now + self.list_period)),
            now=now,
        )

    def _ctl(self, now: float, sequence: int) -> bytes:
        commands = [
            A.add_ea(self.ea.cert, f"{self.base}/ea-validation", f"{self.base}/ea"),
            A.add_aa(self.aa.cert, f"{self.base}/aa"),
        ]
        return A.signed_list(
            self.root,
            "certificateTrustListRca",
            A.ctl_body(sequence, commands, next_update=clock.time32(now + self.list_period)),
            now=now,
        )

    def crl(self, now: float) -> bytes:
        body = {
            "version": 1,
            "thisUpdate": clock.time32(now) - 60,
            "nextUpdate": clock.time32(now + self.list_period),
            "entries": list(self.revoked),
        }
        return A.signed_list(self.root, "certificateRevocationList", body, form="digest", now=now)

    # ------------------------------------------------------------------ HTTP
    def handle(self, method: str, path: str, body: bytes, now: float) -> tuple[int, str, bytes]:
        """(status, content type, body) for a request path such as ``/cpoc/getectl/<H8>``."""
        self.requests.append((method, path))
        parts = [p for p in path.split("/") if p]
        endpoint = parts[0] if parts else ""
        bad = self.misbehave.get(endpoint)
        if bad and bad.startswith("http-"):
            return int(bad[5:]), "text/plain", b"internal error"
        if bad == "garbage":
            return 200, C.CT_RESPONSE if endpoint in ("ea", "aa") else "application/octet-stream", b"\x03\x82garbage"
        if bad == "wrong-content-type":
            return 200, "text/html", b"<html>login</html>"
        tlm_h8 = self.tlm.certificate.hashed_id8.hex().upper()
        root_h8 = self.root.certificate.hashed_id8.hex().upper()
        if method == "GET" and parts == ["cpoc", "getectl", tlm_h8]:
            return 200, "application/octet-stream", self.ectl(now)
        if (
            method == "GET"
            and self.next_tlm is not None
            and parts == ["cpoc", "getectl", self.next_tlm.certificate.hashed_id8.hex().upper()]
        ):
            return (
                200,
                "application/octet-stream",
                self._publish("ectl-2", now, lambda seq: self._ectl(now, seq, self.next_tlm)),
            )
        if method == "GET" and parts == ["cpoc", "gettlmlinkcertificate"] and self.link is not None:
            return 200, "application/octet-stream", self.link
        if method == "GET" and parts == ["cpoc", "gettlmcertificate"]:  # the current (newest) TLM
            return 200, "application/octet-stream", (self.next_tlm or self.tlm).certificate.raw
        if method == "GET" and parts == ["dc", "getctl", root_h8]:
            return 200, "application/x-its-ctl", self.ctl(now)
        if method == "GET" and parts == ["dc", "getcrl", root_h8]:
            return 200, "application/x-its-crl", self.crl(now)
        if method == "POST" and parts in (["ea"], ["aa"]):
            authority = self.ea if endpoint == "ea" else self.aa
            authority.tamper = bad if bad in ("request-hash", "other-key", "wrong-psk") else None
            authority.answer = bad[5:] if bad and bad.startswith("code:") else None
            return 200, C.CT_RESPONSE, authority.handle(body, now)
        return 404, "text/plain", b"not found"

    def serve(self, action, now: float) -> C.HttpResult:
        """The answer to a client action, without a network (for the sans-I/O tests)."""
        if self.misbehave.get(action.url.removeprefix(self.base).strip("/").split("/")[0]) == "timeout":
            return C.HttpResult(action.id, error="timeout", detail="no answer within 10 s")
        method, body = ("POST", action.body) if isinstance(action, C.HttpPost) else ("GET", b"")
        status, ctype, data = self.handle(method, action.url.removeprefix(self.base), body, now)
        return C.HttpResult(action.id, status, ctype, data)


def canonical_key(store):
    """The canonical key in ``store`` (made if missing) and its identity file."""
    return store.get_or_generate("canonical")


def seeded(seed: str = "client") -> SeededRandomness:
    return SeededRandomness(seed)

"""The security entity the daemon talks to: sign outgoing PDUs, verify incoming messages.

Layer boundary: :meth:`SecurityService.sign` takes a :class:`~rsu.security.request.SignRequest`
(the UPER facilities PDU, or GN headers + BTP-B + PDU, with the ITS-AID and the SSP requirement of
the content) and returns EtsiTs103097Data-Signed (COER bytes); it never decodes the content.
:meth:`SecurityService.verify` takes COER bytes and returns a
:class:`~rsu.security.verify.VerificationResult` whose ``payload`` is the UPER PDU.

Signer-identifier policy (TS 103 097 §7.1.1 CAM rule, applied to every service):
``digest`` normally; the full AT certificate when

* the AT has not sent its certificate for ``certificate_interval`` seconds (1 s),
  which includes the first message of a newly rotated AT,
* a neighbour asked for it (its HashedId3 appeared in a received
  ``inlineP2pcdRequest``),
* ``always_certificate`` is set.

Unknown-certificate handling: when a received message is signed by a digest we
do not know (and passed every check that needs no certificate), its HashedId3 is
put into the ``inlineP2pcdRequest`` of our next signed messages (any service): at
most ``p2pcd_per_frame`` per message, at most ``p2pcd_pending`` waiting (the
oldest is forgotten first), each forgotten ``p2pcd_max_age`` seconds after it was
first wanted. When a neighbour asks for the HashedId3 of our AA or root, our next
message carries it as ``requestedCertificate``.

Replay detection: :meth:`replayed` remembers every accepted message (by the hash of
its tbsData) until its generationTime leaves the acceptance window; the same
message again within the window is a replay.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from rsu import clock as clockmod
from rsu.catalog import MessageKind
from rsu.limits import OnLimit, ignore
from rsu.security.certs import Certificate
from rsu.security.pool import AtPool, SigningRefused
from rsu.security.replay import ReplayWindow
from rsu.security.request import SignRequest
from rsu.security.verify import VerificationResult, Verifier

# HashedId3s asked for in one message. IEEE 1609.2 leaves SequenceOfHashedId3 unbounded and
# TS 103 097 gives no number; a handful keeps our frames short and a flood from riding on them.
P2PCD_PER_FRAME = 8
P2PCD_PENDING = 32  # certificate requests waiting for a message to carry them
P2PCD_MAX_AGE_S = 10.0  # a request not sent by then is forgotten (its held frames are long gone)
REPLAY_ENTRIES = 65536  # accepted messages remembered for replay detection


class SecurityService:
    def __init__(
        self,
        pool: AtPool,
        verifier: Verifier,
        clock: clockmod.Clock,
        *,
        certificate_interval: float = 1.0,
        always_certificate: bool = False,
        p2pcd_per_frame: int = P2PCD_PER_FRAME,
        p2pcd_pending: int = P2PCD_PENDING,
        p2pcd_max_age: float = P2PCD_MAX_AGE_S,
        replay_entries: int = REPLAY_ENTRIES,
        on_limit: OnLimit = ignore,
    ) -> None:
        self.pool = pool
        self.verifier = verifier
        self.clock = clock
        self.certificate_interval = certificate_interval
        self.always_certificate = always_certificate
        self._last_cert_sent: dict[bytes, float] = {}  # AT h8 -> time the certificate was last included
        self._asked_by_neighbours: set[bytes] = set()  # HashedId3 of our ATs someone requested
        self._wanted_issuers: set[bytes] = set()  # HashedId3 of our AA/root someone requested
        self._our_requests: OrderedDict[bytes, float] = OrderedDict()  # HashedId3 we want -> when first wanted
        self.p2pcd_per_frame = p2pcd_per_frame
        self.p2pcd_pending = p2pcd_pending
        self.p2pcd_max_age = p2pcd_max_age
        self.on_limit = on_limit
        self.replay = ReplayWindow(replay_entries, on_limit)
        for t in pool.tickets:  # our own ATs verify our own looped-back messages
            verifier.add_certificate(t.certificate)

    # ------------------------------------------------------------------ sending
    def sign(self, request: SignRequest) -> bytes:
        """Sign ``request.payload`` -> EtsiTs103097Data-Signed (COER), psid ``request.its_aid``.

        Layer: takes the bytes to carry as unsecuredData: a UPER facilities PDU, or, for a secured
        GeoNetworking packet, GN common/extended headers + BTP-B + the PDU (at ``request.pdu_offset``).
        The AT is the one whose SSP grants ``request.requirement`` (the content is never decoded here).
        ``with_certificate=True`` forces the full certificate as signer (indirect delivery: an MQTT
        subscriber, or a retained message's late reader, has no neighbourhood to learn digests from).
        Raises :class:`SigningRefused` if no AT permits the content.
        """
        kind = request.kind
        at = self.pool.select(kind, request.requirement)
        now = self.clock.now()
        h8 = at.hashed_id8
        last = self._last_cert_sent.get(h8)
        with_cert = bool(request.with_certificate) or (
            self.always_certificate
            or last is None
            or now - last >= self.certificate_interval
            or h8[-3:] in self._asked_by_neighbours
        )
        if with_cert:
            self._last_cert_sent[h8] = now
            self._asked_by_neighbours.discard(h8[-3:])
        inline = self._take_requests(now)
        requested = None
        if self._wanted_issuers:
            for c in self.pool.issuers:
                if c.hashed_id3 in self._wanted_issuers:
                    requested = c
                    self._wanted_issuers.discard(c.hashed_id3)
                    break
        return at.signer.sign(
            request.payload,
            request.its_aid,
            clockmod.time64(now),
            with_certificate=with_cert,
            inline_p2pcd_request=inline,
            requested_certificate=requested,
        )

    def _take_requests(self, now: float) -> list[bytes]:
        """The HashedId3s this message asks for (oldest first, at most ``p2pcd_per_frame``)."""
        requests = self._our_requests
        while requests and next(iter(requests.values())) < now - self.p2pcd_max_age:
            requests.popitem(last=False)
        inline: list[bytes] = []
        while requests and len(inline) < self.p2pcd_per_frame:
            inline.append(requests.popitem(last=False)[0])
        if requests and inline:
            self.on_limit("p2pcd-per-frame")
        return inline

    def hours_to_expiry(self, kind: MessageKind) -> float | None:
        return self.pool.hours_to_expiry(kind)

    # ------------------------------------------------------------------ receiving
    def verify(
        self, data: bytes, expected: MessageKind | None = None, *, payload_offset: int = 0, context: Any = None
    ) -> VerificationResult:
        """Verify received secured data (see :meth:`Verifier.verify`) and learn certificate requests from it."""
        result = self.verifier.verify(data, expected, payload_offset=payload_offset, context=context)
        for r in [result, *result.released]:
            self._learn(r)
        return result

    def expire_held(self) -> list[VerificationResult]:
        """Held messages whose time ran out (HELD_EXPIRED results); the daemon calls this periodically."""
        return self.verifier.expire_held()

    def replayed(self, result: VerificationResult) -> bool:
        """Whether the accepted ``result`` repeats a message accepted before within the acceptance window
        (remembering it when not). Call it once per accepted message, after any other duplicate check."""
        if result.tbs_hash is None or result.generation_time is None:
            return False
        until = clockmod.time64_to_posix(result.generation_time) + self.verifier.max_age
        return self.replay.seen(result.tbs_hash, until, self.clock.now())

    def _learn(self, r: VerificationResult) -> None:
        if r.request_certificate is not None and r.request_certificate not in self._our_requests:
            self._our_requests[r.request_certificate] = self.clock.now()
            while len(self._our_requests) > self.p2pcd_pending:
                self._our_requests.popitem(last=False)
                self.on_limit("p2pcd-pending")
        if r.signature_valid and r.p2pcd_requests:
            mine = {t.hashed_id8[-3:] for t in self.pool.tickets}
            issuers = {c.hashed_id3 for c in self.pool.issuers}
            for h3 in r.p2pcd_requests:
                if h3 in mine:
                    self._asked_by_neighbours.add(h3)
                elif h3 in issuers:
                    self._wanted_issuers.add(h3)
        if r.requested_certificate is not None:
            self.verifier.add_certificate(r.requested_certificate)

    @property
    def pending_certificate_requests(self) -> list[bytes]:
        return list(self._our_requests)


__all__ = ["SecurityService", "SignRequest", "SigningRefused", "Certificate"]

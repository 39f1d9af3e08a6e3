"""What the receive pipeline needs from its neighbours: explicit ports (typing.Protocol), nothing more.

Layer: :class:`rsu.pipeline.receive.ReceivePipeline` takes a received frame from a transport and gives
the facilities PDU to the services. It reaches the security entity through :class:`ReceiveSecurity`
and the service layer through :class:`ReceiveServices`; the daemon hands it new implementations when
a reload replaces them (:meth:`ReceivePipeline.use_security`, :meth:`ReceivePipeline.use_services`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from rsu.catalog import MessageKind

if TYPE_CHECKING:
    from rsu.security.service import SecurityService
    from rsu.security.verify import VerificationResult


class ReceiveSecurity(Protocol):
    """The security entity as the receive path uses it (TS 103 097 verification, hold, replay)."""

    @property
    def hold_seconds(self) -> float:
        """How long a frame of an unknown signer waits for its certificate."""

    def verify(
        self, data: bytes, expected: MessageKind | None, *, payload_offset: int, context: Any
    ) -> VerificationResult:
        """Takes COER secured data (the facilities PDU at ``payload_offset`` of its unsecured data); gives
        the result, with ``released`` results of held frames (their ``context`` is the frame)."""

    def expire_held(self) -> list[VerificationResult]:
        """The held frames whose time ran out (``from_hold`` results), by the entity's injected clock."""

    def drop_held(self) -> list[VerificationResult]:
        """Every frame held now, as expired results (the entity is being replaced)."""

    def replayed(self, result: VerificationResult) -> bool:
        """Whether the accepted ``result`` repeats one accepted before (remembering it when not)."""


class ReceiveServices(Protocol):
    """The service layer's receive entry (:meth:`rsu.services.layer.ServiceLayer.receive`)."""

    def receive(
        self, pdu: Any, security: dict[str, Any], transport: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, Any]:
        """Takes a facilities PDU (UPER bytes or a decoded PDU) with its security and transport facts; gives
        (the IS_DataProviding event, None) when delivered, else (None, the drop reason)."""


class SecurityServicePort:
    """:class:`ReceiveSecurity` over a :class:`rsu.security.service.SecurityService` and its verifier."""

    def __init__(self, service: SecurityService) -> None:
        self.service = service

    @property
    def hold_seconds(self) -> float:
        return self.service.verifier.hold_seconds

    def verify(
        self, data: bytes, expected: MessageKind | None, *, payload_offset: int, context: Any
    ) -> VerificationResult:
        return self.service.verify(data, expected, payload_offset=payload_offset, context=context)

    def expire_held(self) -> list[VerificationResult]:
        return self.service.expire_held()

    def drop_held(self) -> list[VerificationResult]:
        verifier = self.service.verifier
        verifier.hold_seconds = -1.0  # the entity leaves: nothing is held any more, nothing will be
        return verifier.expire_held()

    def replayed(self, result: VerificationResult) -> bool:
        return self.service.replayed(result)

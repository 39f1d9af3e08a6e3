"""What the sender asks of the security entity: one :class:`SignRequest` per signature.

Layer: the request carries the bytes to put in ``unsecuredData`` (a UPER facilities PDU, or for a
secured GeoNetworking packet CH | EH | BTP-B | PDU with the PDU at ``pdu_offset``), the ITS-AID of
its message type (:mod:`rsu.catalog`) and the SSP requirement of its content
(:func:`rsu.security.ssp.required`, computed by whoever holds the decoded value: the service that
encoded it). :meth:`rsu.security.service.SecurityService.sign` never decodes.

A caller that has only the bytes (a CLI command, a test at the edge) decodes them itself, once,
with :func:`request_for_pdu`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rsu.catalog import MessageKind
from rsu.security import ssp as sspmod


@dataclass(frozen=True)
class SignRequest:
    """One signature to make.

    ``requirement``: what the content needs of the AT's SSP (its ``kind`` names the message type);
    ``payload``: the unsecuredData to sign; ``pdu_offset``: where the facilities PDU starts in it
    (0 for a bare PDU); ``with_certificate``: True forces the full certificate as signer (indirect
    delivery), None lets the signer-identifier policy decide.
    """

    requirement: sspmod.Requirement
    payload: bytes
    pdu_offset: int = 0
    with_certificate: bool | None = None

    @property
    def kind(self) -> MessageKind:
        return self.requirement.kind

    @property
    def its_aid(self) -> int:
        """The psid of the signature: the message type's ITS-AID (rsu.catalog)."""
        return self.requirement.kind.its_aid


def request_for_pdu(
    kind: MessageKind,
    payload: bytes,
    value: dict[str, Any] | None = None,
    *,
    codec: Any = None,
    pdu_offset: int = 0,
    with_certificate: bool | None = None,
) -> SignRequest:
    """A :class:`SignRequest` for callers at the edge that have the bytes (and perhaps the value).

    Without ``value`` the PDU (``payload[pdu_offset:]``) is decoded here (``codec``, default the
    facilities codec) to find its requirement. Raises :class:`rsu.security.pool.SigningRefused`
    when the bytes are another message type than ``kind``.
    """
    if value is None:
        from rsu.security.pool import SigningRefused

        if codec is None:
            from rsu.codec.facilities import get_codec

            codec = get_codec()
        decoded = codec.decode(bytes(payload[pdu_offset:]))
        if decoded.kind is not kind:
            raise SigningRefused(kind, ("message-type",), f"PDU is a {decoded.kind.pdu}, not a {kind.pdu}")
        value = decoded.value
    return SignRequest(sspmod.required(kind, value), bytes(payload), pdu_offset, with_certificate)

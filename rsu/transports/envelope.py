"""Find the protected bytes inside an IEEE 1609.2 ``Ieee1609Dot2Data`` without verifying it, sans-I/O.

Layer: takes secured data (COER ``Ieee1609Dot2Data``), gives the ``unsecuredData`` octets it
protects. The transports need this because GeoNetworking puts its own common/extended headers and
BTP *inside* the signed envelope (basic header | signed{ CH | EH | BTP | PDU }): the receiver must
look inside to find the BTP port before the security layer has verified anything, and the sender
takes the facilities PDU out of the secured data it was given to sign it again together with the
GN headers. Nothing here checks a signature; the security layer does that on the same bytes.

COER walk (IEEE 1609.2, all fixed by the ASN.1, no decoder needed)::

    03                      protocolVersion 3
    81                      content: signedData
    xx                      hashId
    ToBeSignedData (no preamble)
      SignedDataPayload     preamble: bit 7 extension, bit 6 data present, bit 5 extDataHash present
        data: 03 80 <len> <unsecuredData octets>
      headerInfo ...        (not needed here)
"""

from __future__ import annotations

from rsu import oer


class EnvelopeError(ValueError):
    """The bytes are not a signed Ieee1609Dot2Data carrying unsecuredData."""


CONTENT_NAMES = {
    0x80: "unsecuredData",
    0x81: "signedData",
    0x82: "encryptedData",
    0x83: "signedCertificateRequest",
    0x84: "signedX509CertificateRequest",
}


def read_length(data: bytes, offset: int) -> tuple[int, int]:
    """COER length determinant at ``offset`` -> (length, offset after it). Raises EnvelopeError."""
    try:
        return oer.read_length(data, offset, max_octets=4)
    except oer.LengthError as e:
        raise EnvelopeError(
            "truncated before a length determinant" if e.truncated else "bad or truncated long-form length determinant"
        ) from None


length_prefix = oer.length_prefix


def is_ieee1609dot2(data: bytes) -> bool:
    """Cheap test: protocolVersion 3 followed by a known content alternative."""
    return len(data) >= 2 and data[0] == 3 and data[1] in CONTENT_NAMES


def signed_payload_span(data: bytes) -> tuple[int, int]:
    """(start, end) of the unsecuredData octets inside signed ``data``. Raises EnvelopeError."""
    if len(data) < 4:
        raise EnvelopeError(f"{len(data)} bytes is too short for signed Ieee1609Dot2Data")
    if data[0] != 3:
        raise EnvelopeError(f"protocolVersion {data[0]} (expected 3)")
    if data[1] != 0x81:
        raise EnvelopeError(f"content is {CONTENT_NAMES.get(data[1], hex(data[1]))}, not signedData")
    preamble = data[3]
    if not preamble & 0x40:
        raise EnvelopeError("signed data without payload.data (external data hash is not used)")
    if len(data) < 6 or data[4] != 3:
        raise EnvelopeError("payload.data: protocolVersion is not 3")
    if data[5] != 0x80:
        raise EnvelopeError(f"payload.data: content is {CONTENT_NAMES.get(data[5], hex(data[5]))}, not unsecuredData")
    n, start = read_length(data, 6)
    end = start + n
    if end > len(data):
        raise EnvelopeError(f"unsecuredData length {n} runs past the end of the data")
    return start, end


def signed_payload(data: bytes) -> bytes:
    """The unsecuredData octets of signed ``data`` (unverified). Raises EnvelopeError."""
    start, end = signed_payload_span(data)
    return bytes(data[start:end])


def unsecured_data(payload: bytes) -> bytes:
    """Wrap ``payload`` as an unsecured Ieee1609Dot2Data (``03 80 <len> <payload>``)."""
    return b"\x03\x80" + length_prefix(len(payload)) + payload

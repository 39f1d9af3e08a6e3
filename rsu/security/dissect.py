"""``rsu decode`` layer for IEEE 1609.2 / TS 103 097 secured data (COER).

Shows the envelope (protocol version, content type, hashId), the header info,
the signer (digest, or a certificate summary with its HashedId8) and the
signature type; the payload (unsecuredData) goes on to the facilities dissector.
If the inner bytes are not a facilities PDU (e.g. a GN-secured packet carries the
GN common header + BTP inside), they are shown as hex and dissection stops here.
No verification is done (``rsu verify`` does that).
"""

from __future__ import annotations

from typing import Any

from rsu import catalog, clock as clockmod
from rsu.ops.dissect import Layer, LayerError


def _looks_like_facilities(data: bytes) -> bool:
    if len(data) < 6:
        return False
    kind = catalog.BY_MESSAGE_ID.get(data[1])
    return kind is not None and data[0] in kind.accepted_versions


def secured_layer(data: bytes) -> Layer | None:
    if len(data) < 2 or data[0] != 0x03 or data[1] not in (0x80, 0x81, 0x82, 0x83):
        return None
    from rsu.security import coer
    from rsu.security.certs import Certificate, CertificateError

    try:
        value = coer.decode("Ieee1609Dot2Data", data)
    except coer.CoerError as e:
        raise LayerError(f"secured (IEEE 1609.2): {e}") from None
    alt, content = value["content"]
    fields: dict[str, Any] = {"protocolVersion": value["protocolVersion"], "content": alt}
    if alt == "unsecuredData":
        return _with_payload(fields, content)
    if alt != "signedData":
        fields["bytes"] = len(data)
        return Layer("secured", fields)
    tbs = content["tbsData"]
    fields["hashId"] = content["hashId"]
    h = tbs["headerInfo"]
    header: dict[str, Any] = {"psid": h["psid"]}
    kind = catalog.BY_ITS_AID.get(h["psid"])
    if kind is not None:
        header["message"] = kind.pdu
    for name in ("generationTime", "expiryTime"):
        if name in h:
            header[name] = h[name]
            header[name + "Iso"] = clockmod.iso_utc(clockmod.time64_to_posix(h[name]))
    if "generationLocation" in h:
        header["generationLocation"] = h["generationLocation"]
    if "inlineP2pcdRequest" in h:
        header["inlineP2pcdRequest"] = [x.hex() for x in h["inlineP2pcdRequest"]]
    if "requestedCertificate" in h:
        header["requestedCertificate"] = "present"
    for name in ("p2pcdLearningRequest", "missingCrlIdentifier", "encryptionKey", "pduFunctionalType",
                 "contributedExtensions"):
        if name in h:
            header[name] = "present"
    fields["headerInfo"] = header
    s_alt, s_val = content["signer"]
    if s_alt == "digest":
        fields["signer"] = {"digest": s_val.hex()}
    elif s_alt == "certificate":
        certs = []
        raw = _signer_certificate_bytes(data)  # hash the bytes as received, not a re-encoding
        for cv in s_val:
            try:
                cert_bytes = raw if raw is not None else coer.encode("Certificate", cv)
                certs.append(Certificate.from_bytes(cert_bytes).summary())
            except (CertificateError, coer.CoerError) as e:
                certs.append({"error": str(e)})
        fields["signer"] = {"certificate": certs}
    else:
        fields["signer"] = {s_alt: None}
    fields["signature"] = content["signature"][0]
    payload = tbs["payload"].get("data")
    if payload is None or payload["content"][0] != "unsecuredData":
        fields["payload"] = "external (extDataHash)" if "extDataHash" in tbs["payload"] else "not unsecuredData"
        return Layer("secured", fields)
    return _with_payload(fields, payload["content"][1])


def _with_payload(fields: dict, inner: bytes) -> Layer:
    fields["payloadLength"] = len(inner)
    if _looks_like_facilities(inner):
        return Layer("secured", fields, payload=inner, next_layers=("facilities",))
    try:  # a secured GeoNetworking packet signs its common/extended headers and BTP-B with the PDU
        from rsu.transports.gn import looks_like_common_header
    except ImportError:  # pragma: no cover - transports are part of every build
        looks_like_common_header = None
    if looks_like_common_header is not None and looks_like_common_header(inner):
        return Layer("secured", fields, payload=inner, next_layers=("geonetworking", "facilities"))
    fields["payloadHex"] = inner.hex()
    fields["payloadNote"] = "not a facilities PDU (e.g. GeoNetworking common header + BTP); shown as hex"
    return Layer("secured", fields)


def _signer_certificate_bytes(data: bytes) -> bytes | None:
    from rsu.security.verify import ParseError, parse_signed

    try:
        return parse_signed(data).signer_cert_bytes
    except ParseError:
        return None

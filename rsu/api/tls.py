"""TLS contexts of the API: the server's (TLS 1.3 only, optional client CA) and a client's (for the CLI).

Takes file paths (PEM); gives ``ssl.SSLContext`` objects. A bad file raises :class:`TlsError` naming the
setting and the file, never the key's content.
"""

from __future__ import annotations

import ssl
from pathlib import Path


class TlsError(Exception):
    pass


def server_context(
    cert_file: Path, key_file: Path, client_ca_file: Path | None = None, *, require_client_certificate: bool = False
) -> ssl.SSLContext:
    """TLS 1.3 only. With ``client_ca_file`` a client may present a certificate that CA issued (one it did
    not issue ends the handshake); ``require_client_certificate``: a client without one is refused too."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    try:
        ctx.load_cert_chain(str(cert_file), str(key_file))
    except (OSError, ssl.SSLError) as e:
        raise TlsError(f"api.tls.cert_file: cannot load {cert_file} with the key {key_file}: {_reason(e)}") from None
    if client_ca_file is not None:
        try:
            ctx.load_verify_locations(cafile=str(client_ca_file))
        except (OSError, ssl.SSLError) as e:
            raise TlsError(f"api.tls.client_ca_file: cannot load {client_ca_file}: {_reason(e)}") from None
        ctx.verify_mode = ssl.CERT_REQUIRED if require_client_certificate else ssl.CERT_OPTIONAL
    return ctx


def client_context(
    ca_file: Path | None = None, cert_file: Path | None = None, key_file: Path | None = None
) -> ssl.SSLContext:
    """A client's context: the server verified against ``ca_file`` (system roots without it), TLS 1.3, and
    the client certificate when given."""
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    if cert_file is not None:
        try:
            ctx.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
        except (OSError, ssl.SSLError) as e:
            raise TlsError(f"cannot load the client certificate {cert_file}: {_reason(e)}") from None
    return ctx


def _reason(e: Exception) -> str:
    if isinstance(e, ssl.SSLError):
        return e.reason or type(e).__name__
    return getattr(e, "strerror", None) or type(e).__name__

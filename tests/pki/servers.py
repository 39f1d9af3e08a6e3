"""The test PKI (tests.pki.world.PkiWorld) served over real HTTP by aiohttp on 127.0.0.1: plain HTTP for
the DC, EA and AA, and HTTPS (a test CA made here) for the CPOC. Shared by the HTTP adapter tests and
the daemon tests (in-process and subprocess)."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.pki.world import PkiWorld


def tls_pair(tmp_path):
    """A test CA and a server certificate for 127.0.0.1 signed by it: (server context, client context)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rsu test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (tmp_path / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "server.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    client = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    return server, client


class Servers:
    """The world behind aiohttp: plain HTTP for DC/EA/AA and HTTPS for the CPOC; ``delay`` stalls answers."""

    def __init__(self, world: PkiWorld, clock) -> None:
        self.world, self.clock = world, clock
        self.delay = 0.0
        self.runner: web.AppRunner | None = None

    async def handler(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.world.seen_headers = dict(request.headers)
        if self.delay:
            await asyncio.sleep(self.delay)
        status, ctype, data = self.world.handle(request.method, request.path, body, self.clock.now())
        return web.Response(status=status, body=data, headers={"Content-Type": ctype})

    async def start(self, server_tls: ssl.SSLContext) -> tuple[int, int]:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handler)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        plain = web.TCPSite(self.runner, "127.0.0.1", 0)
        tls = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=server_tls)
        await plain.start()
        await tls.start()
        return plain._server.sockets[0].getsockname()[1], tls._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        await self.runner.cleanup()

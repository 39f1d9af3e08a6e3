"""Sinks over real TLS (certificates made in the test with ``cryptography``): an HTTPS webhook that
requires a client certificate and checks a bearer token, and a Mosquitto with TLS, a required client
certificate and a password. A sink that does not trust the server delivers nothing and keeps the queue."""

from __future__ import annotations

import asyncio
import ssl
import subprocess

import aiomqtt

from rsu.clock import ManualClock
from rsu.forward.config import ForwardSection
from rsu.ops.daemon import Daemon
from tests.forward.centre import Webhook, until
from tests.forward.test_forward_e2e import START, spatem_from
from tests.ops.rxharness import Neighbour, daemon_config, feed_gn
from tests.transports.conftest import Mosquitto, free_tcp_port
from tests.transports.test_mqtt_broker import _tls_material


async def test_https_webhook_with_client_certificate_and_token_and_mqtts_with_password(tmp_path, mosquitto_bin):
    _tls_material(tmp_path)  # ca.pem, server.pem/key (127.0.0.1), client.pem/key
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tmp_path / "ca.pem"))
    server_ctx.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    webhook = Webhook(free_tcp_port(), ssl_context=server_ctx)
    await webhook.start()
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), "rsu", "s3cret"], check=True, capture_output=True)
    broker = Mosquitto(
        mosquitto_bin,
        tmp_path,
        extra=(
            f"cafile {tmp_path / 'ca.pem'}\ncertfile {tmp_path / 'server.pem'}\nkeyfile {tmp_path / 'server.key'}\n"
            f"require_certificate true\nallow_anonymous false\npassword_file {passwd}\n"
        ),
    )
    broker.start()
    (tmp_path / "token").write_text("tmc-token-1\n")
    (tmp_path / "pw").write_text("s3cret\n")
    (tmp_path / "other").mkdir()
    _tls_material(tmp_path / "other")  # another CA: it signed neither the webhook's nor the broker's certificate
    tls = {
        "ca_file": str(tmp_path / "ca.pem"),
        "cert_file": str(tmp_path / "client.pem"),
        "key_file": str(tmp_path / "client.key"),
        "retry_initial": 0.05,
        "retry_max": 0.3,
    }
    fwd = ForwardSection.model_validate(
        {
            "sinks": [
                {"type": "webhook", "name": "https", "url": webhook.url, "token_file": str(tmp_path / "token"), **tls},
                {
                    "type": "mqtt",
                    "name": "mqtts",
                    "host": "127.0.0.1",
                    "port": broker.port,
                    "username": "rsu",
                    "password_file": str(tmp_path / "pw"),
                    **tls,
                },
                {
                    "type": "webhook",
                    "name": "untrusting",
                    "url": webhook.url,
                    **tls,
                    "ca_file": str(tmp_path / "other" / "ca.pem"),
                },
            ]
        }
    )
    clock = ManualClock(START)
    d = Daemon(daemon_config(tmp_path / "state").model_copy(update={"forward": fwd}), clock=clock)
    received = []
    try:
        tls_params = aiomqtt.TLSParameters(
            ca_certs=str(tmp_path / "ca.pem"),
            certfile=str(tmp_path / "client.pem"),
            keyfile=str(tmp_path / "client.key"),
        )
        async with aiomqtt.Client(
            "127.0.0.1",
            broker.port,
            identifier="centre",
            username="rsu",
            password="s3cret",
            tls_params=tls_params,
            protocol=aiomqtt.ProtocolVersion.V5,
        ) as centre:
            await centre.subscribe("rsu/#", qos=1)
            await d.start()
            nb = Neighbour(d.config.pki_path, clock)
            for station in (1, 2):
                feed_gn(d, spatem_from(nb, clock, station))

            async def collect():
                async for m in centre.messages:
                    received.append(m)

            task = asyncio.create_task(collect())
            await until(lambda: len(received) == 2 and len(webhook.received) == 2)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert [auth for _, _, auth in webhook.received] == ["Bearer tmc-token-1"] * 2
        assert [b["station_id"] for _, b, _ in webhook.received] == [1, 2]
        assert all(m.topic.value.endswith("/tlm/spatem") for m in received)
        status = d.forward.status()["untrusting"]
        assert status["queued"] == 2 and status["delivered"] == 0
        assert "certificate verify failed" in status["last_error"].lower()
    finally:
        await d.stop()
        await webhook.stop()
        broker.stop()

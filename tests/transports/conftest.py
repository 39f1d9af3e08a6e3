"""Fixtures for the transport tests: real tools (tshark, Mosquitto), real signatures, real PDUs.

* ``tshark``: the path of Debian's tshark; installed with apt-get when missing and we are root.
  If it cannot be installed the test fails under CI (``CI`` set) and is skipped otherwise.
* ``broker``: a real Mosquitto on a free port of 127.0.0.1 (temp config, persistence off),
  killed at teardown; ``broker.restart()`` restarts it on the same port.
* ``signer`` / ``make_sign``: the ETSI ATS test authorization ticket (CERT_IUT_A_AT) and its key,
  signing through rsu's own :class:`rsu.security.sign.Signer`.
* ``pdus``: one UPER facilities PDU per message type, encoded from ``config/examples``.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from rsu import catalog
from rsu.clock import ManualClock, time64
from tests.conftest import VECTORS
from tests.netutil import free_tcp_port, free_udp_port, random_group  # noqa: F401  (used by the tests here)

REPO = Path(__file__).resolve().parents[2]
GN_VECTOR = VECTORS / "vanetza" / "gn_packet_secured_cam_with_cert.bin"
ETSI = VECTORS / "etsi-ats-certs"
EXAMPLES = REPO / "config" / "examples"

# A position (Paris, Place de la Concorde) used as the RSU / intersection in these tests.
RSU_LAT, RSU_LON = 48.8656, 2.3212
NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


# ---------------------------------------------------------------------------- Debian tools


def _which(binary: str) -> str | None:
    return shutil.which(binary) or next(
        (str(p) for p in (Path("/usr/sbin") / binary, Path("/usr/bin") / binary) if p.exists()), None
    )


def ensure_debian_tool(binary: str, package: str) -> str:
    """Path of ``binary``; apt-get installs ``package`` when missing (root only). Fail in CI, skip elsewhere."""
    path = _which(binary)
    if path:
        return path
    reason = "not running as root"
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "--no-install-recommends", package]
        r = subprocess.run(install, env=env, capture_output=True, timeout=900)
        if r.returncode != 0:
            subprocess.run(
                ["apt-get", "-o", "DPkg::Lock::Timeout=300", "update"], env=env, capture_output=True, timeout=900
            )
            r = subprocess.run(install, env=env, capture_output=True, timeout=900)
        path = _which(binary)
        if path:
            return path
        reason = f"apt-get install {package} failed: {r.stderr.decode(errors='replace').strip()[-300:]}"
    message = f"{binary} is not installed and could not be installed ({reason})"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def tshark() -> str:
    return ensure_debian_tool("tshark", "tshark")


@pytest.fixture(scope="session")
def mosquitto_bin() -> str:
    return ensure_debian_tool("mosquitto", "mosquitto")


# ---------------------------------------------------------------------------- Mosquitto


class Mosquitto:
    """A real Mosquitto broker on 127.0.0.1:``port`` (temp config, no persistence)."""

    def __init__(self, binary: str, workdir: Path, port: int | None = None, extra: str = "") -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = port or free_tcp_port()
        self.host = "127.0.0.1"
        self.extra = extra
        self.proc: subprocess.Popen | None = None
        self.conf = workdir / f"mosquitto-{self.port}.conf"
        self.log = workdir / f"mosquitto-{self.port}.log"

    def start(self, timeout: float = 10.0) -> None:
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            + ("allow_anonymous true\n" if "allow_anonymous" not in self.extra else "")
            + "persistence false\n"
            f"user {getpass.getuser()}\n"
            f"log_dest file {self.log}\n"
            "log_type all\n" + self.extra
        )
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # bounded wait for the listener (no event to await)
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited: {self.proc.stderr.read().decode(errors='replace')}"
                    f"{self.log.read_text() if self.log.exists() else ''}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout} s")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stderr:
            proc.stderr.close()

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def broker(mosquitto_bin, tmp_path):
    b = Mosquitto(mosquitto_bin, tmp_path)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def broker_factory(mosquitto_bin, tmp_path):
    made: list[Mosquitto] = []

    def make(extra: str = "") -> Mosquitto:
        b = Mosquitto(mosquitto_bin, tmp_path, extra=extra)
        made.append(b)
        b.start()
        return b

    yield make
    for b in made:
        b.stop()


# ---------------------------------------------------------------------------- signing, PDUs


@pytest.fixture(scope="session")
def signer():
    from rsu.security.certs import Certificate
    from rsu.security.keys import private_key_from_bytes
    from rsu.security.sign import Signer

    cert = Certificate.load(ETSI / "CERT_IUT_A_AT.oer")
    key = private_key_from_bytes((ETSI / "CERT_IUT_A_AT.vkey").read_bytes(), cert.curve.name)
    return Signer(cert, key)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def make_sign(signer):
    """``make_sign(clock)`` -> the ``sign(payload, kind)`` function the GN transport takes."""

    def make(clk):
        def sign(payload: bytes, kind: catalog.MessageKind) -> bytes:
            return signer.sign(payload, kind.its_aid, time64(clk.now()), with_certificate=True)

        return sign

    return make


@pytest.fixture(scope="session")
def pdus(codec) -> dict[str, bytes]:
    out = {}
    for kind in catalog.MESSAGES:
        path = sorted(EXAMPLES.glob(f"{kind.name}-*.json"))[0]
        _, value = codec.from_jer(json.loads(path.read_text()), kind)
        out[kind.name] = codec.encode(value, kind, validate=False)
    return out


async def wait_for_queue(queue: asyncio.Queue, timeout: float = 5.0):
    return await asyncio.wait_for(queue.get(), timeout)

"""A real ``rsu run`` in a subprocess, with its own config, state, ports and multicast group; and a
test receiver on a real multicast socket. Used by the end-to-end daemon tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from tests.conftest import REPO
from tests.netutil import free_tcp_port, group_and_port  # noqa: F401  (group_and_port: for the tests)

EXAMPLES = REPO / "config" / "examples"


def example(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text())


class RsuDaemon:
    def __init__(
        self,
        workdir: Path,
        name: str = "rsu",
        *,
        group: str,
        port: int,
        station_id: int = 3120101,
        pki_dir: Path | None = None,
        extra_transports: list[dict] | None = None,
        extra: dict | None = None,
    ):
        self.workdir = workdir
        self.name = name
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.api_port = free_tcp_port()
        self.config_path = self.dir / "rsu.yaml"
        self.log_path = self.dir / "rsu.log"
        self.pcap = self.dir / "capture.pcap"
        self.config = {
            "station": {"id": station_id},
            "state_dir": str(self.dir / "state"),
            "api": {"port": self.api_port},
            "logging": {"level": "DEBUG"},
            "transports": [
                {
                    "type": "gn-udp",
                    "name": "gn",
                    "group": group,
                    "port": port,
                    "interface": "lo",
                    "pcap": str(self.pcap),
                }
            ]
            + list(extra_transports or []),
        }
        if pki_dir is not None:
            self.config["security"] = {"pki_dir": str(pki_dir)}
        self.config.update(extra or {})
        self.proc: subprocess.Popen | None = None
        self.ssl_context = None  # an ssl.SSLContext: the API is served over TLS (api.tls)

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.api_port}"

    @property
    def pki_dir(self) -> Path:
        return Path(self.config.get("security", {}).get("pki_dir") or self.dir / "state" / "pki")

    def write_config(self, config: dict | None = None, text: str | None = None) -> None:
        self.config_path.write_text(text if text is not None else yaml.safe_dump(config or self.config))

    def start(self, timeout: float = 30.0, poll_s: float = 0.05) -> RsuDaemon:
        if not self.config_path.exists():
            self.write_config()
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rsu", "run", "--config", str(self.config_path)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # bounded poll: the daemon has no other readiness signal here
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if self.get("/v1/health")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(poll_s)
        raise RuntimeError(f"daemon API did not answer within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # HTTP -------------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict | str]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"} if data else {}
        )
        try:
            with urllib.request.urlopen(req, timeout=10, context=self.ssl_context) as resp:
                raw = resp.read().decode()
                status = resp.status
        except urllib.error.HTTPError as e:
            raw = e.read().decode()
            status = e.code
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw

    def get(self, path: str):
        return self.request("GET", path)

    def post(self, path: str, body: dict):
        return self.request("POST", path, body)

    def trigger(self, service: str, payload: dict, **dissemination) -> dict:
        body = {"payload": payload}
        if dissemination:
            body["dissemination"] = dissemination
        status, answer = self.post(f"/v1/{service}/messages", body)
        assert status in (200, 201), (status, answer)
        return answer

    def metrics(self) -> dict[tuple[str, tuple], float]:
        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as resp:
            text = resp.read().decode()
        out = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    def metric(self, name: str, **labels) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        total = 0.0
        for (n, lab), v in self.metrics().items():
            d = dict(lab)
            if n == name and all(d.get(k) == str(v2) for k, v2 in labels.items()):
                total += v
        return total

    # process ------------------------------------------------------------------------------------
    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(5)
        self._log.close()
        self.proc = None
        return code

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(5)
        self._log.close()
        self.proc = None


class MulticastReceiver:
    """A plain UDP socket joined to the daemons' group on the loopback interface."""

    def __init__(self, group: str, port: int):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((group, port))
        mreq = struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton("127.0.0.1"))
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)

    def frames(self, until, timeout: float = 15.0) -> list[bytes]:
        """Collect datagrams until ``until(frames)`` is true (bounded by ``timeout``)."""
        got: list[bytes] = []
        deadline = time.monotonic() + timeout
        while not until(got):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"only {len(got)} frames within {timeout} s")
            self.sock.settimeout(left)
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            got.append(data)
        return got

    def close(self) -> None:
        self.sock.close()

"""``rsu check-config`` finds what the daemon would only find while starting or running (state directory,
PKI, addresses to bind, pcap, TLS, password and MAP files), worded as configuration errors (field path and
what is wrong), all at once; ``rsu run`` refuses the fatal ones before starting (exit 1, same wording)."""

from __future__ import annotations

import json
import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import yaml

from rsu.ops import config as cfgmod
from rsu.ops.preflight import host_issues
from tests.conftest import REPO, run_rsu
from tests.transports.conftest import free_tcp_port, free_udp_port, random_group

MAPEM = REPO / "config" / "examples" / "mapem-4arm-intersection.json"


def base(tmp_path, **extra) -> dict:
    data = {
        "state_dir": str(tmp_path / "state"),
        "api": {"port": free_tcp_port()},
        "transports": [
            {"type": "gn-udp", "name": "gn", "interface": "lo", "group": random_group(), "port": free_udp_port()}
        ],
    }
    data.update(extra)
    return data


def found(data: dict, **kw) -> dict[str, tuple[str, bool]]:
    return {h.issue.path: (h.issue.message, h.fatal) for h in host_issues(cfgmod.parse(data), **kw)}


def test_a_good_configuration_has_no_host_issue(tmp_path):
    maps = tmp_path / "maps"
    maps.mkdir()
    shutil.copy(MAPEM, maps / "1201.json")
    data = base(
        tmp_path,
        integrations={
            "map_files": {"intersections": {"1201": str(maps / "1201.json")}},
            "controller": {"port": free_udp_port()},
        },
    )
    data["transports"][0]["pcap"] = str(tmp_path / "capture.pcap")
    assert found(data) == {}


def test_state_dir_that_cannot_be_a_directory(tmp_path):
    (tmp_path / "afile").write_text("x")
    issues = found(base(tmp_path, state_dir=str(tmp_path / "afile" / "state")))
    message, fatal = issues["state_dir"]
    assert "afile is not a directory" in message and fatal


def test_state_dir_where_nothing_can_be_created_even_as_root(tmp_path):
    """os.access says "writable" to root in /proc; the check really tries."""
    issues = found(base(tmp_path, state_dir="/proc/rsu-state"))
    message, fatal = issues["state_dir"]
    assert "cannot be created: /proc is not writable" in message and fatal


def test_pki_without_authorization_tickets(tmp_path):
    (tmp_path / "pki").mkdir()
    issues = found(base(tmp_path, security={"pki_dir": str(tmp_path / "pki"), "create_test_pki": False}))
    message, fatal = issues["security.pki_dir"]
    assert "authorization tickets do not load" in message and "create_test_pki is false" in message and fatal


def test_ports_in_use_and_addresses_not_of_this_machine(tmp_path):
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    try:
        data = base(tmp_path, integrations={"controller": {"port": udp.getsockname()[1]}})
        data["api"]["port"] = tcp.getsockname()[1]
        issues = found(data)
        assert issues["api.port"] == (
            f"TCP 127.0.0.1:{tcp.getsockname()[1]} is already in use by another program",
            True,
        )
        assert "UDP" in issues["integrations.controller.port"][0] and issues["integrations.controller.port"][1]
    finally:
        tcp.close()
        udp.close()
    issues = found(base(tmp_path, integrations={"controller": {"host": "192.0.2.1", "port": free_udp_port()}}))
    assert issues["integrations.controller.host"] == (
        "cannot listen on 192.0.2.1: not an address of this machine",
        True,
    )


def test_the_port_of_a_running_rsu_is_fine_for_check_config_not_for_run(tmp_path):
    """check-config before a reload meets the daemon's own port: not an error; a second `rsu run` is."""

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"status": "ok", "version": "test"}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        data = base(tmp_path)
        data["api"]["port"] = server.server_address[1]
        assert found(data) == {}
        assert "api.port" in found(data, running_rsu_is_fine=False)
    finally:
        server.shutdown()
        server.server_close()


def test_pcap_that_cannot_be_written(tmp_path):
    (tmp_path / "adir").mkdir()
    data = base(tmp_path)
    data["transports"][0]["pcap"] = str(tmp_path / "adir")
    assert found(data)["transports[0].pcap"] == (f"{tmp_path / 'adir'} is a directory, not a file", True)


def test_mqtt_tls_and_password_files_that_do_not_load(tmp_path):
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    (tmp_path / "client.pem").write_text("not a certificate either\n")
    (tmp_path / "empty.password").write_text("")
    data = base(tmp_path)
    data["transports"].append(
        {
            "type": "mqtt",
            "name": "broker",
            "ca_file": str(tmp_path / "ca.pem"),
            "cert_file": str(tmp_path / "client.pem"),
            "username": "rsu",
            "password_file": str(tmp_path / "empty.password"),
        }
    )
    issues = found(data)
    assert "is not a PEM CA certificate bundle" in issues["transports[1].ca_file"][0]
    assert "do not load as PEM" in issues["transports[1].cert_file"][0]
    assert "is empty" in issues["transports[1].password_file"][0]
    assert not any(fatal for _, fatal in issues.values())  # the daemon starts and retries, as before


def test_ntrip_password_file_empty(tmp_path):
    (tmp_path / "ntrip.password").write_text("")
    data = base(
        tmp_path,
        integrations={
            "ntrip": {
                "host": "127.0.0.1",
                "mountpoint": "X",
                "username": "u",
                "password_file": str(tmp_path / "ntrip.password"),
            }
        },
    )
    assert "is empty" in found(data)["integrations.ntrip.password_file"][0]


@pytest.mark.parametrize(
    "content, needle",
    [
        (None, "file not found"),
        ("{not json", "not JSON"),
        ({"header": {}, "nomap": 1}, "not the JER JSON of a MAPEM"),
        ("wrong-intersection", "configured for '1202'"),
        ("bad-field", "not a valid MAPEM"),
    ],
)
def test_map_files_that_would_not_go_on_the_air(tmp_path, content, needle):
    path = tmp_path / "map.json"
    mapem = json.loads(MAPEM.read_text())
    key = "1201"
    if content == "wrong-intersection":
        key = "1202"
        path.write_text(json.dumps(mapem))
    elif content == "bad-field":
        mapem["map"]["intersections"][0]["revision"] = 1000  # MsgCount is 0..127
        path.write_text(json.dumps(mapem))
    elif isinstance(content, dict):
        path.write_text(json.dumps(content))
    elif content is not None:
        path.write_text(content)
    issues = found(base(tmp_path, integrations={"map_files": {"intersections": {key: str(path)}}}))
    message, fatal = issues[f"integrations.map_files.intersections.{key}"]
    assert needle in message and not fatal, message


def test_check_config_lists_every_host_error_at_once_and_run_refuses_the_fatal_ones(tmp_path):
    (tmp_path / "afile").write_text("x")
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    try:
        data = base(
            tmp_path,
            state_dir=str(tmp_path / "afile" / "state"),
            integrations={"map_files": {"intersections": {"1201": str(tmp_path / "missing.json")}}},
        )
        data["api"]["port"] = tcp.getsockname()[1]
        path = tmp_path / "rsu.yaml"
        path.write_text(yaml.safe_dump(data))
        r = run_rsu("check-config", str(path), timeout=60)
        err = r.stderr.decode()
        assert r.returncode == 2 and err.splitlines()[0] == f"{path}: 3 error(s)", err
        paths = {line.strip().split(": ", 1)[0] for line in err.splitlines()[1:]}
        assert paths == {"state_dir", "api.port", "integrations.map_files.intersections.1201"}, err
        r = run_rsu("check-config", "--no-host-checks", str(path), timeout=60)
        assert r.returncode == 0, r.stderr
        r = run_rsu("run", "--config", str(path), timeout=60)
        err = r.stderr.decode()
        assert r.returncode == 1 and "Traceback" not in err, err
        assert "cannot start with this configuration" in err and "  api.port: TCP" in err and "  state_dir:" in err
    finally:
        tcp.close()

"""The YAML configuration as an operator meets it: the documented example validates and documents every
setting; a broken file gets every error at once (path, expected, found; exit 2, one line each, no
traceback); YAML syntax errors give line and column; durations parse; secrets never show."""

from __future__ import annotations

import dataclasses
import re
import signal
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from rsu.ops import config as cfgmod
from rsu.ops.config_core import ConfigError, _model_in
from tests.conftest import REPO, run_rsu
from tests.ops.daemonproc import RsuDaemon, group_and_port
from tests.transports.conftest import free_tcp_port

EXAMPLE = REPO / "config" / "rsu.example.yaml"


def check_config(path: Path, *options: str):
    r = run_rsu("check-config", *options, str(path), timeout=60)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


# ------------------------------------------------------------------------------ the documented example


def test_example_validates():
    code, out, err = check_config(EXAMPLE)
    assert code == 0 and out.strip() == f"{EXAMPLE}: valid", err


def _schema_keys() -> set[str]:
    """Every setting name an operator can write: the schema sections, the service rules and message
    defaults, and the fields of both transport types."""
    from rsu.services.defaults import MessageDefaults, ServiceRules
    from rsu.transports.config import GnUdpConfig, MqttConfig

    keys: set[str] = set()

    def walk(model):
        for name, field in model.model_fields.items():
            keys.add(name)
            sub = _model_in(field.annotation)
            if sub is not None:
                walk(sub)

    walk(cfgmod.Config)
    for cls in (ServiceRules, MessageDefaults, GnUdpConfig, MqttConfig):
        keys |= {f.name for f in dataclasses.fields(cls)} - {"kind"}
    return keys


def test_example_documents_every_setting():
    text = EXAMPLE.read_text()
    written = set(re.findall(r"^[\s#-]*([a-z_0-9]+):", text, re.M)) | set(
        re.findall(r"^\s*#\s+([a-z_0-9]+)\s{2,}", text, re.M)
    )  # the message_defaults key table
    missing = _schema_keys() - written
    assert not missing, f"settings missing from config/rsu.example.yaml: {sorted(missing)}"
    # every active setting line carries its explanation: on the line, or in the comment just above it
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^\s*-?\s*[a-z_0-9]+:", line) and not line.lstrip().startswith("#"):
            value = line.split(":", 1)[1].strip()
            if value == "" or " #" in line:
                continue  # a section header, or commented in place
            above = lines[i - 1].strip()
            assert above.startswith("#"), f"line {i + 1} has no comment: {line!r}"


def test_example_mqtt_entry_validates_when_uncommented(tmp_path):
    """The commented MQTT block is a working entry once its files exist."""
    out, in_block = [], False
    for line in EXAMPLE.read_text().splitlines():
        if line.startswith("  # - type: mqtt"):
            in_block = True
        elif in_block and not line.startswith("  #  "):
            in_block = False
        out.append(line.replace("  # ", "  ", 1) if in_block else line)
    text = "\n".join(out)
    for name in ("mqtt-ca.pem", "mqtt-client.pem", "mqtt-client.key", "mqtt.password"):
        (tmp_path / name).write_text("x\n")
        text = text.replace(f"/etc/rsu/{name}", str(tmp_path / name))
    data = yaml.safe_load(text)
    assert [t["type"] for t in data["transports"]] == ["gn-udp", "mqtt"]
    assert data["transports"][1]["tls"] is True and data["transports"][1]["password_file"].endswith("mqtt.password")
    path = tmp_path / "rsu.yaml"
    path.write_text(text)
    code, out_, err = check_config(path, "--no-host-checks")  # the files are placeholders, not PEM
    assert code == 0, err
    code, out_, err = check_config(path)  # the host checks do read them
    assert code == 2 and "transports[1].ca_file" in err and "transports[1].cert_file" in err, err


# ------------------------------------------------------------------------------ errors, all at once

BROKEN = """\
station:
  id: -5
api:
  prot: 8301
transports:
  - type: gn-udp
    group: 10.0.0.1
    interface: lo
  - type: carrier-pigeon
logging:
  level: LOUD
security:
  max_age: 5 parsecs
services:
  rules: {max_entries: lots, bogus: 1}
  message_defaults: {ivim: {retain: maybe}, cam: {}}
"""


def test_broken_file_reports_every_error_at_once(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    code, out, err = check_config(path)
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert lines[0] == f"{path}: 10 error(s)"
    errors = {line.strip().split(": ", 1)[0]: line.strip().split(": ", 1)[1] for line in lines[1:]}
    assert len(errors) == len(lines) - 1 == 10, err  # one line per error, each under its own path
    # path -> (what was expected, what was found)
    wanted = {
        "station.id": (">= 0", "-5"),
        "api.prot": ("unknown setting (expected one of: host, port, max_connections", ""),
        "transports[0].group": ("IPv4 multicast address", "10.0.0.1"),
        "transports[1].type": ("expected one of gn-udp, mqtt", "'carrier-pigeon'"),
        "logging.level": ("expected one of 'DEBUG', 'INFO', 'WARNING' or 'ERROR'", "'LOUD'"),
        "security.max_age": ("expected a duration", "'5 parsecs'"),
        "services.rules.max_entries": ("expected int", "'lots'"),
        "services.rules.bogus": ("unknown setting (expected one of: ivi_id_min", ""),
        "services.message_defaults.ivim.retain": ("expected bool", "'maybe'"),
        "services.message_defaults.cam": ("not a message type (expected one of: spatem", ""),
    }
    assert set(errors) == set(wanted), err
    for key, (expected, found) in wanted.items():
        assert expected in errors[key] and found in errors[key], (key, errors[key])
    assert "Traceback" not in err


def test_daemon_refuses_an_invalid_file_with_the_same_errors(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    r = run_rsu("run", "--config", str(path), timeout=60)
    err = r.stderr.decode()
    assert r.returncode == 2 and "Traceback" not in err
    assert "invalid configuration" in err.splitlines()[0]
    assert sum(1 for line in err.splitlines() if line.startswith("  ")) == 10


@pytest.mark.parametrize(
    "text, where",
    [
        ("station:\n  id: 1\n api: [\n", "line 3 column 2"),
        ("api:\n  port: 8301\n  host: [127.0.0.1\nlogging: {}\n", "line 4 column 8"),
        ("station: {id: 1\n", "line 2 column 1"),
    ],
)
def test_yaml_syntax_error_names_line_and_column(tmp_path, text, where):
    path = tmp_path / "syntax.yaml"
    path.write_text(text)
    code, _, err = check_config(path)
    assert code == 2 and "Traceback" not in err, err
    assert f"YAML syntax error at {where}" in err, err


def test_missing_file():
    code, _, err = check_config(REPO / "config" / "no-such-file.yaml")
    assert code == 2 and "file not found" in err


def test_durations_with_units():
    c = cfgmod.parse(
        {"security": {"certificate_interval": "500ms", "rotation_margin": "1h", "max_age": "2 s", "max_future": 1.5}}
    )
    assert c.security.certificate_interval == 0.5
    assert c.security.rotation_margin == 3600.0
    assert c.security.max_age == 2.0 and c.security.max_future == 1.5
    assert cfgmod.parse({"security": {"rotation_margin": "7d"}}).security.rotation_margin == 7 * 86400
    assert cfgmod.parse({"security": {"rotation_margin": "5m"}}).security.rotation_margin == 300
    for bad in ("-1s", "soon", True, "1 fortnight"):
        with pytest.raises(ConfigError) as e:
            cfgmod.parse({"security": {"max_age": bad}})
        assert [i.path for i in e.value.issues] == ["security.max_age"], bad


# ------------------------------------------------------------------------------ secrets

MARKER = "hunter2-" + "7f3a9c"  # built, so this file's text alone never matches a log


def test_mqtt_password_never_in_check_config_output(tmp_path):
    secret = tmp_path / "mqtt.password"
    secret.write_text(MARKER + "\n")
    config = {
        "logging": {"level": "LOUD"},  # an error elsewhere, so check-config prints the configuration's errors
        "transports": [
            {"type": "gn-udp", "name": "gn", "interface": "lo"},
            {"type": "mqtt", "name": "m1", "username": "rsu", "password_file": str(secret), "qos": 9},
            # an operator who writes the password inline gets the key named, never its value
            {"type": "mqtt", "name": "m2", "username": "rsu", "password": MARKER + "-inline"},
        ],
    }
    path = tmp_path / "rsu.yaml"
    path.write_text(yaml.safe_dump(config))
    code, out, err = check_config(path)
    assert code == 2
    assert "transports[1].qos" in err and "transports[2].password: unknown option" in err, err
    assert MARKER not in out + err
    # and once valid: "valid", still no password
    config["logging"]["level"] = "INFO"
    del config["transports"][1]["qos"]
    del config["transports"][2]
    path.write_text(yaml.safe_dump(config))
    code, out, err = check_config(path)
    assert code == 0 and MARKER not in out + err


def test_mqtt_password_never_in_the_daemon_log(tmp_path):
    secret = tmp_path / "mqtt.password"
    secret.write_text(MARKER + "\n")
    closed = free_tcp_port()  # nothing listens: the transport keeps reconnecting and logging it
    mqtt = {
        "type": "mqtt",
        "name": "broker",
        "host": "127.0.0.1",
        "port": closed,
        "username": "rsu-3120101",
        "password_file": str(secret),
        "backoff_initial": 0.1,
        "backoff_max": 0.2,
    }
    group, port = group_and_port()
    d = RsuDaemon(tmp_path, group=group, port=port, extra_transports=[mqtt])  # logging at DEBUG
    d.start()
    try:
        deadline = time.monotonic() + 15
        while d.log().count(f"127.0.0.1:{closed}") < 3:  # a few failed connection attempts logged
            assert time.monotonic() < deadline and d.proc.poll() is None, d.log()
            time.sleep(0.1)
        status = d.get("/v1/status")[1]
        assert "broker" in status["transports"]
        with urllib.request.urlopen(d.url + "/metrics", timeout=10) as resp:
            metrics = resp.read().decode()
        assert 'rsu_mqtt_connected{transport="broker"} 0.0' in metrics
        # a reload that changes the MQTT entry restarts the transport, which reads the password file again
        d.config["transports"][1]["backoff_max"] = 0.3
        d.write_config()
        d.signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while "configuration reloaded" not in d.log():
            assert time.monotonic() < deadline, d.log()
            time.sleep(0.1)
        mark = len(d.log())
        while d.log()[mark:].count(f"127.0.0.1:{closed}") < 2:  # the restarted transport tries again
            assert time.monotonic() < deadline, d.log()
            time.sleep(0.1)
    finally:
        assert d.stop() == 0
    log = d.log()
    assert MARKER not in log, [line for line in log.splitlines() if MARKER in line]
    assert MARKER not in str(status) and MARKER not in metrics


def test_a_password_pasted_into_password_file_is_not_echoed(tmp_path):
    """An operator who writes the password itself where its file's path belongs gets an error that
    names the field but does not repeat the value (it would land in a terminal, a ticket, a log)."""
    path = tmp_path / "rsu.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "transports": [
                    {"type": "mqtt", "name": "broker", "username": "rsu", "password_file": "Hunter2-pasted-secret"}
                ]
            }
        )
    )
    r = run_rsu("check-config", str(path))
    assert r.returncode == 2
    err = r.stderr.decode()
    assert "transports[0].password_file" in err and "not a readable file" in err
    assert "Hunter2-pasted-secret" not in err + r.stdout.decode()


def test_receive_limits_are_configurable_and_range_checked():
    c = cfgmod.parse(
        {
            "security": {"limits": {"held_frames": 0, "p2pcd_per_frame": 2, "hold_seconds": "500ms"}},
            "services": {"rules": {"ivi_received_max": 10}},
            "transports": [{"type": "gn-udp", "duplicate_entries": 100}],
        }
    )
    assert c.security.limits.held_frames == 0 and c.security.limits.p2pcd_per_frame == 2
    assert c.security.limits.hold_seconds == 0.5 and c.security.limits.p2pcd_pending == 32  # default kept
    with pytest.raises(ConfigError) as e:
        cfgmod.parse(
            {
                "security": {"limits": {"p2pcd_per_frame": 65, "certificate_cache": 1}},
                "services": {"rules": {"srem_pending_max": 0}},
                "transports": [{"type": "gn-udp", "duplicate_entries": 1}],
            }
        )
    paths = {i.path for i in e.value.issues}
    assert {
        "security.limits.p2pcd_per_frame",
        "security.limits.certificate_cache",
        "services.rules.srem_pending_max",
        "transports[0].duplicate_entries",
    } <= paths, paths


def test_store_durability_is_a_choice_of_two():
    assert cfgmod.parse({}).services.store_durability == "power_cut"
    assert cfgmod.parse({"services": {"store_durability": "process_crash"}}).services.store_durability == (
        "process_crash"
    )
    with pytest.raises(ConfigError) as e:
        cfgmod.parse({"services": {"store_durability": "none"}})
    assert {i.path for i in e.value.issues} == {"services.store_durability"}

"""Every number an operator or an application gives carries its allowed range: out of range is refused
with the field path and the range, by ``rsu check-config`` and at start (every error at once), and by
the API as a validation error naming the field (never a 500). The ranges live in one place each:
per-message rate and repetition limits in rsu/catalog.py, service numbers in rsu/services/defaults.py,
the rest in the config schema."""

from __future__ import annotations

import dataclasses
import typing

import pytest
import yaml

from rsu import catalog
from rsu.ops import config as cfgmod
from rsu.ops.config_core import ConfigError, _model_in
from tests.conftest import run_rsu


def issues_of(data: dict) -> dict[str, str]:
    with pytest.raises(ConfigError) as e:
        cfgmod.parse(data)
    return {i.path: i.message for i in e.value.issues}


# ------------------------------------------------------------------------------ one range per number


def _numeric(hint) -> bool:
    return any(t in (int, float) for t in (typing.get_args(hint) or (hint,)))


def test_every_number_of_the_schema_has_a_lower_and_an_upper_bound():
    unbounded = []

    def walk(model, prefix):
        for name, field in model.model_fields.items():
            sub = _model_in(field.annotation)
            if sub is not None:
                walk(sub, f"{prefix}{name}.")
                continue
            if not _numeric(field.annotation):
                continue
            kinds = {type(m).__name__ for m in field.metadata}
            if not ({"Ge", "Gt"} & kinds and {"Le", "Lt"} & kinds):
                unbounded.append(prefix + name)

    walk(cfgmod.Config, "")
    assert unbounded == []


def test_every_number_of_the_service_rules_and_message_defaults_has_a_range():
    from rsu.services.defaults import MESSAGE_DEFAULT_RANGES, RULE_RANGES, MessageDefaults, ServiceRules

    rules = {f.name for f in dataclasses.fields(ServiceRules) if _numeric(typing.get_type_hints(ServiceRules)[f.name])}
    assert rules == set(RULE_RANGES), "give every numeric ServiceRules field a range in RULE_RANGES"
    hints = typing.get_type_hints(MessageDefaults)
    numbers = {f.name for f in dataclasses.fields(MessageDefaults) if f.name != "kind" and _numeric(hints[f.name])}
    repetition = {"repetition_s", "min_interval_s", "max_interval_s"}  # bounded by the catalog's limits
    assert numbers - repetition == set(MESSAGE_DEFAULT_RANGES)


def test_catalog_limits_and_the_defaults_agree():
    from rsu.services.defaults import MESSAGE_DEFAULTS, message_default_issues

    assert catalog.SPATEM.max_rate_hz == 10 and catalog.SPATEM.max_interval_s is None
    for name, d in MESSAGE_DEFAULTS.items():
        kind = d.kind
        assert 0 < kind.max_rate_hz <= 10, name  # at most 10 Hz for any IS message
        assert d.min_interval_s == kind.min_interval_s, name
        if kind.max_interval_s is not None:
            assert d.max_interval_s == kind.max_interval_s
            assert kind.min_interval_s <= d.repetition_s <= kind.max_interval_s, name
    # the shipped defaults pass the same checks as an operator's overrides
    shipped = {
        name: {f.name: getattr(d, f.name) for f in dataclasses.fields(d) if f.name != "kind"}
        for name, d in MESSAGE_DEFAULTS.items()
    }
    assert message_default_issues(shipped) == []


# ------------------------------------------------------------------------------ what an operator sees


@pytest.mark.parametrize(
    "defaults, path, needle",
    [
        ({"mapem": {"repetition_s": 0.01}}, "mapem.repetition_s", "expected 0.1..10 s"),  # 100 Hz on the air
        ({"ivim": {"repetition_s": 0}}, "ivim.repetition_s", "expected 0.1..10 s"),
        ({"ivim": {"repetition_s": 60}}, "ivim.repetition_s", "expected 0.1..10 s"),
        ({"mapem": {"repetition_s": None}}, "mapem.repetition_s", "repeated while active"),
        ({"spatem": {"repetition_s": 1.0}}, "spatem.repetition_s", "not repeated by the facility"),
        ({"spatem": {"min_interval_s": 0.05}}, "spatem.min_interval_s", "expected 0.1..60 s"),  # 20 Hz SPATEM
        ({"ivim": {"min_interval_s": 0.01}}, "ivim.min_interval_s", "at most 10 Hz"),
        ({"rtcmem": {"max_interval_s": 600}}, "rtcmem.max_interval_s", "expected 0.1..60 s"),
        ({"ivim": {"min_interval_s": 5, "max_interval_s": 2}}, "ivim.min_interval_s", "above max_interval_s"),
        ({"ivim": {"min_interval_s": 2, "repetition_s": 1}}, "ivim.repetition_s", "expected 2..10 s"),
        ({"ssem": {"priority": 9}}, "ssem.priority", "expected 0..7, found 9"),
        ({"ssem": {"traffic_class": 256}}, "ssem.traffic_class", "expected 0..255"),
        ({"ivim": {"lifetime_s": 0}}, "ivim.lifetime_s", "expected 0.05..6300"),
        ({"ivim": {"hop_limit": 0}}, "ivim.hop_limit", "expected 1..255"),
        ({"ivim": {"area_radius_m": 0}}, "ivim.area_radius_m", "expected 1..65535"),
        ({"ivim": {"repetition_s": float("nan")}}, "ivim.repetition_s", "expected float or null"),
    ],
)
def test_message_defaults_out_of_range(defaults, path, needle):
    issues = issues_of({"services": {"message_defaults": defaults}})
    assert needle in issues[f"services.message_defaults.{path}"], issues


@pytest.mark.parametrize(
    "rules, path, needle",
    [
        ({"max_entries": 0}, "max_entries", "expected 1..100000, found 0"),
        ({"subscriber_queue": 10**9}, "subscriber_queue", "expected 1..100000"),
        ({"mapem_max_bytes": 50}, "mapem_max_bytes", "expected 200..65535"),
        ({"srem_request_timeout_s": 0}, "srem_request_timeout_s", "expected 1..3600"),
        ({"ivi_id_min": 100, "ivi_id_max": 10}, "ivi_id_min", "above ivi_id_max 10"),
        ({"tlm_map_check": "maybe"}, "tlm_map_check", "expected one of reject, warn, off"),
    ],
)
def test_service_rules_out_of_range(rules, path, needle):
    issues = issues_of({"services": {"rules": rules}})
    assert needle in issues[f"services.rules.{path}"], issues


@pytest.mark.parametrize(
    "section, value, path, needle",
    [
        ("api", {"port": 70000}, "api.port", ">= 0 and <= 65535"),
        ("api", {"max_connections": 0}, "api.max_connections", ">= 1 and <= 16384"),
        ("api", {"header_timeout_s": "10ms"}, "api.header_timeout_s", ">= 0.5 and <= 300"),
        ("api", {"idle_timeout_s": "2h"}, "api.idle_timeout_s", ">= 1 and <= 3600"),
        ("security", {"max_age": 0}, "security.max_age", ">= 0.05 and <= 86400"),
        ("security", {"rotation_margin": "30d"}, "security.rotation_margin", "<= 604800"),
        ("security", {"certificate_interval": "5m"}, "security.certificate_interval", ">= 0 and <= 60"),
        ("station", {"position": {"altitude_m": 40000}}, "station.position.altitude_m", "<= 10000"),
    ],
)
def test_schema_numbers_out_of_range_name_the_whole_range(section, value, path, needle):
    issues = issues_of({section: value})
    assert needle in issues[path], issues


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "rsu.example.net", "10.1.2.3"])
def test_api_host_must_be_loopback_until_the_api_authenticates(host):
    message = issues_of({"api": {"host": host}})["api.host"]
    assert "loopback" in message and "no authentication" in message and repr(host) in message


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost", "[::1]"])
def test_loopback_hosts_are_accepted(host):
    assert cfgmod.parse({"api": {"host": host}}).api.host == host


ALL_WRONG = {
    "api": {"host": "0.0.0.0", "port": 70000, "max_connections": 0},
    "security": {"max_age": 0},
    "services": {
        "rules": {"max_entries": 0},
        "message_defaults": {
            "mapem": {"repetition_s": 0.01},
            "ivim": {"repetition_s": 0},
            "spatem": {"min_interval_s": 0.01},
        },
    },
    "transports": [{"type": "gn-udp", "name": "gn", "interface": "lo", "port": 0}],
}
ALL_WRONG_PATHS = {
    "api.host",
    "api.port",
    "api.max_connections",
    "security.max_age",
    "services.rules.max_entries",
    "services.message_defaults.mapem.repetition_s",
    "services.message_defaults.ivim.repetition_s",
    "services.message_defaults.spatem.min_interval_s",
    "transports[0].port",
}


def test_check_config_and_run_list_every_range_error_at_once(tmp_path):
    path = tmp_path / "rsu.yaml"
    path.write_text(yaml.safe_dump(ALL_WRONG))
    for args in (("check-config", str(path)), ("run", "--config", str(path))):
        r = run_rsu(*args, timeout=60)
        err = r.stderr.decode()
        assert r.returncode == 2 and "Traceback" not in err, err
        listed = {line.strip().split(": ", 1)[0] for line in err.splitlines() if line.startswith("  ")}
        assert listed == ALL_WRONG_PATHS, err

"""One configuration system: every section (transports and integrations included) is validated in one
pass, and one ConfigError names every problem with its field path; the layers get typed values."""

from __future__ import annotations

import pytest
import yaml

from rsu.integrations import config as intcfg
from rsu.ops import config as cfgmod
from rsu.ops.config_core import ConfigError
from rsu.transports import config as trcfg
from tests.ops.test_config import check_config

BROKEN = {
    "station": {"id": -1},
    "transports": [
        {"type": "gn-udp", "name": "gn", "port": 0, "ttl": 300},
        {"type": "mqtt", "name": "broker", "qos": 7, "payload_format": "xml", "type_names": {"spatem": "a/b"}},
        {"type": "carrier-pigeon"},
    ],
    "integrations": {
        "controller": {"format": "xml", "intersections": [{"id": "abc"}]},
        "ntrip": {"host": "caster", "mountpoint": "a b"},
    },
    "pki": {"cpoc_url": "ftp://cpoc", "tlm": "not-hex", "root": "1D261F9E338ECB5B"},
    "api": {"prot": 1},
}

EXPECTED = {
    "station.id": "4294967295",
    "transports[0].port": "0 is not an integer within 1..65535",
    "transports[0].ttl": "300 is not an integer within 0..255",
    "transports[1].qos": "7 is not an integer within 0..2",
    "transports[1].payload_format": "'xml' (expected secured, json or its-client)",
    "transports[1].type_names.spatem": "'a/b' must be one non-empty topic level",
    "transports[2].type": "expected one of gn-udp, mqtt, found 'carrier-pigeon'",
    "integrations.controller.format": "'xml' (expected one of: json, tscbm)",
    "integrations.controller.intersections[0].id": "'abc' is not an intersection id",
    "integrations.ntrip.mountpoint": "'a b' is not a mountpoint name",
    "pki.cpoc_url": "expected an http:// or https:// URL",
    "pki.tlm": "expected a HashedId8",
    "api.prot": "unknown setting",
}


def test_errors_in_every_section_come_in_one_config_error():
    with pytest.raises(ConfigError) as e:
        cfgmod.parse(BROKEN, "rsu.yaml")
    found = {i.path: i.message for i in e.value.issues}
    assert found.keys() == EXPECTED.keys(), found
    for path, needle in EXPECTED.items():
        assert needle in found[path], (path, found[path])
    assert str(e.value).startswith("rsu.yaml: ")


def test_check_config_prints_every_error_and_exits_2(tmp_path):
    path = tmp_path / "rsu.yaml"
    path.write_text(yaml.safe_dump(BROKEN))
    code, _, err = check_config(path)
    assert code == 2
    for field in EXPECTED:
        assert field in err, (field, err)


def test_the_layers_error_is_the_one_config_error():
    assert trcfg.ConfigError is ConfigError and intcfg.ConfigError is ConfigError
    with pytest.raises(ConfigError) as e:  # an entry on its own: every field at once too
        trcfg.MqttConfig.from_dict({"latitude": 1, "longitude": 2, "qos": 9, "port": 0, "colour": "red"}, "mqtt.")
    assert {i.path for i in e.value.issues} == {"mqtt.qos", "mqtt.port", "mqtt.colour"}


def test_the_layers_get_typed_values_filled_in_by_the_station(tmp_path):
    c = cfgmod.parse(
        {
            "station": {"id": 42, "position": {"latitude": 45.0, "longitude": 1.0}},
            "transports": [{"type": "gn-udp", "accept_ports": [2001]}, {"type": "mqtt"}],
            "integrations": {
                "map_files": {"intersections": {"7.1201": str(tmp_path / "1201.json")}},
                "ntrip": {"host": "caster", "mountpoint": "M", "gga": True},
            },
            "pki": {
                "cpoc_url": "https://cpoc",
                "tlm": "8FFE810BDB0D71E6",
                "root": "1D261F9E338ECB5B",
                "its_id": "hex:0102",
            },
        }
    )
    (gn_kind, gn), (mqtt_kind, mqtt) = cfgmod.transport_configs(c)
    assert (gn_kind, mqtt_kind) == ("gn-udp", "mqtt")
    assert isinstance(gn, trcfg.GnUdpConfig) and isinstance(mqtt, trcfg.MqttConfig)
    assert (gn.latitude, gn.longitude, gn.accept_ports) == (45.0, 1.0, (2001,))
    assert mqtt.source == "rsu_42" and mqtt.type_names["spatem"] == "spatem"
    integrations = cfgmod.integrations_config(c)
    assert isinstance(integrations, intcfg.IntegrationsConfig)
    assert (integrations.ntrip.latitude, integrations.ntrip.longitude) == (45.0, 1.0)
    assert list(integrations.map_files.intersections) == ["7.1201"]
    assert c.pki.tlm == bytes.fromhex("8FFE810BDB0D71E6") and c.pki.its_id == b"\x01\x02"


def test_duplicate_transport_names_are_named():
    with pytest.raises(ConfigError) as e:
        cfgmod.parse({"transports": [{"type": "gn-udp", "name": "a"}, {"type": "mqtt", "name": "a"}]})
    assert [(i.path, i.message) for i in e.value.issues] == [
        ("transports[1].name", "'a' is already the name of transports[0]")
    ]


def test_pki_client_defaults_have_one_source():
    from rsu.pki.client import ClientConfig
    from rsu.pki.config import TUNING, PkiClientSection, client_config

    section = PkiClientSection(
        cpoc_url="https://cpoc", tlm="8FFE810BDB0D71E6", root="1D261F9E338ECB5B", services=["spatem"]
    )
    built = client_config(section, None)
    plain = ClientConfig(its_id=None, cpoc_url="https://cpoc", tlm_ids=(), root_id=b"", permissions=[])
    for name in (
        "re_enrol_margin",
        "at_pool",
        "at_renew_fraction",
        "trust_refresh_margin",
        "trust_refresh_interval",
        "retry_base",
        "retry_max",
    ):
        assert getattr(built, name) == getattr(plain, name) == getattr(TUNING, name), name


def test_a_section_from_another_module_plugs_in_with_one_line():
    from pydantic import BaseModel, ConfigDict, Field

    from rsu.ops.config_core import validate

    class Sink(BaseModel):  # as another module would define its section
        model_config = ConfigDict(extra="forbid", frozen=True)
        url: str = "http://127.0.0.1:9"
        batch: int = Field(10, ge=1, le=1000)

    class Plugged(cfgmod.Config):
        forwarding: Sink = Sink()  # the one line

    assert validate(Plugged, {"forwarding": {"batch": 5}}).forwarding.batch == 5
    with pytest.raises(ConfigError) as e:
        validate(Plugged, {"forwarding": {"batch": 0, "ulr": "x"}, "transports": [{"type": "gn-udp", "ttl": -1}]})
    found = {i.path: i.message for i in e.value.issues}
    assert found.keys() == {"forwarding.batch", "forwarding.ulr", "transports[0].ttl"}, found
    assert found["forwarding.batch"] == "expected a number >= 1 and <= 1000, found 0"
    assert found["forwarding.ulr"].startswith("unknown setting (expected one of: url, batch")

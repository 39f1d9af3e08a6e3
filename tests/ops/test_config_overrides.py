"""``rsu run --set PATH=VALUE``: one setting changed on top of the file or the embedded default."""

from __future__ import annotations

import pytest
import yaml

from rsu.ops import config as cfgmod
from rsu.ops.config_core import ConfigError
from rsu.transports.config import GnUdpConfig
from tests.conftest import run_rsu
from tests.netutil import free_tcp_port


def test_set_changes_only_the_named_settings_of_the_embedded_default():
    c = cfgmod.load(
        None,
        [
            "api.port=8302",
            "logging.level=debug",
            "station.position.latitude=45.5",
            "transports[0].group=239.7.7.7",
            "security.max_age=5s",
        ],
    )
    d = cfgmod.load(None)
    assert (c.api.port, c.logging.level, c.station.position.latitude, c.security.max_age) == (8302, "DEBUG", 45.5, 5.0)
    # the default entry, moved (the transports are the layer's typed config, the station's position filled in)
    assert c.transports == [
        GnUdpConfig(name="gn", group="239.7.7.7", latitude=45.5, longitude=d.station.position.longitude)
    ]
    assert (c.api.host, c.station.id, c.station.position.longitude) == (
        d.api.host,
        d.station.id,
        d.station.position.longitude,
    )


def test_set_overrides_a_file_and_leaves_the_rest_of_it(tmp_path):
    path = tmp_path / "rsu.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "station": {"id": 7},
                "api": {"port": 9000},
                "transports": [
                    {"type": "gn-udp", "name": "a", "port": 9001},
                    {"type": "gn-udp", "name": "b", "port": 9002},
                ],
            }
        )
    )
    c = cfgmod.load(path, ["transports[1].port=9102", "api.port='9100'"])  # a quoted number is a string
    assert c.station.id == 7 and [t.port for t in c.transports] == [9001, 9102]
    assert c.api.port == 9100  # pydantic takes the numeric string, as from the file
    data = {"api": {"port": 1}}
    assert cfgmod.apply_overrides(data, ["api.port=2"]) == ({"api": {"port": 2}}, []) and data == {"api": {"port": 1}}


def test_bad_overrides_are_all_reported_with_their_paths():
    with pytest.raises(ConfigError) as e:
        cfgmod.load(None, ["api.port=-1", "logging.level=LOUD", "transports[4].port=1", "nonsense", "api.prot=1"])
    issues = {i.path: i.message for i in e.value.issues}
    assert issues.keys() == {"api.port", "logging.level", "transports[4]", "nonsense", "api.prot"}, issues
    assert "no such entry" in issues["transports[4]"] and "PATH=VALUE" in issues["nonsense"]


def test_rsu_run_refuses_bad_overrides_before_starting():
    r = run_rsu("run", "--set", "api.port=70000", "--set", "transports[0].group=10.0.0.1", timeout=60)
    assert r.returncode == 2, r.stderr
    err = r.stderr.decode()
    assert "api.port:" in err and "transports[0].group:" in err and "Traceback" not in err


async def test_a_reload_keeps_the_overrides(tmp_path, gn_net):
    from rsu.ops.daemon import Daemon
    from rsu.ops.systemd import Notifier

    group, port = gn_net
    path = tmp_path / "rsu.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "state_dir": str(tmp_path / "state"),
                "logging": {"level": "INFO"},
                "transports": [{"type": "gn-udp", "name": "gn", "interface": "lo"}],
            }
        )
    )
    overrides = [f"transports[0].group={group}", f"transports[0].port={port}", f"api.port={free_tcp_port()}"]
    d = Daemon(cfgmod.load(path, overrides), config_path=str(path), notifier=Notifier({}), overrides=overrides)
    await d.start()
    try:
        before = d.config
        path.write_text(path.read_text().replace("INFO", "DEBUG"))
        assert await d.reload()
        assert d.config.logging.level == "DEBUG"  # the file's change applied ...
        assert d.config.transports == before.transports and d.config.api == before.api  # ... the overrides kept
        assert d.reloads["ok"] == 1
    finally:
        await d.stop()

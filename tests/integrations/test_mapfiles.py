"""MAP from files: real JER files drive MAPEMs; changes are picked up by mtime polling or reload(); revisions are
RLT's (bumped when, and only when, the content changes); SPATEMs from the controller are checked against them."""

from __future__ import annotations

import json
import os

import pytest

from integrations.support import all_red_feed, example, wait_for
from rsu import catalog
from rsu.integrations.config import ConfigError, MapFilesConfig
from rsu.integrations.mapfiles import MapFileLoader, MapFilePoller


def write(path, obj, *, bump: int = 0) -> None:
    path.write_text(json.dumps(obj))
    if bump:  # make the change visible to mtime polling even on coarse file-system clocks
        st = os.stat(path)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + bump * 1_000_000_000))


def mapems(layer, now=None):
    return [t for t in layer.due(now) if t.service == "rlt"]


def revision(codec, tx) -> int:
    return codec.decode(tx.pdu).value["map"]["intersections"][0]["revision"]


@pytest.fixture
def map_file(tmp_path):
    path = tmp_path / "maps" / "1201.json"
    path.parent.mkdir()
    write(path, example("mapem"))
    return path


@pytest.fixture
def loader(layer, clock, map_file):
    return MapFileLoader(MapFilesConfig.from_dict({"intersections": {1201: str(map_file)}}), layer, clock=clock)


def test_file_drives_the_mapem_and_revisions_follow_content_changes(loader, layer, map_file, codec, clock):
    [change] = loader.poll()
    assert (change.action, change.revisions) == ("triggered", {"1201": 3})  # the file's revision seeds it
    [tx] = mapems(layer)
    assert revision(codec, tx) == 3 and tx.kind is catalog.MAPEM
    assert tx.pdu.hex() == layer.get("rlt", "1201")["pdus_hex"][0]
    assert loader.poll() == []  # nothing changed on disk
    # touched, same content: no new revision, no request
    write(map_file, example("mapem"), bump=1)
    [change] = loader.poll()
    assert change.action == "unchanged" and change.revisions == {"1201": 3}
    # geometry changed: RLT bumps the revision (the file's own revision 3 is not trusted)
    changed = example("mapem")
    changed["map"]["intersections"][0]["laneWidth"] = 330
    write(map_file, changed, bump=2)
    [change] = loader.poll()
    assert (change.action, change.revisions) == ("updated", {"1201": 4})
    assert any("revision: 3 ignored" in w for w in change.warnings)
    [tx] = mapems(layer)
    assert tx.fresh and revision(codec, tx) == 4
    assert loader.status()["files"]["1201"]["revisions"] == {"1201": 4}


def test_spatem_follows_the_new_map(loader, layer, map_file, make_feed, clock):
    """After a MAP change, the controller's SPATEM carries the new revision (filled from the MAPEM); a feed that
    names the old revision, or signal groups the new MAP no longer has, is refused."""
    loader.poll()
    feed = make_feed()
    changed = example("mapem")
    lanes = changed["map"]["intersections"][0]["laneSet"]
    changed["map"]["intersections"][0]["laneSet"] = [lane for lane in lanes if lane["laneID"] != 16]  # drops group 12
    write(map_file, changed, bump=1)
    assert loader.poll()[0].revisions == {"1201": 4}
    t = clock.now()
    assert feed.on_json(all_red_feed(t)).reason == "tlm-signal_group_mismatch"
    old = all_red_feed(t + 0.1, groups=range(1, 12))
    old["revision"] = 3
    assert feed.on_json(old).reason == "tlm-revision_mismatch"
    ok = feed.on_json(all_red_feed(t + 0.2, groups=range(1, 12)))
    assert ok.accepted and ok.answer["identification"]["intersections"] == [{"id": "1201", "revision": 4}]


@pytest.mark.parametrize(
    "content, reason",
    [
        ("{not json", "map-file-invalid"),
        ("[1, 2]", "map-file-invalid"),
        (json.dumps({"map": {"intersections": [{"id": {"id": 1202}}]}}), "map-file-wrong-intersection"),
        (json.dumps({"map": {**example("mapem")["map"], "msgIssueRevision": 999}}), "rlt-validation"),
    ],
)
def test_a_bad_file_keeps_the_mapem_on_the_air(loader, layer, map_file, codec, content, reason):
    loader.poll()
    layer.due()
    map_file.write_text(content)
    st = os.stat(map_file)
    os.utime(map_file, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    [change] = loader.poll()
    assert change.action == "error" and change.error.startswith(reason)
    assert loader.counters.dropped(reason) == 1
    assert loader.poll() == []  # reported once, not at every poll
    [tx] = mapems(layer, layer.clock.now() + 1.0)  # still repeated, unchanged
    assert revision(codec, tx) == 3
    write(map_file, example("mapem"), bump=2)  # fixed: the same content as on the air, nothing new to send
    assert loader.poll()[0].action == "unchanged" and loader.status()["files"]["1201"]["error"] is None


def test_missing_file_and_reload(tmp_path, layer, clock):
    path = tmp_path / "1201.json"
    loader = MapFileLoader(MapFilesConfig.from_dict({"intersections": {"1201": str(path)}}), layer, clock=clock)
    [change] = loader.poll()
    assert change.error == "map-file-missing: file not found"
    assert loader.poll() == []
    write(path, example("mapem"))
    [change] = loader.reload()  # SIGHUP: read now, whatever the mtime says
    assert change.action == "triggered"
    assert loader.reload()[0].action == "unchanged"
    assert loader.counters.get("reloads") == 2


def test_restart_finds_the_mapem_in_the_store(tmp_path, make_layer, clock, map_file, codec):
    """After a daemon restart the RLT entry is restored from the store: the loader updates it (no already_active
    refusal) and, the content being the same, the revision stays."""
    first = make_layer(clock)
    cfg = MapFilesConfig.from_dict({"intersections": {"1201": str(map_file)}})
    MapFileLoader(cfg, first, clock=clock).poll()
    first.close()
    from rsu.services.layer import ServiceLayer, ServicesConfig

    again = ServiceLayer(ServicesConfig(first.config.state_dir, station_id=3120101), clock=clock, codec=codec)
    try:
        [change] = MapFileLoader(cfg, again, clock=clock).poll()
        assert (change.action, change.revisions) == ("unchanged", {"1201": 3})
    finally:
        again.close()


async def test_poller_picks_up_a_changed_file(loader, layer, map_file):
    poller = MapFilePoller(loader)
    loader.config.poll_interval_s = 0.05
    await poller.start()
    try:
        await wait_for(lambda: layer.list("rlt"), event=poller.polled, timeout=3)
        changed = example("mapem")
        changed["map"]["intersections"][0]["speedLimits"][0]["speed"] = 556  # 40 km/h
        write(map_file, changed, bump=1)
        await wait_for(
            lambda: layer.get("rlt", "1201")["identification"]["intersections"][0]["revision"] == 4,
            event=poller.polled,
            timeout=3,
        )
    finally:
        await poller.stop()


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({}, "intersections: name at least one"),
        ({"intersections": {"12x": "/tmp/a.json"}}, "intersections.12x: '12x' is not an intersection id"),
        ({"intersections": {"1201": "/nonexistent-dir/a.json"}}, "intersections.1201: directory"),
        ({"intersections": {"1201": "/tmp/a.json"}, "poll_interval_s": 0}, "poll_interval_s: 0"),
        ({"intersections": {"1201": "/tmp/a.json"}, "poll": 1}, "poll: unknown option"),
    ],
)
def test_config_errors_name_the_field(cfg, message):
    with pytest.raises(ConfigError) as e:
        MapFilesConfig.from_dict(cfg, "integrations.map_files.")
    assert str(e.value).startswith("integrations.map_files.") and message in str(e.value)

"""``workers: 2``: a real supervisor with two real worker processes behind one API, one metrics endpoint
and one controller feed. Triggers for intersections of both shards go out (each worker its own GN
address), a kill -9 of a worker is recovered with its shard, status/metrics show both, reload and stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rsu import catalog
from rsu.ops import shards
from rsu.ops.config import parse
from rsu.ops.workers import merge_expositions
from rsu.transports import gn
from tests.conftest import REPO
from tests.integrations.support import all_red_feed
from tests.ops.daemonproc import MulticastReceiver, RsuDaemon, example, group_and_port
from tests.ops.test_daemon_e2e import ETHERNET, open_frame
from tests.transports.conftest import free_udp_port

KEYS = (1201, 1202, 1203, 1204)


def spatems(frames: list[bytes], pki_dir) -> list[tuple[bytes, int]]:
    """(GN source MID, intersection id) of each SPATEM frame, each one verified against the daemon's PKI."""
    out = []
    for f in frames:
        p = gn.parse_packet(f[ETHERNET:])
        if catalog.BY_BTP_PORT[p.btp_port] is catalog.SPATEM:
            _, result = open_frame(f, pki_dir)
            assert result.ok
            out.append((p.extended.source.address.mid, result.pdu.value["spat"]["intersections"][0]["id"]["id"]))
    return out


def worker_pids(daemon: RsuDaemon) -> dict[int, int]:
    return {w["worker"]: w["pid"] for w in daemon.get("/v1/status")[1]["workers"]}


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:", 1)[1].split("\n", 1)[0].lower()
    except (OSError, IndexError):
        return "zombie"


def wait_for(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # bounded poll of a real process's state
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError("condition not reached")


def feed_all(feed: socket.socket, port: int, keys=KEYS) -> None:
    for key in keys:
        feed.sendto(json.dumps({**all_red_feed(time.time(), key=key), "revision": 3}).encode(), ("127.0.0.1", port))


@pytest.fixture
def two_workers(tmp_path):
    group, port = group_and_port()
    feed_port = free_udp_port()
    integrations = {
        "controller": {
            "format": "json",
            "host": "127.0.0.1",
            "port": feed_port,
            "watchdog_timeout_s": 5.0,
            "intersections": [{"id": k} for k in KEYS],
        }
    }
    daemon = RsuDaemon(
        tmp_path,
        group=group,
        port=port,
        extra={"workers": 2, "integrations": integrations, "logging": {"level": "INFO"}},
    )
    daemon.start(timeout=120)
    rx = MulticastReceiver(group, port)
    yield daemon, rx, feed_port
    rx.close()
    daemon.stop()


def test_two_workers_share_the_intersections_and_recover_from_kill9(two_workers):
    daemon, rx, feed_port = two_workers
    feed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    # the configured intersections are split evenly and persisted
    status = daemon.get("/v1/status")[1]
    owned = {w["worker"]: w["intersections"] for w in status["workers"]}
    assert owned == {0: ["1201", "1203"], 1: ["1202", "1204"]}
    assert all(w["state"] == "ready" and w["status"] is not None for w in status["workers"])
    assert status["station_id"] == 3120101  # worker 0's view, as `rsu status` prints it
    table = json.loads((daemon.dir / "state" / "workers" / "shards.json").read_text())
    assert table["owners"] == {"1201": 0, "1202": 1, "1203": 0, "1204": 1}

    # one feed: every intersection goes out, each shard from its own GN address
    feed_all(feed, feed_port)
    frames = rx.frames(lambda got: {i for _, i in spatems(got, daemon.pki_dir)} >= set(KEYS))
    sources: dict[bytes, set[int]] = {}
    for mid, ident in spatems(frames, daemon.pki_dir):
        sources.setdefault(mid, set()).add(ident)
    assert sorted(map(sorted, sources.values())) == [[1201, 1203], [1202, 1204]]
    assert daemon.metric("rsu_worker_feed_routed_total", worker="0") >= 2
    assert daemon.metric("rsu_worker_feed_routed_total", worker="1") >= 2

    # one metrics endpoint: both workers' series, labelled
    assert (
        daemon.metric("rsu_messages_sent_total", worker="0") >= 2
        and daemon.metric("rsu_messages_sent_total", worker="1") >= 2
    )
    assert daemon.metric("rsu_worker_up", worker="0") == 1 and daemon.metric("rsu_worker_up", worker="1") == 1

    # kill -9 of worker 1: it is started again, the same intersections go out from it again
    before = worker_pids(daemon)
    os.kill(before[1], signal.SIGKILL)
    wait_for(lambda: daemon.get("/v1/health")[0] == 503 or worker_pids(daemon)[1] != before[1])
    wait_for(lambda: daemon.get("/v1/health")[0] == 200 and worker_pids(daemon)[1] != before[1])
    after = daemon.get("/v1/status")[1]["workers"]
    assert after[1]["restarts"] == 1 and after[1]["last_exit"] == -signal.SIGKILL
    assert after[1]["intersections"] == ["1202", "1204"] and after[0]["pid"] == before[0]
    assert daemon.metric("rsu_worker_restarts_total", worker="1") == 1
    feed_all(feed, feed_port, keys=(1202, 1204))
    frames = rx.frames(lambda got: {i for _, i in spatems(got, daemon.pki_dir)} >= {1202, 1204})
    again = {mid for mid, i in spatems(frames, daemon.pki_dir) if i in (1202, 1204)}
    assert len(again) == 1 and again.isdisjoint({mid for mid, i in spatems(frames, daemon.pki_dir) if i == 1201})

    # one reload: a new intersection in the feed's list is placed, its worker takes it, the feed reaches it
    daemon.config["integrations"]["controller"]["intersections"].append({"id": 1205})
    daemon.write_config()
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: daemon.get("/v1/status")[1]["reloads"]["ok"] == 1)
    assert daemon.get("/v1/status")[1]["workers"][0]["intersections"] == ["1201", "1203", "1205"]
    wait_for(lambda: daemon.get("/v1/status")[1]["workers"][0]["status"]["reloads"]["ok"] == 1)
    feed_all(feed, feed_port, keys=(1205,))
    rx.frames(lambda got: 1205 in {i for _, i in spatems(got, daemon.pki_dir)})
    feed.close()


def spat(ident: int) -> dict:
    value = example("spatem-4arm-intersection.json")
    value["spat"]["intersections"][0]["id"] = {"id": ident}
    return value


def test_api_routes_to_the_owner_and_shards_survive_reload_and_restart(tmp_path):
    group, port = group_and_port()
    daemon = RsuDaemon(tmp_path, group=group, port=port, extra={"workers": 2, "logging": {"level": "INFO"}})
    daemon.start(timeout=120)
    try:
        # a trigger for a new intersection is placed (least-loaded worker) and answered by its owner
        assert daemon.trigger("tlm", spat(1301))["id"] == "1301"
        assert daemon.trigger("tlm", spat(1302))["id"] == "1302"
        assert daemon.trigger("ivi", example("ivim-speed-limit.json"))["id"]
        owners = json.loads((daemon.dir / "state" / "workers" / "shards.json").read_text())["owners"]
        assert owners == {"1301": 0, "1302": 1}
        direct = RsuDaemon.__new__(RsuDaemon)  # the same HTTP helpers, pointed at worker 1 itself
        direct.api_port, direct.ssl_context = daemon.api_port + 2, None
        assert direct.get("/v1/tlm/messages")[0] == 401  # a worker takes only the supervisor's token
        on_air = {(m["service"], m["id"]): m["worker"] for m in daemon.get("/v1/status")[1]["messages"]}
        assert on_air[("tlm", "1302")] == 1 and on_air[("ivi", next(i for s, i in on_air if s == "ivi"))] == 0
        # one API: each entry by id from its owner, the lists merged
        assert daemon.get("/v1/tlm/messages/1302")[0] == 200
        assert sorted(m["id"] for m in daemon.get("/v1/tlm/messages")[1]["messages"]) == ["1301", "1302"]
        assert {m["service"] for m in daemon.get("/v1/messages")[1]["messages"]} >= {"tlm", "ivi"}
        on_air = {(m["service"], m["id"]): m["worker"] for m in daemon.get("/v1/status")[1]["messages"]}
        assert on_air[("tlm", "1301")] == 0 and on_air[("tlm", "1302")] == 1
        shown = subprocess.run(
            [sys.executable, "-m", "rsu", "status", "--api", daemon.url], capture_output=True, text=True, cwd=REPO
        )
        assert "worker 1: ready" in shown.stdout and "1302" in shown.stdout, shown.stderr
        two = spat(1301)
        two["spat"]["intersections"].append(spat(1302)["spat"]["intersections"][0])
        status, answer = daemon.post("/v1/tlm/messages", {"payload": two})
        assert status == 422 and "different workers" in answer["error"]["reason"]
        bad = spat(1999)
        del bad["spat"]["intersections"][0]["states"]
        assert daemon.post("/v1/tlm/messages", {"payload": bad})[0] == 422  # refused by its would-be owner ...
        owners = json.loads((daemon.dir / "state" / "workers" / "shards.json").read_text())["owners"]
        assert "1999" not in owners  # ... so it is not kept in the table

        # SIGHUP: valid -> every worker reloads (same processes); a worker count change is refused
        pids = worker_pids(daemon)
        daemon.config["logging"] = {"level": "DEBUG"}
        daemon.write_config()
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: daemon.get("/v1/status")[1]["reloads"]["ok"] == 1)
        wait_for(
            lambda: all(
                w["status"] and w["status"].get("reloads", {}).get("ok") == 1
                for w in daemon.get("/v1/status")[1]["workers"]
            )
        )
        assert worker_pids(daemon) == pids
        assert daemon.post("/v1/admin/reload", {}) == (200, {"reloaded": True})  # the API's reload: the same
        assert daemon.get("/v1/status")[1]["reloads"]["ok"] == 2
        daemon.write_config({**daemon.config, "workers": 3})
        daemon.signal(signal.SIGHUP)
        assert daemon.post("/v1/admin/reload", {})[0] == 409
        wait_for(lambda: daemon.get("/v1/status")[1]["reloads"]["rejected"] == 2)  # the API's, then SIGHUP
        assert "needs a restart" in daemon.get("/v1/status")[1]["reloads"]["last_error"]

        # SIGTERM stops every worker; started again, each intersection is with the same worker
        daemon.write_config({**daemon.config, "workers": 2})
        before = daemon.get("/v1/tlm/messages/1302")[1]
        assert daemon.stop() == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in pids.values())
        daemon.start(timeout=120)
        on_air = {(m["service"], m["id"]): m["worker"] for m in daemon.get("/v1/status")[1]["messages"]}
        assert on_air[("tlm", "1302")] == 1 and on_air[("tlm", "1301")] == 0
        assert daemon.get("/v1/tlm/messages/1301")[1]["id"] == "1301"
        after = daemon.get("/v1/tlm/messages/1302")[1]  # the same entry, from the same store
        assert after["identification"] == before["identification"]  # (TLM keeps no state across restarts)

        # fewer workers than own intersections: refused at start (exit 2), nothing moved
        assert daemon.stop() == 0
        daemon.write_config({**daemon.config, "workers": 1})
        with pytest.raises(RuntimeError, match="worker 1 owns intersection 1302"):
            daemon.start(timeout=60)
    finally:
        daemon.stop()


def test_a_worker_that_cannot_start_is_failed_and_visible(tmp_path):
    group, port = group_and_port()
    daemon = RsuDaemon(tmp_path, group=group, port=port, extra={"workers": 2, "logging": {"level": "INFO"}})
    daemon.start(timeout=120)
    try:
        pid = worker_pids(daemon)[1]
        # its file made invalid behind the supervisor's back: the restarted worker exits with code 2
        (daemon.dir / "state" / "workers" / "1" / "rsu.yaml").write_text("api: {port: not-a-port}\n")
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: daemon.get("/v1/status")[1]["workers"][1]["state"] == "failed")
        status, health = daemon.get("/v1/health")
        assert status == 503 and health["workers"] == {"0": "ready", "1": "failed"}
        assert daemon.metric("rsu_worker_up", worker="1") == 0 and daemon.metric("rsu_worker_up", worker="0") == 1
        assert daemon.get("/v1/status")[1]["workers"][1]["last_exit"] == 2
        assert "rsu.daemon[w1]: rsu" in daemon.log()  # each worker's lines say which worker wrote them
        assert "worker 1 exited with code 2" in daemon.log()
        assert daemon.trigger("tlm", spat(1401))  # worker 0 keeps serving
        # kill -9 of the supervisor: its workers stop too (no orphan keeps the ports)
        pids = [p for p in worker_pids(daemon).values() if p]
        daemon.kill9()
        wait_for(lambda: not any(Path(f"/proc/{p}").exists() and "zombie" not in _state(p) for p in pids))
    finally:
        daemon.stop()


# --- the parts without processes ---------------------------------------------------------------------------
def test_workers_config_is_checked_with_every_issue_named():
    from rsu.ops.config_core import ConfigError

    with pytest.raises(ConfigError) as e:
        parse(
            {
                "workers": 2,
                "api": {"port": 0},
                "integrations": {
                    "controller": {
                        "format": "tscbm",
                        "port": 0,
                        "intersections": [{"id": 1, "signal_groups": [{"signal_group": 1, "phase": 1}]}],
                    }
                },
            }
        )
    paths = {i.path for i in e.value.issues}
    assert paths == {"api.port", "integrations.controller.format", "integrations.controller.port"}
    with pytest.raises(ConfigError, match="intersections: list the feed's intersections with workers > 1"):
        parse({"workers": 2, "integrations": {"controller": {"port": 6053}}})
    with pytest.raises(ConfigError, match="workers: expected a number of worker processes 1..64 or 'auto'"):
        parse({"workers": 0})
    assert parse({"workers": "auto"}).workers == len(os.sched_getaffinity(0))
    assert parse({}).workers == 1


def test_shard_table_balances_persists_and_refuses_split_entries(tmp_path):
    table = shards.ShardTable(tmp_path / "shards.json", 2)
    assert [table.place([k]) for k in ("1201", "1202", "1203")] == [0, 1, 0]
    assert table.place(["1201", "1203"]) == 0
    assert table.place(["1201", "1202"]) is None  # one entry cannot span two workers
    assert table.place(["1204", "1202"]) == 1  # a new key joins the owner of the others
    again = shards.ShardTable(tmp_path / "shards.json", 2)
    assert again.owners == {"1201": 0, "1202": 1, "1203": 0, "1204": 1}
    assert shards.ShardTable(tmp_path / "shards.json", 1).beyond() == {"1202": 1, "1204": 1}


def test_routing_keys_of_triggers_ids_and_feed_datagrams():
    spat = {"payload": {"spat": {"intersections": [{"id": {"region": 7, "id": 1201}}, {"id": {"id": 1202}}]}}}
    assert shards.payload_keys("spatem", spat) == ["7.1201", "1202"]
    assert shards.payload_keys("ivi", spat) == [] and shards.payload_keys("tlm", {"payload": 3}) == []
    assert shards.id_keys("rlt", "7.1201+1202") == ["7.1201", "1202"] and shards.id_keys("ivi", "12") == []
    assert shards.feed_key(b'{"intersection": {"region": 7, "id": 1201}}') == "7.1201"
    assert shards.feed_key(b'{"intersection": 1201}') == "1201" and shards.feed_key(b"\xff") is None


def test_worker_configs_own_their_part_and_their_addresses(tmp_path):
    data = {
        "workers": 2,
        "state_dir": str(tmp_path),
        "api": {"port": 8301},
        "transports": [{"type": "gn-udp", "name": "gn", "mac": "02:00:00:00:00:10"}, {"type": "mqtt", "name": "mqtt"}],
        "integrations": {
            "controller": {"port": 6053, "intersections": [{"id": 1201}, {"id": 1202}]},
            "map_files": {"intersections": {"1201": __file__, "1202": __file__}},
        },
    }
    config = parse(data)
    one = shards.worker_config(data, config, 1, {"1202"})
    parse(one)  # a valid configuration on its own
    assert "workers" not in one and one["api"]["port"] == 8303 and one["api"]["host"] == "127.0.0.1"
    assert one["api"]["auth"] == {"tokens": True, "rate_limit": {"per_minute": 0}}  # the supervisor's token only
    assert one["state_dir"] == str(tmp_path / "workers" / "1") and one["security"]["pki_dir"] == str(tmp_path / "pki")
    assert one["integrations"]["controller"]["port"] == 6055
    assert one["integrations"]["controller"]["intersections"] == [{"id": 1202}]
    assert list(one["integrations"]["map_files"]["intersections"]) == ["1202"]
    gn_entry, mqtt_entry = one["transports"]
    assert gn_entry["mac"] == "02:00:00:00:00:11" and gn_entry["accept_ports"] == []
    assert mqtt_entry["client_id"] == "rsu_3120101-w1" and mqtt_entry["subscribe"] == []
    zero = shards.worker_config(data, config, 0, {"1201"})
    assert zero["transports"][0]["mac"] == "02:00:00:00:00:10"
    assert catalog.SREM.btp_port in zero["transports"][0]["accept_ports"]  # worker 0 receives SREMs ...
    assert catalog.SPATEM.btp_port not in zero["transports"][0]["accept_ports"]  # ... not its siblings' SPATEMs


def test_metrics_of_the_workers_merge_into_one_exposition_labelled_by_worker():
    from prometheus_client.parser import text_string_to_metric_families

    text = (
        '# HELP rsu_x_total x\n# TYPE rsu_x_total counter\nrsu_x_total{service="TLM"} 3.0\n'
        "# HELP rsu_up up\n# TYPE rsu_up gauge\nrsu_up 1.0\n"
    )
    merged = merge_expositions({"0": text, "1": text.replace("3.0", "4.0")})
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(merged)
        for s in f.samples
    }
    assert samples[("rsu_x_total", (("service", "TLM"), ("worker", "0")))] == 3.0
    assert samples[("rsu_x_total", (("service", "TLM"), ("worker", "1")))] == 4.0
    assert samples[("rsu_up", (("worker", "1"),))] == 1.0
    assert merged.count("# TYPE rsu_x_total counter") == 1


def test_the_supervisor_metrics_are_documented():
    from rsu.ops.workers import Supervisor
    from tests.ops.test_metrics_doc import table

    sup = Supervisor(parse({"workers": 2}), config_path=None)
    code = {f.name + ("_total" if f.type == "counter" else ""): f for f in sup.registry.collect()}
    doc = table("Worker metrics")
    assert set(doc) == set(code)
    for name, family in code.items():
        assert doc[name][0] == family.type and doc[name][1] == "worker"


def test_the_supervisor_serves_tls_authenticates_and_the_workers_take_only_its_token(tmp_path):
    """api.tls (a client CA: certificates by CN) and bearer tokens, applied once at the supervisor."""
    import urllib.error
    import urllib.request

    from rsu.api.auth import TokenStore
    from rsu.api.tls import client_context
    from rsu.clock import SystemClock
    from tests.ops.tlsfiles import Ca

    ca = Ca(tmp_path / "ca", "clients-ca")
    server = ca.issue("localhost", server=True)
    operator_cert = ca.issue("tmc-op")
    group, port = group_and_port()
    daemon = RsuDaemon(
        tmp_path,
        group=group,
        port=port,
        extra={
            "workers": 2,
            "api": {
                "port": 0,
                "tls": {"cert_file": str(server[0]), "key_file": str(server[1]), "client_ca_file": str(ca.cert_file)},
                "auth": {"tokens": True, "clients": {"tmc-op": "operator"}},
            },
        },
    )
    daemon.config["api"]["port"] = daemon.api_port
    daemon.ssl_context = client_context(ca.cert_file)  # start() polls /v1/health over https
    state = daemon.dir / "state"
    _, monitor = TokenStore(state / "api-tokens.json", SystemClock()).add("monitor", "wall", 3600)

    def call(method: str, path: str, *, token: str | None = None, cert=None, body: dict | None = None) -> int:
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
        req = urllib.request.Request(
            daemon.url + path, data=json.dumps(body).encode() if body else None, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(req, timeout=10, context=client_context(ca.cert_file, *(cert or ()))) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    daemon.start(timeout=120)
    try:
        assert daemon.url.startswith("https://")
        assert call("GET", "/v1/tlm/messages") == 401  # the supervisor's guard: no credential, no entry
        assert call("POST", "/v1/tlm/messages", token=monitor, body={"payload": spat(1501)}) == 403  # role too low
        assert call("POST", "/v1/tlm/messages", cert=operator_cert, body={"payload": spat(1501)}) == 201
        assert call("POST", "/v1/tlm/messages", cert=operator_cert, body={"payload": spat(1502)}) == 201
        assert call("GET", "/v1/tlm/messages/1502", token=monitor) == 200  # from worker 1, through the supervisor
        owners = json.loads((state / "workers" / "shards.json").read_text())["owners"]
        assert owners == {"1501": 0, "1502": 1}
        audit = (state / "audit.jsonl").read_text()  # the supervisor's audit names the client
        assert audit.count('"action":"trigger","target":{"service":"tlm"},"result":"ok"') == 2 and "tmc-op" in audit
        assert '"result":"forbidden"' in audit  # the monitor's refused trigger
        direct = RsuDaemon.__new__(RsuDaemon)
        direct.api_port, direct.ssl_context = daemon.api_port + 2, None
        assert direct.get("/v1/tlm/messages")[0] == 401  # the worker itself refuses a way around the guard
    finally:
        daemon.stop()

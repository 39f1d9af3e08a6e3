"""``rsu trigger|update|terminate|list`` in real subprocesses against a real API server (localhost)."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from rsu import catalog
from rsu.api.app import create_app, serve
from services.support import example, new_ivim, run_cli


@pytest.fixture
def live_api(make_layer):
    """The API of a real ServiceLayer, served from its own thread and event loop."""
    layer = make_layer()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        runner = loop.run_until_complete(serve(create_app(layer), port=0))
        box["port"] = runner.addresses[0][1]
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield f"http://127.0.0.1:{box['port']}", layer
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def test_cli_trigger_list_update_terminate(live_api, tmp_path, codec):
    url, layer = live_api
    f = tmp_path / "sign.json"
    f.write_text(json.dumps(new_ivim()))
    r = run_cli("trigger", "ivi", str(f), "--interval", "0.5", "--area", "44.83,-0.57,800", "--api", url)
    assert r.returncode == 0, r.stderr
    answer = json.loads(r.stdout)
    assert answer["id"] == "FR57-1" and answer["identification"]["iviStatus"] == "new"
    entry = layer.get("ivi", "FR57-1")
    assert entry["dissemination"]["repetition_interval_s"] == 0.5
    assert entry["dissemination"]["destination"]["a"] == 800

    _, value = codec.from_jer(example("mapem"), catalog.MAPEM)
    r = run_cli("trigger", "mapem", "--hex", codec.encode(value).hex(), "--shb", "--api", url)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["id"] == "1201"

    r = run_cli("list", "--api", url)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:4] == ["SERVICE", "ID", "MESSAGE", "STATE"]
    assert any(line.split()[:4] == ["rlt", "1201", "mapem", "active"] for line in lines)
    assert any(line.split()[:4] == ["ivi", "FR57-1", "ivim", "active"] for line in lines)

    r = run_cli("list", "ivi", "FR57-1", "--api", url)
    assert json.loads(r.stdout)["payload"]["ivi"]["mandatory"]["iviIdentificationNumber"] == 1

    r = run_cli("update", "ivi", "FR57-1", "--interval", "2", "--api", url)
    assert r.returncode == 0, r.stderr
    assert layer.get("ivi", "FR57-1")["dissemination"]["repetition_interval_s"] == 2

    r = run_cli("terminate", "ivi", "FR57-1", "--mode", "stop", "--api", url)
    assert r.returncode == 0 and json.loads(r.stdout)["terminated"] == "stopped"
    r = run_cli("list", "ivi", "--json", "--api", url)
    assert json.loads(r.stdout) == []


def test_cli_refusal_is_one_line_with_code_path_reason(live_api, tmp_path):
    url, layer = live_api
    f = tmp_path / "old.json"
    f.write_text(json.dumps(new_ivim(validTo=674287206000)))  # 2025-05-14T06:00:01Z: before the clock's now
    r = run_cli("trigger", "ivi", str(f), "--api", url)
    assert r.returncode == 2
    assert r.stderr.startswith("rsu: error: validation: payload.ivi.mandatory.validTo: ")
    assert len(r.stderr.strip().splitlines()) == 1 and r.stdout == ""
    assert layer.list() == []


def test_cli_warnings_go_to_stderr(live_api, tmp_path):
    url, _ = live_api
    f = tmp_path / "spat.json"
    f.write_text(json.dumps(example("spatem")))
    r = run_cli("trigger", "tlm", str(f), "--api", url)
    assert r.returncode == 0
    assert "rsu: warning: payload.spat.intersections[0]: no active MAPEM of intersection 1201" in r.stderr


def test_cli_unreachable_api():
    r = run_cli("list", "--api", "http://127.0.0.1:9")
    assert r.returncode == 2 and "cannot reach the rsu API at http://127.0.0.1:9" in r.stderr


@pytest.mark.parametrize("order", ["api-last", "api-between", "api-first", "env"])
def test_cli_options_in_any_order_and_the_api_from_the_environment(live_api, tmp_path, order):
    """``rsu trigger rlt --api URL FILE`` (an option between positionals), ``rsu --api URL trigger ...``
    (the global option before the command) and ``$RSU_API_URL`` all reach the same API."""
    url, layer = live_api
    f = tmp_path / "map.json"
    f.write_text(json.dumps(example("mapem")))
    args, env = {
        "api-last": (("trigger", "rlt", str(f), "--api", url), None),
        "api-between": (("trigger", "rlt", "--api", url, str(f)), None),
        "api-first": (("--api", url, "trigger", "RLT", str(f)), None),
        "env": (("trigger", "rlt", str(f)), {"RSU_API_URL": url}),
    }[order]
    r = run_cli(*args, env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["id"] == "1201" and layer.get("rlt", "1201")["state"] == "active"
    # rsu status follows the same rules (it ignored $RSU_API_URL before)
    status_args = (
        ("status", "--json")
        if order == "env"
        else ("status", "--api", url, "--json")
        if order == "api-last"
        else ("--api", url, "status", "--json")
    )
    r = run_cli(*status_args, env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["entries"]["rlt"] == 1


def test_cli_parses_options_between_positionals_and_southern_coordinates():
    """In-process parser checks: FILE after an option, and a value starting with a minus sign."""
    from rsu.cli.main import build_parser

    args = build_parser().parse_args(["trigger", "ivi", "--area", "-33.85,151.21,500", "sign.json"])
    assert (args.service, args.file, args.area) == ("ivi", "sign.json", "-33.85,151.21,500")
    args = build_parser().parse_args(["--api", "http://h:1", "list", "ivi", "FR57-310", "--json"])
    assert (args.api, args.service, args.id, args.json) == ("http://h:1", "ivi", "FR57-310", True)
    args = build_parser().parse_args(["list"])
    assert args.api is None  # the client then takes $RSU_API_URL or the default

"""The web view (/ui) in a real browser: Debian's Chromium, driven by Playwright, against a real ``rsu run``
subprocess over real HTTP. One browser and one daemon for the module; the DOM is asserted after
triggers and updates through the API (IS_Triggering)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import pytest_asyncio

from tests.netutil import free_tcp_port
from tests.ops.conftest import IN_MODULE_LOOP
from tests.ops.daemonproc import RsuDaemon, example, group_and_port

WAIT_MS = 20_000  # what the page may take to show a change (it polls every 2 s; events come at once)
AT_HOURS = 12  # the test PKI's AT lifetime: they start an hour back, so 11 h are left (< the 24 h warning)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    group, port = group_and_port()
    d = RsuDaemon(
        tmp_path_factory.mktemp("webview"), group=group, port=port, extra={"security": {"test_pki_at_hours": AT_HOURS}}
    ).start()
    d.mapem = d.trigger("rlt", example("mapem-4arm-intersection.json"))  # the intersection every test draws
    yield d
    d.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser, daemon):
    pg = await browser.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    await pg.close()
    assert not errors, f"script errors on the page: {errors}"


def _spatem(group_one_state: str) -> dict:
    value = copy.deepcopy(example("spatem-4arm-intersection.json"))
    state = value["spat"]["intersections"][0]["states"][0]
    assert state["signalGroup"] == 1
    state["state-time-speed"][0]["eventState"] = group_one_state
    return value


@IN_MODULE_LOOP
async def test_page_draws_the_mapem_and_lists_the_store(daemon, page):
    mapem = example("mapem-4arm-intersection.json")
    lanes = len(mapem["map"]["intersections"][0]["laneSet"])
    rlt = daemon.mapem
    ivi = daemon.trigger("ivi", example("ivim-speed-limit.json"))
    await page.goto(daemon.url + "/ui")
    box = page.locator('.intersection[data-key="1201"]')
    await box.locator("svg g.lane").nth(lanes - 1).wait_for(timeout=WAIT_MS)
    assert await box.locator("svg g.lane").count() == lanes == int(await box.get_attribute("data-lanes"))
    assert await box.locator("svg .stop-line").count() > 0
    store = page.locator("#store tbody")
    await store.locator(f'tr[data-id="{rlt["id"]}"]').wait_for(timeout=WAIT_MS)
    rows = store.locator("tr")
    listed = {
        (await rows.nth(i).locator("td").nth(0).inner_text(), await rows.nth(i).get_attribute("data-id"))
        for i in range(await rows.count())
    }
    assert {("rlt", rlt["id"]), ("ivi", ivi["id"])} <= listed
    # the IVIM's two GLC zones, with what its GIV container uses them for
    zones = page.locator("#ivim tbody tr")
    assert await zones.count() == 2
    assert await zones.nth(0).locator("td").nth(2).inner_text() == "1"
    assert await zones.nth(0).locator("td").nth(7).inner_text() == "detection"
    assert await page.locator("#transports tbody tr td").first.inner_text() == "gn"


@IN_MODULE_LOOP
async def test_signal_group_colours_follow_spatem_updates(daemon, page):
    tlm = daemon.trigger("tlm", _spatem("protected-Movement-Allowed"))
    await page.goto(daemon.url + "/ui")
    await page.locator("#live.on").wait_for(timeout=WAIT_MS)
    label = page.locator('.intersection[data-key="1201"] svg text.signal-group[data-signal-group="1"]').first
    await page.wait_for_function(
        "el => el.classList.contains('state-green')", arg=await label.element_handle(), timeout=WAIT_MS
    )
    green = await label.evaluate("el => getComputedStyle(el).fill")
    row = page.locator('#signal-groups tr[data-intersection="1201"][data-group="1"] td').nth(2)
    assert await row.inner_text() == "protected-Movement-Allowed"

    status, answer = daemon.request("PUT", f"/v1/tlm/messages/{tlm['id']}", {"payload": _spatem("stop-And-Remain")})
    assert status == 200, answer
    await page.wait_for_function(
        "el => el.classList.contains('state-red')", arg=await label.element_handle(), timeout=WAIT_MS
    )
    assert await label.evaluate("el => getComputedStyle(el).fill") != green
    assert "state-green" not in await label.get_attribute("class")
    connections = page.locator('.intersection[data-key="1201"] svg path.connection[data-signal-group="1"]')
    assert await connections.count() > 0
    classes = [await connections.nth(i).get_attribute("class") for i in range(await connections.count())]
    assert all("state-red" in c for c in classes)
    assert await row.inner_text() == "stop-And-Remain"


@IN_MODULE_LOOP
async def test_at_expiry_warning(daemon, page):
    await page.goto(daemon.url + "/ui")
    warning = page.locator("#warnings li.expiry-warning").first
    await warning.wait_for(timeout=WAIT_MS)
    text = await warning.inner_text()
    assert "AT" in text and "h left" in text
    rows = page.locator("#expiry tbody tr.warning")
    assert await rows.count() >= 1
    hours = float(await rows.first.locator("td").nth(2).inner_text())
    assert 0 < hours < 24 and hours <= AT_HOURS


async def _clock_panel(page) -> dict[str, str]:
    """The "Clock and GNSS" panel's rows once the page has filled it: field -> shown value."""
    rows = page.locator("#clock-health tbody tr[data-field]")
    await rows.first.wait_for(timeout=WAIT_MS)
    return {
        await rows.nth(i).get_attribute("data-field"): await rows.nth(i).locator("td").inner_text()
        for i in range(await rows.count())
    }


@IN_MODULE_LOOP
async def test_clock_panel_shows_the_kernels_verdict(daemon, page):
    from rsu.health.clock import ClockReadError, read_kernel

    status, answer = daemon.get("/v1/status")
    assert status == 200
    clock = answer["clock"]
    if clock["source"] != "kernel":  # clock.sync_source auto: a chronyd answering here decides instead
        pytest.skip(f"the default daemon's clock source is {clock['source']!r}, not the kernel ({clock['detail']})")
    try:
        kernel = read_kernel()
    except ClockReadError as e:
        pytest.skip(f"adjtimex cannot be read here: {e}")
    await page.goto(daemon.url + "/ui")
    shown = await _clock_panel(page)
    assert shown["source"] == "kernel"
    assert shown["state"] == ("synchronized" if kernel.synchronized else "not synchronized")
    assert shown["policy"] == "warn" and shown["timed"] == "spatem, ssem"
    assert shown["error"].endswith(" ms")
    assert await page.locator("#gnss-health").is_hidden()  # no clock.gpsd
    banner = page.locator("#warnings li.clock-warning")
    if kernel.synchronized:
        assert await banner.count() == 0
    else:
        assert "are sent with an unsynchronized clock" in await banner.inner_text()


@pytest.fixture(scope="module")
def unsynced_daemon(tmp_path_factory):
    """A daemon told to read chrony at an address where no chronyd answers, and to stop timed messages; its
    gpsd is a free port nobody listens on."""
    group, port = group_and_port()
    clock = {
        "sync_source": "chrony",
        "unsynchronized": "stop",
        "chrony_address": "127.0.0.1",
        "gpsd": {"host": "127.0.0.1", "port": free_tcp_port()},
    }
    d = RsuDaemon(tmp_path_factory.mktemp("webview-clock"), group=group, port=port, extra={"clock": clock}).start()
    yield d
    d.stop()


@IN_MODULE_LOOP
async def test_clock_panel_and_stop_banner_when_not_synchronized(unsynced_daemon, page):
    status, answer = unsynced_daemon.get("/v1/status")
    assert status == 200
    clock = answer["clock"]
    if clock["synchronized"]:
        pytest.skip(f"a chronyd answers at 127.0.0.1 and is synchronized here ({clock['detail']})")
    await page.goto(unsynced_daemon.url + "/ui")
    shown = await _clock_panel(page)
    assert shown["state"] == "not synchronized" and shown["source"] == "none"
    assert shown["policy"] == "stop" and shown["offset"] == "unknown"
    assert await page.locator('#clock-health tr[data-field="state"].warning').count() == 1
    banner = page.locator("#warnings li.clock-warning")
    await banner.wait_for(timeout=WAIT_MS)
    text = await banner.inner_text()
    assert "NOT synchronized" in text and "NOT being sent" in text
    assert "spatem" in text and "ssem" in text
    assert await banner.evaluate("el => getComputedStyle(el).fontWeight") == "600"  # shown like the expiry banner
    gnss = page.locator("#gnss-health tbody tr[data-field]")  # clock.gpsd is set: its rows are shown
    assert await page.locator("#gnss-health").is_visible()
    assert [await gnss.nth(i).locator("td").inner_text() for i in range(await gnss.count())] == [
        "not connected",
        "unknown",
        "no position",
        "unknown",
    ]


def test_assets_are_package_data_and_nothing_else_is_served(daemon):
    from importlib import resources

    folder = Path(str(resources.files("rsu.api").joinpath("static", "ui")))
    for name in ("index.html", "ui.js", "ui.css"):
        assert (folder / name).is_file()
    status, body = daemon.get("/ui")
    assert status == 200 and "ui/ui.js" in body and "http" not in body.replace("http-equiv", "")  # no CDN
    assert daemon.get("/ui/ui.js")[0] == 200
    assert daemon.get("/ui/rsu.yaml")[0] == 404
    assert daemon.get("/ui/..%2Frsu.yaml")[0] == 404

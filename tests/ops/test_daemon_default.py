"""The README's first command: ``rsu run`` with no configuration is a working RSU on loopback.

The daemon runs the embedded default with only its network addresses moved (``--set`` of the GN
group and port and of the API port, as an operator would to run a second RSU on one host), so the
test neither disturbs nor hears another rsu on 239.118.122.97:8947 or 127.0.0.1:8301. HOME is a
temporary directory: the default state directory (~/.local/state/rsu) and the test PKI land there.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
import urllib.request

from rsu.ops import config as cfgmod
from rsu.transports import gn
from tests.conftest import REPO, run_rsu
from tests.netutil import free_tcp_port
from tests.ops.daemonproc import EXAMPLES, MulticastReceiver
from tests.ops.test_daemon_e2e import ETHERNET, open_frame


def test_embedded_default_config_runs_a_signed_rsu_on_loopback(tmp_path, gn_net):
    group, port = gn_net
    api = free_tcp_port()
    overrides = [f"transports[0].group={group}", f"transports[0].port={port}", f"api.port={api}"]
    # what runs is the embedded default with exactly these three values changed
    default = cfgmod.load(None)
    moved = cfgmod.load(None, overrides)
    assert moved.model_dump(exclude={"transports", "api"}) == default.model_dump(exclude={"transports", "api"})
    assert moved.api == default.api.model_copy(update={"port": api})
    assert moved.transports == [dataclasses.replace(default.transports[0], group=group, port=port)]

    env = {k: v for k, v in os.environ.items() if k not in ("STATE_DIRECTORY", "XDG_STATE_HOME", "RSU_API_URL")}
    env.update(HOME=str(tmp_path), PYTHONUNBUFFERED="1")
    log = (tmp_path / "rsu.log").open("wb")
    argv = [sys.executable, "-m", "rsu", "run"] + [a for o in overrides for a in ("--set", o)]
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    rx = MulticastReceiver(group, port)
    url = f"http://127.0.0.1:{api}"
    try:
        deadline = time.monotonic() + 30
        while True:  # bounded poll for the API
            assert proc.poll() is None, (tmp_path / "rsu.log").read_text()
            try:
                with urllib.request.urlopen(url + "/v1/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                assert time.monotonic() < deadline, "the default daemon did not come up"
                time.sleep(0.05)
        state = tmp_path / ".local" / "state" / "rsu"
        assert (state / "pki" / "root.oer").exists() and list((state / "pki" / "at").glob("*.key"))
        # the README's next step: trigger a MAPEM with the CLI client against the API
        trig = run_rsu(
            "trigger",
            "rlt",
            str(EXAMPLES / "mapem-4arm-intersection.json"),
            env={"HOME": str(tmp_path), "RSU_API_URL": url},
        )
        assert trig.returncode == 0, trig.stderr
        frames = rx.frames(lambda got: any(gn.parse_packet(f[ETHERNET:]).btp_port == 2003 for f in got))
        frame = next(f for f in frames if gn.parse_packet(f[ETHERNET:]).btp_port == 2003)
        _, result = open_frame(frame, state / "pki")
        assert result.ok and result.pdu.kind.name == "mapem"
    finally:
        rx.close()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(15)
        log.close()
    assert code == 0
    text = (tmp_path / "rsu.log").read_text()
    assert "created a local TEST PKI" in text and "stopped" in text
    assert f"API http://127.0.0.1:{api}," in text

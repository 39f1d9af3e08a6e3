"""The README's first command: ``rsu run`` with no configuration is a working RSU on loopback.

Uses the embedded default's fixed addresses (API 127.0.0.1:8301, GN group 239.118.122.97:8947 on lo)
with HOME pointed at a temporary directory, so the state and the test PKI land there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

from tests.conftest import REPO, run_rsu
from tests.ops.daemonproc import EXAMPLES, MulticastReceiver
from tests.ops.test_daemon_e2e import ETHERNET, open_frame

from rsu.transports import gn


def test_embedded_default_config_runs_a_signed_rsu_on_loopback(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("STATE_DIRECTORY", "XDG_STATE_HOME")}
    env.update(HOME=str(tmp_path), PYTHONUNBUFFERED="1")
    log = (tmp_path / "rsu.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "rsu", "run"], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    rx = MulticastReceiver("239.118.122.97", 8947)
    try:
        deadline = time.monotonic() + 30
        while True:  # bounded poll for the API
            assert proc.poll() is None, (tmp_path / "rsu.log").read_text()
            try:
                with urllib.request.urlopen("http://127.0.0.1:8301/v1/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                assert time.monotonic() < deadline, "the default daemon did not come up"
                time.sleep(0.05)
        state = tmp_path / ".local" / "state" / "rsu"
        assert (state / "pki" / "root.oer").exists() and list((state / "pki" / "at").glob("*.key"))
        # the README's next step: trigger a MAPEM with the CLI client against the default API
        trig = run_rsu("trigger", "rlt", str(EXAMPLES / "mapem-4arm-intersection.json"), env={"HOME": str(tmp_path)})
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

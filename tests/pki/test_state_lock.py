"""The lock between a running daemon's PKI client and the ``rsu pki`` commands that change its state
(rsu.statelock, shared with the services store): real processes (the CLI in a subprocess), real flock."""

from __future__ import annotations

import json

import pytest
import yaml

from rsu import statelock
from rsu.clock import ManualClock
from rsu.ops import config as cfgmod
from rsu.pki.client import lock_state
from rsu.pki.errors import PkiError
from rsu.pki.runtime import PkiRuntime
from tests.conftest import run_rsu
from tests.pki.authorities import NOW
from tests.pki.world import ITS_ID, PkiWorld


@pytest.fixture
def setup(tmp_path):
    from rsu.pki.keystore import FileKeyStore

    world = PkiWorld(
        FileKeyStore(tmp_path / "nobody").get_or_generate("canonical").public_key(), base="http://127.0.0.1:9"
    )  # nothing listens: a command that gets past the lock fails there
    values = {
        "state_dir": str(tmp_path / "state"),
        "services": {"ivi_provider": {"country": "FR", "issuer": 7}},
        "pki": {
            "cpoc_url": world.cpoc_url,
            "tlm": world.tlm.certificate.hashed_id8.hex(),
            "root": world.root.certificate.hashed_id8.hex(),
            "its_id": ITS_ID.decode(),
            "http_timeout": 2,
            "http_retries": 0,
        },
    }
    path = tmp_path / "rsu.yaml"
    path.write_text(yaml.safe_dump(values))
    return path, cfgmod.parse(values), tmp_path / "state" / "pki-client"


async def test_changing_commands_are_refused_while_the_daemon_runs_read_only_ones_work(setup):
    path, config, state = setup
    runtime = PkiRuntime.open(config, ManualClock(NOW))  # what the daemon does at start, for its whole run
    try:
        for command in (["enrol"], ["authorize"], ["trust", "update"]):
            r = run_rsu("pki", *command, "--config", str(path))
            err = r.stderr.decode()
            assert r.returncode == 2 and "state-busy" in err, (command, err)
            assert "running rsu daemon" in err and "systemctl stop rsu" in err and "rsu pki status" in err
        assert not (state / "trust.json").exists() and not (state / "ec.json").exists()
        r = run_rsu("pki", "status", "--config", str(path))  # read-only: works beside the daemon
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["ec"] is None
    finally:
        await runtime.close()
    # the daemon stopped: the command gets past the lock (and fails at the network, nothing listens)
    r = run_rsu("pki", "trust", "update", "--config", str(path))
    assert r.returncode == 1 and json.loads(r.stdout)["outcomes"][0]["job"] == "trust", r.stderr


async def test_the_daemon_does_not_start_while_a_command_changes_the_state(setup):
    _, config, state = setup
    held = lock_state(state, exclusive=True)  # an `rsu pki enrol` in progress
    try:
        with pytest.raises(PkiError) as e:
            PkiRuntime.open(config, ManualClock(NOW))
        assert e.value.reason == "state-busy" and "rsu pki` command" in e.value.detail
        with pytest.raises(PkiError, match="state-busy"):
            lock_state(state, exclusive=True)  # two commands exclude each other too
    finally:
        statelock.release(held)
    runtime = PkiRuntime.open(config, ManualClock(NOW))
    second = PkiRuntime.open(config, ManualClock(NOW))  # a reload opens it again in the same process
    await second.close()
    await runtime.close()
    statelock.release(lock_state(state, exclusive=True))  # both released at close

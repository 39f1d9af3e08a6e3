"""Fixtures of the PKI client tests: a SoftHSM2 token (Debian's softhsm2, installed when root and missing).

``softhsm``: one SoftHSM2 token for the session (the PKCS#11 library reads its configuration
and its token list once per process); ``hsm_token`` is a key store on it, emptied before and
after each test. Without SoftHSM2 (and no way to install it) the tests fail under CI and are skipped
elsewhere, as for Mosquitto and tshark.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.transports.conftest import ensure_debian_tool

PIN, SO_PIN, TOKEN = "1234", "123456", "rsu-test"
_MODULES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
)


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory):
    util = ensure_debian_tool("softhsm2-util", "softhsm2")
    try:
        import pkcs11  # noqa: F401
    except ImportError:
        message = "python-pkcs11 is not installed (pip install -e '.[test]')"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    module = next((m for m in _MODULES if Path(m).exists()), None)
    if module is None:
        pytest.fail(f"softhsm2 is installed but libsofthsm2.so is in none of {_MODULES}")
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)  # read by the library at C_Initialize, once per process
    subprocess.run(
        [util, "--init-token", "--free", "--label", TOKEN, "--pin", PIN, "--so-pin", SO_PIN],
        check=True,
        capture_output=True,
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
    )
    return {"module": module, "token": TOKEN}


@pytest.fixture
def hsm_token(softhsm):
    from rsu.pki.keystore import Pkcs11KeyStore

    store = Pkcs11KeyStore(softhsm["module"], TOKEN, PIN)
    for label in store.labels():
        store.delete(label)
    yield store
    for label in store.labels():
        store.delete(label)
    store.close()

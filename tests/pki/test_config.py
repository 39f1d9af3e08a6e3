"""The pki: configuration section: validation (every issue named) and the client built from it."""

from __future__ import annotations

import pytest

from rsu.ops import config as cfgmod
from rsu.ops.config_core import ConfigError
from rsu.pki import config as pkicfg
from rsu.pki.keystore import FileKeyStore

BASE = {"cpoc_url": "https://cpoc.example/L0", "tlm": "8FFE810BDB0D71E6", "root": "1D261F9E338ECB5B"}


def test_absent_section_means_no_client():
    assert cfgmod.parse({}).pki is None


def test_section_to_client_config(tmp_path):
    cfg = cfgmod.parse(
        {
            "state_dir": str(tmp_path),
            "pki": {
                **BASE,
                "its_id": "hex:0102",
                "at_pool": 3,
                "re_enrol_margin": "84d",
                "services": ["spatem", "ivim"],
            },
        }
    )
    from rsu.security import ssp

    client_cfg = pkicfg.client_config(cfg.pki, ssp.ServiceProvider.of("FR", 57))
    assert client_cfg.its_id == b"\x01\x02" and client_cfg.at_pool == 3
    assert client_cfg.re_enrol_margin == 84 * 86400
    assert client_cfg.tlm_ids == (bytes.fromhex("8FFE810BDB0D71E6"),)
    assert [p["psid"] for p in client_cfg.permissions] == [137, 139]
    store = pkicfg.open_store(cfg.pki, cfg.state_path)
    assert isinstance(store, FileKeyStore) and store.directory == tmp_path / "pki-client" / "keys"


def test_every_issue_is_named():
    with pytest.raises(ConfigError) as e:
        cfgmod.parse(
            {
                "pki": {
                    "cpoc_url": "ftp://x",
                    "tlm": "xyz",
                    "root": BASE["root"],
                    "at_renew_fraction": 1.5,
                    "services": ["spatem", "cam"],
                    "keystore": {"backend": "pkcs11", "module": "/m.so"},
                    "pin": "1234",
                }
            }
        )
    text = str(e.value)
    for field in ("pki.cpoc_url", "pki.tlm", "pki.at_renew_fraction", "pki.services", "pki.keystore", "pki.pin"):
        assert field in text, field
    assert "token, pin_file" in text


def test_pkcs11_pin_comes_from_a_file(tmp_path, softhsm):
    from tests.pki.conftest import PIN

    pin = tmp_path / "pin"
    pin.write_text(PIN + "\n")
    cfg = cfgmod.parse(
        {
            "state_dir": str(tmp_path),
            "pki": {
                **BASE,
                "keystore": {
                    "backend": "pkcs11",
                    "module": softhsm["module"],
                    "token": softhsm["token"],
                    "pin_file": str(pin),
                },
            },
        }
    )
    store = pkicfg.open_store(cfg.pki, cfg.state_path)
    try:
        assert store.labels() is not None
    finally:
        store.close()

"""The ``pki:`` configuration section (TS 102 941 client) and building the client from it.

Example::

    pki:
      cpoc_url: https://cpoc.jrc.ec.europa.eu/L0
      tlm: 8FFE810BDB0D71E6          # TLM HashedId8, trusted out of band
      root: 1D261F9E338ECB5B         # the Root CA the RSU is registered under
      its_id: RSU-PARIS-0001         # canonical id (or hex:...); default: from identity.json
      keystore: {backend: file}      # or {backend: pkcs11, module: ..., token: ..., pin_file: ...}
      re_enrol_margin: 30d
      at_pool: 2
      at_renew_fraction: 0.2

Present: the daemon runs the client (:mod:`rsu.pki.runtime`) and signs with its ATs only.
Absent: no PKI client (the daemon signs with ``security.tickets_dir`` as before).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from rsu.ops.config_core import Seconds, within
from rsu.secretfile import read_secret_file

_H8 = re.compile(r"^[0-9A-Fa-f]{16}$")


@dataclass(frozen=True)
class ClientTuning:
    """The PKI client's timers and pool sizes with their defaults: the one source of both the ``pki:``
    section (:class:`PkiClientSection`) and :class:`rsu.pki.client.ClientConfig` (seconds unless named)."""

    re_enrol_margin: float = 30 * 86400.0  # re-enrol this long before the EC expires
    at_pool: int = 2  # fresh ATs kept
    at_renew_fraction: float = 0.2  # an AT is renewed when less than this fraction of its life is left
    trust_refresh_margin: float = 3600.0  # CTL/CRL fetched this long before their nextUpdate
    trust_refresh_interval: float = 86400.0  # ... or when this old
    retry_base: float = 30.0  # first retry after a failure, doubling ...
    retry_max: float = 3600.0  # ... up to this


TUNING = ClientTuning()


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _h8(value: Any) -> Any:
    """A HashedId8 written as 16 hex digits -> its 8 bytes."""
    if value is None or isinstance(value, bytes):
        return value
    if not isinstance(value, str) or not _H8.match(value):
        raise ValueError("expected a HashedId8: 16 hex digits")
    return bytes.fromhex(value)


def its_id_bytes(text: Any) -> bytes | None:
    """The canonical ITS id as written (``RSU-PARIS-0001``, or ``hex:0102...``) -> its bytes."""
    if text is None or isinstance(text, bytes):
        return text
    if not isinstance(text, str):
        raise ValueError("expected a text id, or hex:... for a binary one")
    if text.startswith("hex:"):
        try:
            return bytes.fromhex(text[4:])
        except ValueError:
            raise ValueError("expected hex digits after hex:") from None
    return text.encode()


HashedId8 = Annotated[bytes, BeforeValidator(_h8)]


def _url(value: str | None) -> str | None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
    return value


class KeyStoreSection(_Section):
    backend: Literal["file", "pkcs11"] = "file"
    dir: Path | None = None  # file backend; default <pki state>/keys
    module: str | None = None  # pkcs11: library path, e.g. /usr/lib/softhsm/libsofthsm2.so
    token: str | None = None  # pkcs11: token label
    pin_file: Path | None = None  # pkcs11: file holding the user PIN (never inline)

    @model_validator(mode="after")
    def _pkcs11_complete(self) -> KeyStoreSection:
        if self.backend == "pkcs11":
            missing = [n for n in ("module", "token", "pin_file") if getattr(self, n) is None]
            if missing:
                raise ValueError(f"backend pkcs11 needs {', '.join(missing)}")
        return self


class PkiClientSection(_Section):
    cpoc_url: str
    tlm: HashedId8  # 16 hex digits in the file, 8 bytes here
    root: HashedId8
    its_id: Annotated[bytes | None, BeforeValidator(its_id_bytes)] = None  # text, or hex:... (bytes here)
    ea: HashedId8 | None = None  # HashedId8 of the EA to use (default: first of the root's CTL)
    aa: HashedId8 | None = None
    ea_url: str | None = None  # overrides the CTL's access points
    aa_url: str | None = None
    state_dir: Path | None = None  # default <state_dir>/pki-client
    keystore: KeyStoreSection = KeyStoreSection()
    services: list[str] | None = None  # AT permissions for these services (default: all of catalog.py)
    re_enrol_margin: Annotated[Seconds, within(3600, 3 * 365 * 86400)] = TUNING.re_enrol_margin  # up to an EC lifetime
    at_pool: int = Field(TUNING.at_pool, ge=1, le=100)
    at_renew_fraction: float = Field(TUNING.at_renew_fraction, gt=0, lt=1)
    trust_refresh_margin: Annotated[Seconds, within(0, 30 * 86400)] = TUNING.trust_refresh_margin
    trust_refresh_interval: Annotated[Seconds, within(60, 30 * 86400)] = TUNING.trust_refresh_interval
    retry_base: Annotated[Seconds, within(1, 86400)] = TUNING.retry_base
    retry_max: Annotated[Seconds, within(1, 7 * 86400)] = TUNING.retry_max
    http_timeout: Annotated[Seconds, within(1, 600)] = 20.0
    http_retries: int = Field(2, ge=0, le=10)
    ca_file: Path | None = None  # extra CA bundle for https URLs (default: the system's)

    _urls = field_validator("cpoc_url", "ea_url", "aa_url")(classmethod(lambda cls, v: _url(v)))

    @field_validator("services")
    @classmethod
    def _known_services(cls, value: list[str] | None) -> list[str] | None:
        from rsu import catalog

        if value is not None:
            unknown = []
            for name in value:
                try:
                    catalog.by_name(name)
                except (KeyError, ValueError):
                    unknown.append(name)
            if unknown:
                raise ValueError(f"unknown services {', '.join(unknown)}")
        return value


def state_path(section: PkiClientSection, state_dir: Path) -> Path:
    return (section.state_dir or state_dir / "pki-client").expanduser()


def open_store(section: PkiClientSection, state_dir: Path):
    from rsu.pki.keystore import open_keystore

    ks = section.keystore
    if ks.backend == "file":
        return open_keystore("file", directory=(ks.dir or state_path(section, state_dir) / "keys").expanduser())
    pin = read_secret_file(ks.pin_file, "pki.keystore.pin_file") if ks.pin_file else None
    return open_keystore("pkcs11", module=ks.module, token=ks.token, pin=pin)


def client_config(section: PkiClientSection, provider: Any):
    """The :class:`rsu.pki.client.ClientConfig` of a ``pki:`` section (``provider``: the IVI service
    provider of ``services.ivi_provider``, part of the IVIM SSP)."""
    from rsu import catalog
    from rsu.pki.client import ClientConfig
    from rsu.pki.requests import service_permissions

    services = section.services if section.services is not None else [k.name for k in catalog.MESSAGES]
    return ClientConfig(
        its_id=section.its_id,
        cpoc_url=section.cpoc_url,
        tlm_ids=(section.tlm,),
        root_id=section.root,
        permissions=service_permissions(services, provider),
        ea_id=section.ea,
        aa_id=section.aa,
        ea_url=section.ea_url,
        aa_url=section.aa_url,
        re_enrol_margin=section.re_enrol_margin,
        at_pool=section.at_pool,
        at_renew_fraction=section.at_renew_fraction,
        trust_refresh_margin=section.trust_refresh_margin,
        trust_refresh_interval=section.trust_refresh_interval,
        retry_base=section.retry_base,
        retry_max=section.retry_max,
    )


def transport(section: PkiClientSection):
    import ssl

    from rsu.pki.http import HttpTransport

    context = ssl.create_default_context(cafile=str(section.ca_file)) if section.ca_file else None
    return HttpTransport(timeout=section.http_timeout, retries=section.http_retries, ssl_context=context)

"""The canonical identity of the RSU: a canonical key pair (in a key store) and a canonical id.

The canonical id is the ``itsId`` of the initial enrolment request and the canonical public
key what the EA operator registers for it (out of band, facts §1.1). Both are kept in
``<state>/identity.json`` (no key material: the private key stays in the key store under
the label ``canonical``). Made once; never replaced silently.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from rsu.pki.errors import PkiError
from rsu.pki.keystore import KeyStore, atomic_write

CANONICAL_LABEL = "canonical"
IDENTITY_FILE = "identity.json"


class IdentityError(PkiError):
    pass


def public_key_hex(public_key) -> str:
    return public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint).hex()


def load_identity(state_dir: str | os.PathLike) -> dict | None:
    path = Path(state_dir) / IDENTITY_FILE
    try:
        data = json.loads(path.read_text())
        bytes.fromhex(data["itsId"])
        return data
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise IdentityError("bad-identity", f"{path}: unreadable ({type(e).__name__})") from None


def ensure_identity(
    store: KeyStore, state_dir: str | os.PathLike, its_id: bytes | None = None, curve_name: str = "ecdsaNistP256"
) -> dict:
    """The canonical identity, made if missing: ``{"itsId": hex, "publicKey": hex, "keyLabel"}``.

    ``its_id`` defaults to 16 random octets. An existing identity with another id, or whose key
    is missing from the store, is an error (the EA knows the old one).
    """
    existing = load_identity(state_dir)
    if existing is not None:
        if its_id is not None and bytes.fromhex(existing["itsId"]) != its_id:
            raise IdentityError("identity-exists", f"canonical id is already {existing['itsId']}")
        key = store.get(existing.get("keyLabel", CANONICAL_LABEL))
        if public_key_hex(key.public_key()) != existing["publicKey"]:
            raise IdentityError("identity-mismatch", "the canonical key in the key store is not the registered one")
        return existing
    key = store.get_or_generate(CANONICAL_LABEL, curve_name)
    identity = {
        "itsId": (its_id if its_id is not None else os.urandom(16)).hex(),
        "publicKey": public_key_hex(key.public_key()),
        "curve": key.curve_name,
        "keyLabel": CANONICAL_LABEL,
    }
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    atomic_write(Path(state_dir) / IDENTITY_FILE, (json.dumps(identity, indent=2) + "\n").encode(), mode=0o644)
    return identity

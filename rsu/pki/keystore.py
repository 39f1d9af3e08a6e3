"""Private keys of the PKI client behind one interface: a file backend and a PKCS#11 backend.

A :class:`KeyStore` generates, finds, lists and deletes keys by label. What it hands out is
a :class:`KeyHandle`: it signs (ECDSA over a prehashed digest), derives an ECDH shared
secret (to open ECIES data sent to us) and gives the public key, and nothing else. There is
no way to export a private key through this API; a handle's ``repr`` names only its label
and curve. A handle has the methods of ``cryptography``'s ``EllipticCurvePrivateKey`` that
signing and ECIES use (``curve``, ``public_key()``, ``sign(digest, ECDSA(Prehashed))``,
``exchange(ECDH(), peer)``), so :func:`rsu.pki.signed.sign` and :mod:`rsu.pki.ecies`
take either.

Labels are short names (``[A-Za-z0-9._-]``, at most 64 characters): ``canonical`` for the
canonical key, ``ec-...`` and ``at-...`` for the EC and AT keys (see :mod:`rsu.pki.client`).

* :class:`FileKeyStore`: one PEM (PKCS#8) file per key, mode 0600, in a directory of mode
  0700; written to a temporary file, fsynced and renamed, so a crash leaves the old key or
  the new one, never half a key. A directory or key file that group/others can read is refused.
* :class:`Pkcs11KeyStore`: keys generated on a PKCS#11 token (an HSM, or SoftHSM2 for
  tests) with ``CKA_SENSITIVE`` and not ``CKA_EXTRACTABLE``; signing (``CKM_ECDSA``) and
  ECDH (``CKM_ECDH1_DERIVE``) happen on the token. Needs ``python-pkcs11`` (``rsu[hsm]``).
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature, encode_dss_signature

from rsu.pki.errors import PkiError
from rsu.security.keys import CURVES, KeyMaterialError, curve_of, generate_private_key, private_key_pem

LABEL = re.compile(r"[A-Za-z0-9._-]{1,64}")


class KeyStoreError(PkiError):
    """``reason``: bad-label, exists, not-found, unsupported, insecure, backend (detail never holds key material)."""


def check_label(label: str) -> str:
    if not isinstance(label, str) or not LABEL.fullmatch(label) or label.startswith("."):
        raise KeyStoreError("bad-label", f"key label {label!r}: use 1-64 of A-Z a-z 0-9 . _ - (not starting with .)")
    return label


class KeyHandle(ABC):
    """A private key that signs and agrees keys but cannot be exported."""

    def __init__(self, label: str, curve_name: str, public: ec.EllipticCurvePublicKey) -> None:
        self.label = label
        self.curve_name = curve_name
        self._public = public

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    def sign(self, data: bytes, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        """DER ECDSA signature of a digest (``ec.ECDSA(Prehashed(...))`` only)."""
        algorithm = getattr(signature_algorithm, "algorithm", None)
        if not isinstance(algorithm, Prehashed) or len(data) != algorithm.digest_size:
            raise KeyStoreError("unsupported", "key handles sign prehashed digests only")
        r, s = self.sign_digest(bytes(data))
        return encode_dss_signature(r, s)

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        """ECDH shared secret Z (the x-coordinate), as ``EllipticCurvePrivateKey.exchange``."""
        if not isinstance(algorithm, ec.ECDH):
            raise KeyStoreError("unsupported", "only ECDH key agreement")
        if not isinstance(peer_public_key.curve, type(self.curve)):
            raise KeyStoreError("unsupported", f"peer key on {peer_public_key.curve.name}, ours on {self.curve.name}")
        return self.ecdh(peer_public_key)

    @abstractmethod
    def sign_digest(self, digest: bytes) -> tuple[int, int]: ...

    @abstractmethod
    def ecdh(self, peer: ec.EllipticCurvePublicKey) -> bytes: ...

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label} {self.curve_name}>"

    def __reduce__(self):  # never pickled (a pickle of a file handle would carry the key)
        raise TypeError("key handles cannot be serialized")


class KeyStore(ABC):
    """Generate, find, list and delete private keys by label."""

    @abstractmethod
    def generate(self, label: str, curve_name: str = "ecdsaNistP256") -> KeyHandle:
        """A new key under ``label`` (KeyStoreError ``exists`` if the label is taken)."""

    @abstractmethod
    def get(self, label: str) -> KeyHandle:
        """The key under ``label`` (KeyStoreError ``not-found``)."""

    @abstractmethod
    def labels(self, prefix: str = "") -> list[str]:
        """Sorted labels starting with ``prefix``."""

    @abstractmethod
    def delete(self, label: str) -> bool:
        """Remove the key; False if there was none."""

    def has(self, label: str) -> bool:
        return check_label(label) in self.labels(label)

    def get_or_generate(self, label: str, curve_name: str = "ecdsaNistP256") -> KeyHandle:
        return self.get(label) if self.has(label) else self.generate(label, curve_name)

    def close(self) -> None:  # noqa: B027  optional hook: most stores hold nothing to close
        pass


def _curve_name(curve_name: str) -> str:
    if curve_name not in CURVES:
        raise KeyStoreError("unsupported", f"curve {curve_name!r} (one of {', '.join(CURVES)})")
    return curve_name


# ====================================================================== files


class _FileKey(KeyHandle):
    def __init__(self, label: str, key: ec.EllipticCurvePrivateKey) -> None:
        super().__init__(label, curve_of(key).name, key.public_key())
        self.__key = key

    def sign_digest(self, digest: bytes) -> tuple[int, int]:
        curve = CURVES[self.curve_name]
        return decode_dss_signature(self.__key.sign(digest, curve.prehashed))

    def ecdh(self, peer: ec.EllipticCurvePublicKey) -> bytes:
        return self.__key.exchange(ec.ECDH(), peer)


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old content or the new, never a mix:
    temporary file in the same directory (created with ``mode``), fsync, rename, fsync the directory."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class FileKeyStore(KeyStore):
    """PEM files ``DIR/<label>.key`` (0600) in ``DIR`` (0700, created if missing)."""

    SUFFIX = ".key"

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            mode = stat.S_IMODE(self.directory.stat().st_mode)
        except OSError as e:
            raise KeyStoreError("backend", f"{self.directory}: {e.strerror or e}") from None
        if mode & 0o077:
            raise KeyStoreError(
                "insecure",
                f"{self.directory}: key directory is accessible by group/others "
                f"(mode {mode:04o}); run chmod 700 {self.directory}",
            )

    def _path(self, label: str) -> Path:
        return self.directory / f"{check_label(label)}{self.SUFFIX}"

    def generate(self, label: str, curve_name: str = "ecdsaNistP256") -> KeyHandle:
        path = self._path(label)
        if path.exists():
            raise KeyStoreError("exists", f"a key labelled {label} already exists")
        key = generate_private_key(_curve_name(curve_name))
        atomic_write(path, private_key_pem(key))
        return _FileKey(label, key)

    def get(self, label: str) -> KeyHandle:
        path = self._path(label)
        try:
            st = path.stat()
            if stat.S_IMODE(st.st_mode) & 0o077:
                raise KeyStoreError(
                    "insecure",
                    f"{path}: key file is accessible by group/others "
                    f"(mode {stat.S_IMODE(st.st_mode):04o}); run chmod 600 {path}",
                )
            data = path.read_bytes()
        except FileNotFoundError:
            raise KeyStoreError("not-found", f"no key labelled {label}") from None
        except OSError as e:
            raise KeyStoreError("backend", f"{path}: {e.strerror or e}") from None
        try:
            key = serialization.load_pem_private_key(data, password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ValueError
            curve_of(key)
        except (ValueError, TypeError, KeyMaterialError):
            raise KeyStoreError("backend", f"{path}: not a readable elliptic-curve PEM key") from None
        return _FileKey(label, key)

    def labels(self, prefix: str = "") -> list[str]:
        return sorted(
            p.name[: -len(self.SUFFIX)]
            for p in self.directory.iterdir()
            if p.name.endswith(self.SUFFIX) and not p.name.startswith(".") and p.name.startswith(prefix)
        )

    def delete(self, label: str) -> bool:
        try:
            self._path(label).unlink()
            return True
        except FileNotFoundError:
            return False

    def __repr__(self) -> str:
        return f"<FileKeyStore {self.directory}>"


# ====================================================================== PKCS#11

# our curve names -> the named-curve names of python-pkcs11 / asn1crypto
_PKCS11_CURVES = {
    "ecdsaNistP256": "secp256r1",
    "ecdsaBrainpoolP256r1": "brainpoolp256r1",
    "ecdsaBrainpoolP384r1": "brainpoolp384r1",
    "ecdsaNistP384": "secp384r1",
}


def _der_octets(data: bytes) -> bytes:
    """CKA_EC_POINT is a DER OCTET STRING holding the X9.62 point (some tokens give the bare point)."""
    if data[:1] == b"\x04" and len(data) > 2:
        n = data[1]
        if n < 0x80 and n == len(data) - 2:
            return data[2:]
        if n == 0x81 and data[2] == len(data) - 3:
            return data[3:]
    return data


class _Pkcs11Key(KeyHandle):
    def __init__(
        self, store: Pkcs11KeyStore, label: str, curve_name: str, public: ec.EllipticCurvePublicKey, private: Any
    ) -> None:
        super().__init__(label, curve_name, public)
        self._store = store
        self._private = private

    def sign_digest(self, digest: bytes) -> tuple[int, int]:
        raw = self._store._call(lambda: self._private.sign(digest, mechanism=self._store.pkcs11.Mechanism.ECDSA))
        n = len(raw) // 2
        return int.from_bytes(raw[:n], "big"), int.from_bytes(raw[n:], "big")

    def ecdh(self, peer: ec.EllipticCurvePublicKey) -> bytes:
        p = self._store.pkcs11
        point = peer.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        size = CURVES[self.curve_name].size

        def derive():
            secret = self._private.derive_key(
                p.KeyType.GENERIC_SECRET,
                size * 8,
                mechanism_param=(p.mechanisms.KDF.NULL, None, point),
                template={p.Attribute.SENSITIVE: False, p.Attribute.EXTRACTABLE: True, p.Attribute.TOKEN: False},
            )
            try:
                return bytes(secret[p.Attribute.VALUE])
            finally:
                secret.destroy()

        return self._store._call(derive)


class Pkcs11KeyStore(KeyStore):
    """Keys on a PKCS#11 token, found by ``CKA_LABEL``. ``module``: the PKCS#11 library path
    (e.g. ``/usr/lib/softhsm/libsofthsm2.so``); ``token``: the token label; ``pin``: the user PIN."""

    def __init__(self, module: str, token: str, pin: str) -> None:
        try:
            import pkcs11
            import pkcs11.mechanisms  # noqa: F401  (KDF)
            import pkcs11.util.ec  # noqa: F401
        except ImportError:
            raise KeyStoreError(
                "unsupported", "the PKCS#11 key store needs python-pkcs11: pip install 'rsu[hsm]'"
            ) from None
        self.pkcs11 = pkcs11
        self.module, self.token_label = module, token
        try:
            lib = pkcs11.lib(module)
            self._token = lib.get_token(token_label=token)
            self._session = self._token.open(rw=True, user_pin=pin)
        except pkcs11.exceptions.NoSuchToken:
            raise KeyStoreError("backend", f"{module}: no token labelled {token!r}") from None
        except pkcs11.exceptions.PinIncorrect:
            raise KeyStoreError("backend", f"token {token!r}: PIN refused") from None
        except (pkcs11.exceptions.PKCS11Error, RuntimeError, OSError) as e:
            raise KeyStoreError("backend", f"{module} token {token!r}: {type(e).__name__} {e}") from None

    def _call(self, fn):
        try:
            return fn()
        except self.pkcs11.exceptions.PKCS11Error as e:
            raise KeyStoreError("backend", f"token {self.token_label!r}: {type(e).__name__}") from None

    def _find(self, label: str, cls) -> list:
        return list(self._session.get_objects({self.pkcs11.Attribute.LABEL: label, self.pkcs11.Attribute.CLASS: cls}))

    def generate(self, label: str, curve_name: str = "ecdsaNistP256") -> KeyHandle:
        p = self.pkcs11
        check_label(label)
        _curve_name(curve_name)
        if self.has(label):
            raise KeyStoreError("exists", f"a key labelled {label} already exists")

        def gen():
            params = self._session.create_domain_parameters(
                p.KeyType.EC,
                {p.Attribute.EC_PARAMS: p.util.ec.encode_named_curve_parameters(_PKCS11_CURVES[curve_name])},
                local=True,
            )
            return params.generate_keypair(
                store=True,
                label=label,
                public_template={p.Attribute.VERIFY: True, p.Attribute.TOKEN: True},
                private_template={
                    p.Attribute.SIGN: True,
                    p.Attribute.DERIVE: True,
                    p.Attribute.TOKEN: True,
                    p.Attribute.PRIVATE: True,
                    p.Attribute.SENSITIVE: True,
                    p.Attribute.EXTRACTABLE: False,
                },
            )

        public, private = self._call(gen)
        return _Pkcs11Key(self, label, curve_name, self._public_of(public, curve_name), private)

    def _public_of(self, public: Any, curve_name: str) -> ec.EllipticCurvePublicKey:
        point = _der_octets(bytes(self._call(lambda: public[self.pkcs11.Attribute.EC_POINT])))
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(CURVES[curve_name].ec_curve(), point)
        except ValueError:
            raise KeyStoreError(
                "backend", f"token public key of {public.label!r} is not a {curve_name} point"
            ) from None

    def get(self, label: str) -> KeyHandle:
        p = self.pkcs11
        check_label(label)
        privates = self._call(lambda: self._find(label, p.ObjectClass.PRIVATE_KEY))
        publics = self._call(lambda: self._find(label, p.ObjectClass.PUBLIC_KEY))
        if not privates or not publics:
            raise KeyStoreError("not-found", f"no key pair labelled {label} on token {self.token_label!r}")
        params = bytes(self._call(lambda: publics[0][p.Attribute.EC_PARAMS]))
        curve_name = next(
            (c for c, n in _PKCS11_CURVES.items() if p.util.ec.encode_named_curve_parameters(n) == params), None
        )
        if curve_name is None:
            raise KeyStoreError("unsupported", f"key {label}: curve parameters {params.hex()} not supported")
        return _Pkcs11Key(self, label, curve_name, self._public_of(publics[0], curve_name), privates[0])

    def labels(self, prefix: str = "") -> list[str]:
        p = self.pkcs11
        objs = self._call(lambda: list(self._session.get_objects({p.Attribute.CLASS: p.ObjectClass.PRIVATE_KEY})))
        return sorted({o.label for o in objs if o.label and o.label.startswith(prefix)})

    def delete(self, label: str) -> bool:
        p = self.pkcs11
        check_label(label)
        objs = self._call(
            lambda: self._find(label, p.ObjectClass.PRIVATE_KEY) + self._find(label, p.ObjectClass.PUBLIC_KEY)
        )
        for o in objs:
            self._call(o.destroy)
        return bool(objs)

    def close(self) -> None:
        try:
            self._session.close()
        except Exception:  # already closed or the token went away
            pass

    def __repr__(self) -> str:
        return f"<Pkcs11KeyStore {self.module} token={self.token_label!r}>"


def open_keystore(
    backend: str,
    *,
    directory: str | os.PathLike | None = None,
    module: str | None = None,
    token: str | None = None,
    pin: str | None = None,
) -> KeyStore:
    """The configured key store: ``file`` (``directory``) or ``pkcs11`` (``module``, ``token``, ``pin``)."""
    if backend == "file":
        if directory is None:
            raise KeyStoreError("backend", "file key store needs a directory")
        return FileKeyStore(directory)
    if backend == "pkcs11":
        missing = [n for n, v in (("module", module), ("token", token), ("pin", pin)) if not v]
        if missing:
            raise KeyStoreError("backend", f"pkcs11 key store needs {', '.join(missing)}")
        return Pkcs11KeyStore(module, token, pin)  # type: ignore[arg-type]
    raise KeyStoreError("unsupported", f"key store backend {backend!r} (file or pkcs11)")

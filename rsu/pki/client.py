"""The PKI client state machine (TS 102 941): EC, AT pool and trust store, sans-I/O.

:class:`PkiClient` decides what to do; an adapter (:mod:`rsu.pki.http`) does it. Time is an
input (``now``, POSIX seconds) and so is randomness; nothing here sleeps, opens a socket or
reads the clock.

* ``poll(now)`` returns the actions due now: :class:`Fetch` (GET a trust list) and
  :class:`HttpPost` (an encrypted request for the EA or AA). At most one action per job
  (``trust``, ``enrol``, ``authorize``) is in flight.
* ``on_result(result, now)`` takes the adapter's :class:`HttpResult` back and returns the
  :class:`Outcome` (``ok`` or a named failure). A failure never raises: it is counted, kept as
  the job's last error and the job retries after a jittered exponential backoff.
* ``next_wakeup(now)``: when ``poll`` has something new to do.

What is decided (config in :class:`ClientConfig`):

* **trust**: the ECTL from the CPOC (``{cpoc}/getectl/{TLM}``), then the enrolled root's CTL and
  CRL from its DC (``{dc}/getctl/{RCA}``, ``{dc}/getcrl/{RCA}``), each when missing, within
  ``trust_refresh_margin`` of its nextUpdate, or older than ``trust_refresh_interval``.
* **enrol**: initial enrolment (canonical key) when there is no valid EC; re-enrolment signed
  with the current EC ``re_enrol_margin`` seconds before it expires.
* **authorize**: keep ``at_pool`` ATs "fresh" (valid, with more than ``at_renew_fraction`` of
  their life left, or not yet valid); request one more whenever fewer are.

Nothing is half-applied: a list, EC or AT is stored only after it verified completely, by
replacing one JSON file atomically (temporary file, fsync, rename). New EC/AT keys are made
in the key store under their final label and deleted again if the answer is refused; at
load, keys no state file refers to (a crash between the two) are deleted.

State directory layout: ``trust.json`` (every applied list's bytes and when it was applied;
replayed at start, so the last good store is used when the network is down),
``ec.json``, ``ats.json`` (certificates and key labels; no key material), plus the
canonical identity (:mod:`rsu.pki.identity`).
"""

from __future__ import annotations

import json
import logging
import os
import random as _random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsu import clock
from rsu.pki import ecies, requests
from rsu.pki.config import TUNING
from rsu.pki.errors import PkiError
from rsu.pki.identity import CANONICAL_LABEL, load_identity
from rsu.pki.keystore import KeyStore, KeyStoreError, atomic_write
from rsu.pki.signed import signer_hashed_id8
from rsu.pki.trustlist import TrustListError, TrustStore, parse_trust_list
from rsu.security.certs import Certificate, CertificateError
from rsu.security.keys import SigningKey

log = logging.getLogger(__name__)

CT_REQUEST = "application/x-its-request"
CT_RESPONSE = "application/x-its-response"
JOBS = ("trust", "enrol", "authorize")
TLM_LINK_MARGIN = 30 * 86400.0  # the link certificate is looked for when the current TLM ends within this
LINK_ABSENT = (404, 405, 501)
MAX_DELTAS = 255  # deltas kept on top of one full list (ctlSequence has 256 values); then a full list is needed  # no link certificate, or no such endpoint (the URL is not confirmed)


# ====================================================================== actions and results


@dataclass(frozen=True)
class HttpPost:
    id: str
    url: str
    body: bytes = field(repr=False)
    content_type: str = CT_REQUEST
    accept: str = CT_RESPONSE


@dataclass(frozen=True)
class Fetch:
    id: str
    url: str
    kind: str  # "ectl" | "ctl" | "crl"


@dataclass(frozen=True)
class HttpResult:
    """What the adapter got: a status, content type and body, or ``error`` (``timeout``, ``connection``,
    ``tls``, ``too-large``...) when there was no HTTP answer."""

    id: str
    status: int | None = None
    content_type: str | None = None
    body: bytes = field(default=b"", repr=False)
    error: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class Outcome:
    job: str
    result: str  # "ok", a response code (e.g. "deniedpermissions"), or a failure reason
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.result == "ok"


@dataclass
class ClientConfig:
    its_id: bytes | None  # canonical id (None: from the identity file)
    cpoc_url: str
    tlm_ids: tuple[bytes, ...]  # TLM HashedId8s trusted out of band
    root_id: bytes  # the Root CA the RSU enrols under
    permissions: list[dict]  # AT appPermissions (requests.service_permissions)
    ea_id: bytes | None = None  # default: the first EA of the root's CTL
    aa_id: bytes | None = None  # default: the first AA of the root's CTL
    ea_url: str | None = None  # default: EaEntry.itsAccessPoint, else aaAccessPoint
    aa_url: str | None = None  # default: AaEntry.accessPoint
    re_enrol_margin: float = TUNING.re_enrol_margin  # defaults: rsu.pki.config.ClientTuning, as the pki: section
    at_pool: int = TUNING.at_pool
    at_renew_fraction: float = TUNING.at_renew_fraction
    trust_refresh_margin: float = TUNING.trust_refresh_margin
    trust_refresh_interval: float = TUNING.trust_refresh_interval
    retry_base: float = TUNING.retry_base
    retry_max: float = TUNING.retry_max
    key_curve: str = "ecdsaNistP256"


class ClientError(PkiError):
    pass


@dataclass
class _Job:
    failures: int = 0
    retry_at: float = 0.0
    in_flight: dict | None = None  # {"id", "kind"/"pending", ...}
    last_error: dict | None = None
    last_ok: float | None = None


@dataclass
class StoredCert:
    certificate: Certificate
    key_label: str
    key: SigningKey = field(repr=False)  # a key store's handle


# ====================================================================== the client


class PkiClient:
    def __init__(
        self,
        config: ClientConfig,
        keystore: KeyStore,
        state_dir: str | os.PathLike,
        *,
        random: ecies.Randomness | None = None,
        jitter: Callable[[], float] | None = None,
    ) -> None:
        self.config = config
        self.keys = keystore
        self.state_dir = Path(state_dir)
        self.random = random or ecies.SystemRandomness()
        self._jitter = jitter or _random.SystemRandom().random
        self.trust = TrustStore.with_anchor_ids(*config.tlm_ids)
        # list key -> {"raw": hex, "at": posix}; after deltas on top of a full list also "baseAt" (when the
        # full list was applied) and "deltas": [{"raw", "at"}] (replayed in order at start)
        self.trust_applied: dict[str, dict] = {}
        self.ec: StoredCert | None = None
        self.ea_cert: Certificate | None = None  # the EA that issued the EC
        self.ats: list[StoredCert] = []
        self.jobs = {j: _Job() for j in JOBS}
        self.attempts: dict[tuple[str, str], int] = {}
        self.load_errors: list[str] = []
        self._counter = 0
        self._link_checked = float("-inf")  # when {cpoc}/gettlmlinkcertificate was last looked at
        self._pending_link: bytes | None = None  # a link whose TLM certificate is still to be fetched

    # ------------------------------------------------------------------ load / save
    @classmethod
    def load(
        cls, config: ClientConfig, keystore: KeyStore, state_dir: str | os.PathLike, *, read_only: bool = False, **kw
    ) -> PkiClient:
        """Client with the state of ``state_dir`` (trust lists replayed, EC, ATs); orphan keys deleted
        unless ``read_only`` (``rsu pki status`` beside a running daemon: a key it has just made for a
        request in flight is not an orphan). Unusable state files are named in ``load_errors`` and
        ignored, never fatal."""
        self = cls(config, keystore, state_dir, **kw)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if config.its_id is None:
            identity = load_identity(self.state_dir)
            if identity is not None:
                config.its_id = bytes.fromhex(identity["itsId"])
        self._load_trust()
        self._load_certs()
        if read_only:
            return self
        keep = {CANONICAL_LABEL} | {s.key_label for s in ([self.ec] if self.ec else []) + self.ats}
        try:
            for label in keystore.labels():
                if label.startswith(("ec-", "at-")) and label not in keep:
                    keystore.delete(label)
        except KeyStoreError as e:
            self.load_errors.append(f"keystore: {e}")
        return self

    def _read_json(self, name: str) -> Any:
        path = self.state_dir / name
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            self.load_errors.append(f"{name}: unreadable ({type(e).__name__})")
            return None

    def _load_trust(self) -> None:
        saved = self._read_json("trust.json") or {}
        self.trust, self.trust_applied, errors = replay_trust(self.trust, saved)
        self.load_errors += errors

    def _load_certs(self) -> None:
        ec_state = self._read_json("ec.json")
        if ec_state:
            try:
                self.ec = self._stored(ec_state)
                self.ea_cert = Certificate.from_bytes(bytes.fromhex(ec_state["ea"]))
            except (KeyError, ValueError, CertificateError, KeyStoreError) as e:
                self.ec = None
                self.load_errors.append(f"ec.json: {getattr(e, 'reason', type(e).__name__)}")
        for n, at in enumerate(self._read_json("ats.json") or []):
            try:
                self.ats.append(self._stored(at))
            except (KeyError, ValueError, CertificateError, KeyStoreError) as e:
                self.load_errors.append(f"ats.json[{n}]: {getattr(e, 'reason', type(e).__name__)}")

    def _stored(self, state: dict) -> StoredCert:
        label = state["keyLabel"]
        return StoredCert(Certificate.from_bytes(bytes.fromhex(state["certificate"])), label, self.keys.get(label))

    def _save(self, name: str, value: Any) -> None:
        atomic_write(self.state_dir / name, (json.dumps(value, indent=1) + "\n").encode())

    def _save_trust(self, applied: dict) -> None:
        self._save("trust.json", {"lists": applied})

    def _save_ec(self, ec: StoredCert, ea: Certificate) -> None:
        self._save("ec.json", {"certificate": ec.certificate.raw.hex(), "keyLabel": ec.key_label, "ea": ea.raw.hex()})

    def _save_ats(self, ats: list[StoredCert]) -> None:
        self._save("ats.json", [{"certificate": a.certificate.raw.hex(), "keyLabel": a.key_label} for a in ats])

    # ------------------------------------------------------------------ decisions
    def poll(self, now: float, jobs: tuple[str, ...] = JOBS) -> list[HttpPost | Fetch]:
        """The actions due at ``now`` (each job at most one in flight), of ``jobs`` only."""
        actions = []
        try:
            self._drop_expired_ats(now)
        except OSError as e:  # retried at the next poll; the expired ATs are not used meanwhile
            log.warning("PKI: expired ATs not dropped from the state: %s", e.strerror or e)
        for name, decide in (
            ("trust", self._trust_action),
            ("enrol", self._enrol_action),
            ("authorize", self._authorize_action),
        ):
            job = self.jobs[name]
            if name not in jobs or job.in_flight is not None or now < job.retry_at:
                continue
            try:
                action = decide(now)
            except Exception as e:  # a request that cannot be built: named, counted, backed off
                reason, detail = _failure(e)
                if reason == "internal-error":
                    log.exception("PKI %s: internal error", name)
                self._fail(name, reason, detail, now)
                self.attempts[(name, reason)] = self.attempts.get((name, reason), 0) + 1
                continue
            if action is not None:
                actions.append(action)
        return actions

    def next_wakeup(self, now: float) -> float:
        """The earliest time ``poll`` may return something new (retry times, nextUpdates, expiries)."""
        times = [j.retry_at for j in self.jobs.values() if j.in_flight is None and j.retry_at > now]
        times += [t for t in (self._trust_due_at(), self._ec_due_at(), self._at_due_at()) if t is not None]
        later = [t for t in times if t > now]
        return min(later) if later else now + self.config.trust_refresh_interval

    def _new_id(self, job: str) -> str:
        self._counter += 1
        return f"{job}-{self._counter}"

    # -- trust
    def _tlm_id(self, now: float | None) -> bytes | None:
        """The TLM whose ECTL to fetch: the newest valid TLM the store trusts (a successor linked by an
        ECTL of the current one, facts §8.4 step 9), else the current signer, else the configured anchor."""
        if self.trust.ectl is None:
            return self.config.tlm_ids[0] if self.config.tlm_ids else None
        current = self.trust.ectl.signer
        best, best_start = current, self.trust.tlms[current].start_posix if current in self.trust.tlms else 0.0
        for h8, cert in sorted(self.trust.tlms.items()):
            if (now is None or cert.valid_at(now)) and cert.start_posix > best_start:
                best, best_start = h8, cert.start_posix
        return best

    def _list_plan(self, now: float | None = None) -> list[tuple[str, str | None]]:
        """(list key, URL or None if not known yet) in the order they are needed."""
        cfg = self.config
        tlm = self._tlm_id(now)
        cpoc = cfg.cpoc_url
        plan = [("ectl", _join(cpoc, "getectl", tlm) if tlm else None)]
        dc = next((url for url, roots in sorted(self.trust.dcs.items()) if cfg.root_id in roots), None)
        rid = cfg.root_id.hex()
        plan.append((f"ctl:{rid}", _join(dc, "getctl", cfg.root_id) if dc else None))
        plan.append((f"crl:{rid}", _join(dc, "getcrl", cfg.root_id) if dc else None))
        return plan

    def _list_due(self, key: str) -> float:
        """When ``key`` is due for a refresh (0: now)."""
        entry = self.trust_applied.get(key)
        if entry is None:
            return 0.0
        state = self._list_state(key)
        if state is None:
            return 0.0
        next_update = clock.time32_to_posix(state.next_update)
        return min(next_update - self.config.trust_refresh_margin, entry["at"] + self.config.trust_refresh_interval)

    def _list_state(self, key: str):
        if key == "ectl":
            return self.trust.ectl
        kind, _, rid = key.partition(":")
        root = self.trust.roots.get(bytes.fromhex(rid))
        return None if root is None else (root.ctl if kind == "ctl" else root.crl)

    def _trust_due_at(self) -> float | None:
        plan = self._list_plan()
        times = [self._list_due(k) for k, url in plan if url is not None]
        return min(times) if times else None

    def _link_wanted(self, now: float) -> bool:
        """Look for a TLM link certificate (facts §8.4 step 9) when the applied ECTL names a TLM we do not
        trust yet, or the current TLM ends within TLM_LINK_MARGIN; at most once per refresh interval."""
        ectl = self.trust.ectl
        if ectl is None or now < self._link_checked + self.config.trust_refresh_interval:
            return False
        current = self.trust.tlms.get(ectl.signer)
        if current is None or current.end_posix - now < TLM_LINK_MARGIN:
            return True
        return any(h8 not in self.trust.tlms for h8 in self._ectl_tlms())

    def _ectl_tlms(self) -> dict[bytes, bytes]:
        """The TLM certificates (HashedId8 -> bytes as received) the applied ECTL lists."""
        if self.trust.ectl is None:
            return {}
        return {e.h8: e.cert.raw for e in parse_trust_list(self.trust.ectl.raw).adds("tlm")}

    def _link_action(self, now: float) -> Fetch | None:
        cpoc = self.config.cpoc_url.rstrip("/")
        if self._pending_link is not None:
            key, url = "tlm-cert", f"{cpoc}/gettlmcertificate/"
        elif self._link_wanted(now):
            key, url = "tlm-link", f"{cpoc}/gettlmlinkcertificate"
        else:
            return None
        action = Fetch(self._new_id("trust"), url, key)
        self.jobs["trust"].in_flight = {"id": action.id, "key": key, "url": url}
        return action

    def _trust_action(self, now: float) -> Fetch | None:
        for key, url in self._list_plan(now):
            if url is None:
                if key == "ectl":
                    raise ClientError("no-tlm", "no TLM HashedId8 configured")
                if self.config.root_id not in self.trust.roots:
                    raise ClientError("root-not-listed", f"root {self.config.root_id.hex()} is not in the ECTL")
                raise ClientError("no-dc", f"the ECTL lists no DC for root {self.config.root_id.hex()}")
            if self._list_due(key) <= now or (
                key == "ectl" and self.trust.ectl is not None and self._tlm_id(now) != self.trust.ectl.signer
            ):
                action = Fetch(self._new_id("trust"), url, key.split(":")[0])
                self.jobs["trust"].in_flight = {"id": action.id, "key": key, "url": url}
                return action
        return self._link_action(now)

    def _trust_ready(self, now: float) -> bool:
        """Requests wait for a fetch in progress and for the root's CTL (where the EA/AA come from)."""
        if self.jobs["trust"].in_flight is not None:
            return False
        return (
            self.trust.root(self.config.root_id, now) is not None
            and f"ctl:{self.config.root_id.hex()}" in self.trust_applied
        )

    # -- enrolment
    def _ec_valid(self, now: float) -> bool:
        return self._valid_ec(now) is not None

    def _valid_ec(self, now: float) -> StoredCert | None:
        """The EC when it is valid at ``now``."""
        return self.ec if self.ec is not None and self.ec.certificate.valid_at(now) else None

    def _ec_due_at(self) -> float | None:
        if self.ec is None:
            return None
        return self.ec.certificate.end_posix - self.config.re_enrol_margin

    def _authority(self, kind: str) -> tuple[Certificate, str]:
        cfg = self.config
        root = self.trust.roots.get(cfg.root_id)
        table = {} if root is None else (root.eas if kind == "ea" else root.aas)
        wanted = cfg.ea_id if kind == "ea" else cfg.aa_id
        candidates = [(h, a) for h, a in table.items() if h not in root.revoked] if root else []
        chosen = next((a for h, a in candidates if wanted is None or h == wanted), None)
        if chosen is None:
            which = f"{kind.upper()} {wanted.hex()}" if wanted else f"unrevoked {kind.upper()}"
            raise ClientError("no-authority", f"no {which} in the CTL of root {cfg.root_id.hex()}")
        url = (cfg.ea_url or chosen.its_url or chosen.url) if kind == "ea" else (cfg.aa_url or chosen.url)
        return chosen.certificate, url

    def _enrol_action(self, now: float) -> HttpPost | None:
        due = self._ec_due_at()
        if self._ec_valid(now) and due is not None and now < due:  # (a valid EC has a due time)
            return None
        if not self._trust_ready(now):
            return None
        ea, url = self._authority("ea")
        current = self._valid_ec(now)
        renew = current is not None
        label = self._key_label("ec")
        new_key = self.keys.generate(label, self.config.key_curve)
        try:
            if current is not None:  # renew
                pending = requests.build_enrolment_request(
                    its_id=b"",
                    signing_key=current.key,
                    ea=ea,
                    generation_time=clock.time64(now),
                    random=self.random,
                    current_ec=current.certificate,
                    new_key=new_key,
                )
            else:
                if self.config.its_id is None:
                    raise ClientError("no-identity", "no canonical id (run rsu pki init or configure pki.its_id)")
                pending = requests.build_enrolment_request(
                    its_id=self.config.its_id,
                    signing_key=self.keys.get(CANONICAL_LABEL),
                    ea=ea,
                    generation_time=clock.time64(now),
                    random=self.random,
                    new_key=new_key,
                )
        except BaseException:
            self.keys.delete(label)
            raise
        action = HttpPost(self._new_id("enrol"), url, pending.body)
        self.jobs["enrol"].in_flight = {"id": action.id, "pending": pending, "label": label, "ea": ea, "renew": renew}
        return action

    # -- authorization
    def _fresh_ats(self, now: float) -> list[StoredCert]:
        out = []
        for at in self.ats:
            c = at.certificate
            life = c.end_posix - c.start_posix
            if now < c.start_posix or (c.valid_at(now) and c.end_posix - now > self.config.at_renew_fraction * life):
                out.append(at)
        return out

    def _at_due_at(self) -> float | None:
        if not self.ats:
            return None
        ends = sorted(
            a.certificate.end_posix
            - self.config.at_renew_fraction * (a.certificate.end_posix - a.certificate.start_posix)
            for a in self.ats
        )
        return ends[0]

    def _authorize_action(self, now: float) -> HttpPost | None:
        current = self._valid_ec(now)
        if current is None or len(self._fresh_ats(now)) >= self.config.at_pool:
            return None
        if self.jobs["enrol"].in_flight is not None or not self._trust_ready(now):
            return None
        aa, url = self._authority("aa")
        ea = self.ea_cert
        listed = self.trust.authority(signer_hashed_id8(ea)) if ea is not None else None
        if ea is None or listed is None or listed[0] != "ea":
            raise ClientError("no-authority", "the EA that issued the EC is not listed (or revoked); re-enrol")
        label = self._key_label("at")
        new_key = self.keys.generate(label, self.config.key_curve)
        try:
            pending = requests.build_authorization_request(
                ec=current.certificate,
                ec_key=current.key,
                ea=ea,
                aa=aa,
                permissions=self.config.permissions,
                generation_time=clock.time64(now),
                random=self.random,
                new_key=new_key,
            )
        except BaseException:
            self.keys.delete(label)
            raise
        action = HttpPost(self._new_id("authorize"), url, pending.body)
        self.jobs["authorize"].in_flight = {"id": action.id, "pending": pending, "label": label}
        return action

    def _key_label(self, kind: str) -> str:
        return f"{kind}-{self.random.token(6).hex()}"

    def _drop_expired_ats(self, now: float) -> None:
        expired = [a for a in self.ats if a.certificate.end_posix <= now]
        if expired:
            self.ats = [a for a in self.ats if a not in expired]
            self._save_ats(self.ats)
            for a in expired:
                self._delete_key(a.key_label)

    def _delete_key(self, label: str) -> None:
        """Delete a key no state refers to any more; a failure is logged (the key is removed at next load)."""
        try:
            self.keys.delete(label)
        except KeyStoreError as e:
            log.warning("PKI: key %s not deleted: %s (removed at the next start)", label, e)

    # ------------------------------------------------------------------ results
    def on_result(self, result: HttpResult, now: float) -> Outcome:
        job_name = next((n for n, j in self.jobs.items() if j.in_flight and j.in_flight["id"] == result.id), None)
        if job_name is None:
            return Outcome("unknown", "unexpected-result", f"no request {result.id} in flight")
        job = self.jobs[job_name]
        flight, job.in_flight = job.in_flight, None
        if flight is None:  # (never: the job was found by its request in flight)
            return Outcome("unknown", "unexpected-result", f"no request {result.id} in flight")
        try:
            if job_name == "trust":
                outcome = self._trust_result(flight, result, now)
            else:
                outcome = self._response_result(job_name, flight, result, now)
        except Exception as e:  # never a crash: every failure is named, a bug too
            outcome = Outcome(job_name, *_failure(e))
            if outcome.result == "internal-error":
                log.exception("PKI %s: internal error", job_name)
        if outcome.ok:
            job.failures, job.retry_at, job.last_ok = 0, 0.0, now
        else:
            if job_name != "trust" and "label" in flight:
                self._delete_key(flight["label"])  # the new key is not committed
            self._fail(job_name, outcome.result, outcome.detail, now)
        self.attempts[(job_name, outcome.result)] = self.attempts.get((job_name, outcome.result), 0) + 1
        return outcome

    def _fail(self, job_name: str, reason: str, detail: str, now: float) -> None:
        job = self.jobs[job_name]
        job.failures += 1
        delay = min(self.config.retry_max, self.config.retry_base * 2 ** (job.failures - 1))
        job.retry_at = now + delay * (0.5 + self._jitter() / 2)  # jitter: 50..100 % of the delay
        job.last_error = {"reason": reason, "detail": detail, "at": now}
        log.warning("PKI %s failed: %s (%s); retry in %.0f s", job_name, reason, detail, job.retry_at - now)

    @staticmethod
    def _http_failure(result: HttpResult, expected_type: str | None) -> tuple[str, str] | None:
        if result.error is not None:
            return result.error, result.detail
        if result.status != 200:
            return f"http-{result.status}", result.body[:200].decode("utf-8", "replace")
        ctype = (result.content_type or "").split(";")[0].strip().lower()
        if expected_type is not None and ctype != expected_type:
            return "wrong-content-type", f"{ctype or 'none'} (expected {expected_type})"
        return None

    def _link_result(self, flight: dict, result: HttpResult, now: float) -> Outcome:
        """A TLM link certificate (or the new TLM certificate it names) from the CPOC: applied when it
        verifies; none there (404, or no such endpoint) is not an error."""
        link = self._pending_link
        self._pending_link = None
        if flight["key"] == "tlm-link":
            self._link_checked = now
            if result.error is None and result.status in LINK_ABSENT:
                return Outcome("trust", "ok", f"no TLM link certificate at the CPOC (HTTP {result.status})")
        failed = self._http_failure(result, None)
        if failed:
            return Outcome("trust", *failed)
        if flight["key"] == "tlm-link":
            link, candidates = result.body, list(self._ectl_tlms().values())
            try:
                store, cert = self.trust.with_tlm_link(link, candidates, now)
            except TrustListError as e:
                if e.reason != "link-mismatch" or "no TLM certificate" not in e.detail:
                    raise
                self._pending_link = link  # the new TLM is not in the ECTL: fetch it from the CPOC next
                return Outcome("trust", "ok", "TLM link certificate: fetching the TLM certificate it names")
        else:
            if link is None:  # the TLM certificate is fetched only for a pending link certificate
                raise ClientError("no-link", "a TLM certificate came without the link certificate that names it")
            store, cert = self.trust.with_tlm_link(link, [result.body], now)
        new = signer_hashed_id8(Certificate.from_bytes(cert))
        applied = {**self.trust_applied, f"tlm-link:{new.hex()}": {"raw": link.hex(), "cert": cert.hex(), "at": now}}
        self._save_trust(applied)
        self.trust, self.trust_applied = store, applied
        log.info(
            "PKI trust: TLM %s trusted through a link certificate of TLM %s",
            new.hex(),
            self.trust.ectl.signer.hex() if self.trust.ectl else "?",
        )
        return Outcome("trust", "ok", f"tlm-link:{new.hex()}")

    def _trust_result(self, flight: dict, result: HttpResult, now: float) -> Outcome:
        if flight["key"] in ("tlm-link", "tlm-cert"):
            return self._link_result(flight, result, now)
        failed = self._http_failure(result, None)  # DCs/CPOCs differ (octet-stream, x-its-ctl): bytes decide
        if failed:
            return Outcome("trust", *failed)
        key = flight["key"]
        previous = self.trust_applied.get(key)
        if not parse_trust_list(result.body).is_full and previous is not None:
            # a delta served at the full-list URL: kept on top of the full list it follows
            deltas = previous.get("deltas", [])
            if len(deltas) >= MAX_DELTAS:
                raise ClientError(
                    "too-many-deltas",
                    f"{key}: {len(deltas)} deltas on one full list; the held list is kept until a full list is served",
                )
            entry = {
                "raw": previous["raw"],
                "baseAt": previous.get("baseAt", previous["at"]),
                "at": now,
                "deltas": deltas + [{"raw": result.body.hex(), "at": now}],
            }
        else:
            entry = {"raw": result.body.hex(), "at": now}
        store = _apply(self.trust, key.split(":")[0], result.body, now)
        applied = {**self.trust_applied, key: entry}
        if key == "ectl":
            old, new = self.trust.ectl, store.ectl  # (new: set by with_ectl)
            if old is not None and new is not None and old.signer != new.signer and "ectl" in self.trust_applied:
                # a new TLM: keep the list that linked it, so that the replay at start trusts it again
                applied[f"ectl-link:{new.signer.hex()}"] = self.trust_applied["ectl"]
            # a new ECTL may drop our root: keep only lists of roots still listed
            applied = {
                k: v
                for k, v in applied.items()
                if k == "ectl"
                or k.startswith(("ectl-link:", "tlm-link:"))
                or bytes.fromhex(k.partition(":")[2]) in store.roots
            }
        self._save_trust(applied)  # on disk first: then in memory
        self.trust, self.trust_applied = store, applied
        log.info("PKI trust: %s applied from %s", key, flight["url"])
        return Outcome("trust", "ok", key)

    def _response_result(self, job_name: str, flight: dict, result: HttpResult, now: float) -> Outcome:
        failed = self._http_failure(result, CT_RESPONSE)
        if failed:
            return Outcome(job_name, *failed)
        pending = flight["pending"]
        response = requests.process_response(pending, result.body, now, self.trust)
        if not response.ok:
            return Outcome(job_name, response.code, f"{pending.kind} refused by the authority")
        if response.certificate is None or response.private_key is None:  # an ok response carries both
            raise ClientError("no-certificate", f"{pending.kind} response without its certificate")
        stored = StoredCert(response.certificate, flight["label"], response.private_key)
        if job_name == "enrol":
            old = self.ec
            self._save_ec(stored, flight["ea"])
            self.ec, self.ea_cert = stored, flight["ea"]
            if old is not None and old.key_label != stored.key_label:
                self._delete_key(old.key_label)
            log.info(
                "PKI enrol: EC %s (%s), valid until %s",
                stored.certificate.hashed_id8.hex(),
                "re-enrolment" if flight["renew"] else "initial",
                clock.iso_utc(stored.certificate.end_posix),
            )
        else:
            ats = self.ats + [stored]
            self._save_ats(ats)
            self.ats = ats
            log.info(
                "PKI authorize: AT %s valid until %s",
                stored.certificate.hashed_id8.hex(),
                clock.iso_utc(stored.certificate.end_posix),
            )
        return Outcome(job_name, "ok", stored.certificate.hashed_id8.hex())

    # ------------------------------------------------------------------ queries
    def usable_ats(self, now: float) -> list[StoredCert]:
        """ATs valid now whose AA is listed and unrevoked under a trusted root."""
        out = []
        for at in self.ats:
            found = self.trust.authority(at.certificate.issuer_id or b"")
            if at.certificate.valid_at(now) and found and found[0] == "aa" and self.trust.root(found[2], now):
                out.append(at)
        return out

    def tickets(self, now: float) -> list:
        """The usable ATs as :class:`rsu.security.pool.AuthorizationTicket` (signing through the key
        store), for an :class:`rsu.security.pool.AtPool`: what the signer picks up after each change."""
        from rsu.security.pool import AuthorizationTicket
        from rsu.security.sign import Signer

        return [
            AuthorizationTicket(a.certificate, Signer(a.certificate, a.key), a.key_label) for a in self.usable_ats(now)
        ]

    def status(self, now: float) -> dict[str, Any]:
        def cert_json(s: StoredCert) -> dict:
            c = s.certificate
            return {
                "hashedId8": c.hashed_id8.hex(),
                "start": clock.iso_utc(c.start_posix),
                "end": clock.iso_utc(c.end_posix),
                "hoursLeft": round((c.end_posix - now) / 3600, 2),
                "valid": c.valid_at(now),
                "keyLabel": s.key_label,
            }

        ages = [now - e["at"] for e in self.trust_applied.values()]
        return {
            "ec": cert_json(self.ec) if self.ec else None,
            "ats": [cert_json(a) for a in self.ats],
            "atsUsable": len(self.usable_ats(now)),
            "trust": {**self.trust.summary(now), "ageSeconds": round(max(ages), 1) if ages else None},
            "jobs": {
                n: {
                    "failures": j.failures,
                    "lastError": j.last_error,
                    "lastOk": j.last_ok,
                    "retryAt": clock.iso_utc(j.retry_at) if j.retry_at > now else None,
                    "inFlight": j.in_flight is not None,
                }
                for n, j in self.jobs.items()
            },
            "attempts": {f"{j}:{r}": n for (j, r), n in sorted(self.attempts.items())},
            "loadErrors": list(self.load_errors),
        }


def _failure(e: Exception) -> tuple[str, str]:
    """(reason, detail) of an exception: a PkiError's own reason, state-write-failed, or internal-error."""
    if isinstance(e, PkiError):
        return e.reason, e.detail
    if isinstance(e, OSError):  # the state directory or key store cannot be written: nothing was committed
        return "state-write-failed", f"{getattr(e, 'filename', '') or ''} {e.strerror or e}".strip()
    return "internal-error", type(e).__name__


def replay_trust(store: TrustStore, saved: dict) -> tuple[TrustStore, dict, list[str]]:
    """``store`` with the lists of a ``trust.json`` applied again in order (each verified as when it was
    fetched): (store, the lists applied, the errors of those that were not)."""
    applied, failed = {}, {}
    lists = saved.get("lists", {}) if isinstance(saved, dict) else {}

    def order(k):
        entry = lists[k] if isinstance(lists[k], dict) else {}
        at = entry.get("at", 0) if isinstance(entry.get("at", 0), (int, float)) else 0
        kind = k.split(":")[0]
        return _ORDER.get(kind, 9), at, _RANK.get(kind, 0), k

    pending = sorted(lists, key=order)
    while pending:  # in order; a link whose signer comes later (e.g. an ECTL re-fetched after it) is retried
        left = []
        for key in pending:
            entry = lists[key]
            try:
                kind = key.split(":")[0]
                store = _apply(store, kind, bytes.fromhex(entry["raw"]), entry.get("baseAt", entry["at"]), entry)
                for delta in entry.get("deltas", []):
                    store = _apply(store, kind, bytes.fromhex(delta["raw"]), delta["at"])
                applied[key] = entry
            except (TrustListError, ValueError, KeyError, TypeError) as e:
                failed[key] = f"trust.json {key}: {getattr(e, 'reason', type(e).__name__)}"
                left.append(key)
        if len(left) == len(pending):
            break
        pending = left
    return store, applied, [failed[k] for k in pending if k not in applied]


LOCK_NAME = "client.lock"


def lock_state(state_dir: str | os.PathLike, exclusive: bool) -> int:
    """The lock between a running daemon (shared, for its whole run) and the ``rsu pki`` commands that
    change the client state (exclusive): :mod:`rsu.statelock`, as for the services store. Returns the
    file descriptor (release with :func:`rsu.statelock.release`); raises PkiError ``state-busy``."""
    from rsu import statelock

    state = Path(state_dir)
    try:
        state.mkdir(parents=True, exist_ok=True)
        return statelock.acquire(
            state / LOCK_NAME,
            exclusive,
            held_by_daemon=f"{state} is in use by a running rsu daemon, whose PKI client enrols, renews ATs "
            "and updates the trust lists by itself: watch it with `rsu pki status` (read-only, "
            "works while it runs), or stop the daemon first (systemctl stop rsu)",
            held_by_command=f"{state}: an `rsu pki` command is changing the PKI client state; start rsu when "
            "it is done",
        )
    except statelock.StateBusy as e:
        raise PkiError("state-busy", str(e)) from None
    except OSError as e:
        raise PkiError("state-unwritable", f"{state / LOCK_NAME}: {e.strerror or e}") from None


def load_trust_store(state_dir: str | os.PathLike, tlm_ids: tuple[bytes, ...]) -> tuple[TrustStore, list[str]]:
    """The trust store a PKI client with state ``state_dir`` applied, anchored at ``tlm_ids`` (for
    ``rsu verify --pki-state``); the errors of lists that did not apply again."""
    path = Path(state_dir) / "trust.json"
    saved = json.loads(path.read_text())
    store, _, errors = replay_trust(TrustStore.with_anchor_ids(*tlm_ids), saved)
    return store, errors


def _apply(store: TrustStore, kind: str, raw: bytes, now: float, entry: dict | None = None) -> TrustStore:
    if kind == "tlm-link":  # a link certificate and the TLM certificate it names
        if entry is None:
            raise TrustListError("malformed", "a TLM link certificate without the TLM certificate it names")
        return store.with_tlm_link(raw, [bytes.fromhex(entry["cert"])], now)[0]
    return {"ectl-link": store.with_ectl, "ectl": store.with_ectl, "ctl": store.with_ctl, "crl": store.with_crl}[kind](
        raw, now
    )


# replay order: the TLM side in the order it was applied (an old ECTL, the link it or a link
# certificate made, the new TLM's ECTL), then each root's CTL and CRL
_ORDER = {"ectl-link": 0, "tlm-link": 0, "ectl": 0, "ctl": 2, "crl": 3}
_RANK = {"ectl-link": 0, "tlm-link": 1, "ectl": 2}


def _join(base: str, verb: str, h8: bytes) -> str:
    """``{base}/{verb}/{H8}`` (HashedId8 as 16 upper-case hex digits; a trailing slash of base dropped)."""
    return f"{base.rstrip('/')}/{verb}/{h8.hex().upper()}"

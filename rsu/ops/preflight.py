"""Host checks of a valid configuration: what the schema cannot see and the daemon would only find while
starting or running, worded in terms of the configuration file (field path + what is wrong).

``rsu check-config`` runs them after the schema (``--no-host-checks`` skips them, e.g. to check a file
on another machine); ``rsu run`` runs them before it starts. Each issue says whether it stops the start
(``fatal``: the daemon could not start with it) or would only fail later while running (a MAP file,
an MQTT TLS file, a password file: the daemon starts, logs it and retries, as before).

Checked, one issue per problem, all at once:

* ``state_dir``: a directory (or creatable) and writable;
* ``security``: the PKI loads (trust anchors, an AT with its private key), or the test PKI can be created;
* ``api.host`` / ``api.port``: the address can be bound (an address of this machine, port free);
* ``api.tls``: the certificate, its key and the client CA load;
* ``integrations.controller.host`` / ``.port``: the same, for the UDP feed listener;
* ``transports[i].pcap``: the file can be written;
* ``transports[i]`` MQTT: ``ca_file`` / ``cert_file`` / ``key_file`` load as TLS files, ``password_file`` reads;
* ``integrations.ntrip.password_file`` reads;
* ``integrations.map_files.intersections.<id>``: the file exists, is a MAPEM of that intersection, encodes.

A port held by an rsu daemon that answers on the configured API address is not an error for
check-config (the file is being checked before a reload); it is for ``rsu run``.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import ssl
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from rsu.ops import config as cfgmod
from rsu.ops.config_core import ConfigIssue


@dataclass(frozen=True)
class HostIssue:
    issue: ConfigIssue
    fatal: bool  # the daemon cannot start with it


def host_issues(config: cfgmod.Config, *, running_rsu_is_fine: bool = True) -> list[HostIssue]:
    out: list[HostIssue] = []

    def add(path: str, message: str, fatal: bool = True) -> None:
        out.append(HostIssue(ConfigIssue(path, message), fatal))

    state_ok = _state_dir(config, add)
    _security(config, add, state_ok)
    rsu_running = running_rsu_is_fine and _rsu_answers(config.api.host, config.api.port, config.api.tls is not None)
    _bind("api", socket.SOCK_STREAM, config.api.host, config.api.port, add, rsu_running)
    if config.api.tls is not None:
        _api_tls(config.api.tls, add)
    integrations = cfgmod.integrations_config(config)
    c = integrations.controller
    if c is not None and c.port is not None:
        _bind("integrations.controller", socket.SOCK_DGRAM, c.host, c.port, add, rsu_running)
    for i, (kind, cfg) in enumerate(cfgmod.transport_configs(config)):
        if kind == "gn-udp" and cfg.pcap:
            _writable_file(f"transports[{i}].pcap", Path(cfg.pcap).expanduser(), add)
        if kind == "mqtt":
            _mqtt_files(f"transports[{i}].", cfg, add)
    if integrations.ntrip is not None and integrations.ntrip.password_file:
        _secret("integrations.ntrip.password_file", integrations.ntrip, add)
    if integrations.map_files is not None:
        _map_files(integrations.map_files, add)
    return out


# ---------------------------------------------------------------------------------------------- checks


def _state_dir(config: cfgmod.Config, add) -> bool:
    if config.state_dir is None and not os.environ.get("STATE_DIRECTORY"):
        return True  # the per-user default; under systemd the directory is made by StateDirectory=
    path = config.state_path
    problem = _dir_problem(path)
    if problem:
        add("state_dir", f"{path}: {problem} (the store of active messages and the test PKI live there)")
        return False
    store = path / "services.sqlite3"
    if store.exists() and not os.access(store, os.R_OK | os.W_OK):
        add("state_dir", f"{store}: the store is not readable and writable by this user")
        return False
    return True


def _dir_problem(path: Path) -> str | None:
    """Why ``path`` cannot be (made into) a writable directory, or None."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a directory" if probe != path else "not a directory"
    if not os.access(probe, os.W_OK | os.X_OK) or not _can_write_in(probe):
        return "not writable by this user" if probe == path else f"cannot be created: {probe} is not writable"
    return None


def _can_write_in(directory: Path) -> bool:
    """Really make (and remove) a directory there: os.access says yes to root everywhere, even in /proc
    or on a read-only file system."""
    import tempfile

    try:
        os.rmdir(tempfile.mkdtemp(prefix=".rsu-check-", dir=directory))
    except OSError:
        return False
    return True


def _security(config: cfgmod.Config, add, state_ok: bool) -> None:
    if not config.security.enabled:
        return
    from rsu.clock import SystemClock
    from rsu.security.setup import needs_test_pki

    sec = config.security
    clock = SystemClock()
    where = "security.pki_dir" if sec.pki_dir is not None else "state_dir"
    if sec.create_test_pki and needs_test_pki(config, clock):
        problem = _dir_problem(config.pki_path)
        if problem and state_ok:
            add(where, f"{config.pki_path}: {problem} (the test PKI is created there)")
        return
    from rsu.security.pool import AtPool
    from rsu.security.verify import TrustStore

    try:
        trust = TrustStore.from_directory(config.trust_path)
    except Exception as e:  # noqa: BLE001 - any failure to load is the operator's to fix
        add(
            "security.trust_dir" if sec.trust_dir is not None else where,
            f"{config.trust_path}: the trust anchors do not load: {e}",
        )
        return
    try:
        AtPool.load_directory(
            config.tickets_path, clock, rotation_margin=sec.rotation_margin, issuers=trust.certificates()
        )
    except Exception as e:  # noqa: BLE001
        hint = "" if sec.create_test_pki else " (create_test_pki is false: install your PKI's ATs there)"
        add(
            "security.tickets_dir" if sec.tickets_dir is not None else where,
            f"{config.tickets_path}: the authorization tickets do not load: {e}{hint}",
        )


def _rsu_answers(host: str, port: int, tls: bool = False) -> bool:
    if not port:
        return False
    # over TLS the server is not verified: /v1/health only tells whether an rsu is the one holding the port
    context = ssl._create_unverified_context() if tls else None  # noqa: S323
    try:
        with urllib.request.urlopen(
            f"{'https' if tls else 'http'}://{_url_host(host)}:{port}/v1/health", timeout=2, context=context
        ) as resp:
            return json.load(resp).get("status") == "ok"
    except Exception:  # noqa: BLE001 - nothing, or not an rsu, answers there
        return False


def _url_host(host: str) -> str:
    return f"[{host.strip('[]')}]" if ":" in host else host


def _bind(section: str, kind: int, host: str, port: int, add, rsu_running: bool) -> None:
    proto = "TCP" if kind == socket.SOCK_STREAM else "UDP"
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=kind)
    except socket.gaierror as e:
        add(f"{section}.host", f"{host!r} does not resolve: {e.strerror}")
        return
    family, _, _, _, addr = infos[0]
    s = socket.socket(family, kind)
    try:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds (TIME_WAIT is fine)
        s.bind(addr)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            if not rsu_running:
                add(f"{section}.port", f"{proto} {host}:{port} is already in use by another program")
        elif e.errno == errno.EADDRNOTAVAIL:
            add(f"{section}.host", f"cannot listen on {host}: not an address of this machine")
        elif e.errno == errno.EACCES:
            add(f"{section}.port", f"{proto} port {port} needs privileges this user does not have (use a port >= 1024)")
        else:
            add(f"{section}.host", f"cannot listen on {proto} {host}:{port}: {e.strerror or e}")
    finally:
        s.close()


def _writable_file(path_name: str, path: Path, add) -> None:
    if path.is_dir():
        add(path_name, f"{path} is a directory, not a file")
    elif path.exists():
        if not os.access(path, os.W_OK):
            add(path_name, f"{path} is not writable by this user")
    else:
        problem = _dir_problem(path.parent)
        if problem:
            add(path_name, f"{path.parent}: {problem}")


def _secret(path_name: str, cfg, add) -> None:
    try:
        password = cfg.read_password()
    except Exception as e:  # noqa: BLE001 - the reader names the file, never the secret
        add(path_name, str(e).split(": ", 1)[-1], fatal=False)
        return
    if not password:
        add(path_name, f"{cfg.password_file} is empty (the password is its first line)", fatal=False)


def _api_tls(tls, add) -> None:
    """The API's certificate, key and client CA load (rsu.api.tls: the daemon cannot start otherwise)."""
    from rsu.api.tls import TlsError, server_context

    try:
        server_context(tls.cert_file, tls.key_file, tls.client_ca_file)
    except TlsError as e:
        path, _, message = str(e).partition(": ")
        add(path, message)


def _mqtt_files(prefix: str, cfg, add) -> None:
    if cfg.password_file:
        _secret(prefix + "password_file", cfg, add)
    if not cfg.use_tls:
        return
    context = ssl.create_default_context()
    if cfg.ca_file:
        try:
            context.load_verify_locations(cafile=cfg.ca_file)
        except (ssl.SSLError, OSError, ValueError) as e:
            add(prefix + "ca_file", f"{cfg.ca_file} is not a PEM CA certificate bundle: {e}", fatal=False)
    if cfg.cert_file:
        try:
            context.load_cert_chain(cfg.cert_file, cfg.key_file)
        except (ssl.SSLError, OSError, ValueError) as e:
            name = "key_file" if cfg.key_file and "key" in str(e).lower() else "cert_file"
            add(
                prefix + name,
                f"the client certificate ({cfg.cert_file}) and its key "
                f"({cfg.key_file or 'in the same file'}) do not load as PEM: {e}",
                fatal=False,
            )


def _map_files(cfg, add) -> None:
    from rsu import catalog
    from rsu.codec.facilities import get_codec
    from rsu.integrations.mapfiles import read_map_file

    codec = None
    for key, path in cfg.intersections.items():
        name = f"integrations.map_files.intersections.{key}"
        obj, problem = read_map_file(Path(path).expanduser(), key)
        if problem is not None:
            add(name, f"{path}: {problem[1]}", fatal=False)
            continue
        codec = codec or get_codec()
        try:
            _, value = codec.from_jer(obj, catalog.MAPEM)
            codec.encode(value, catalog.MAPEM)
        except Exception as e:  # noqa: BLE001 - the codec names the field
            add(name, f"{path}: not a valid MAPEM: {e}", fatal=False)

"""The Dockerfile, checked without a Docker engine (none runs in CI): what it declares (slim base,
non-root user, volumes, no exposed port (the API is loopback only), healthcheck on /v1/health),
that every COPY source exists and survives .dockerignore, and that the parts it runs work for real:
the default config validates, the entrypoint picks the mounted or the default config, and the
HEALTHCHECK command succeeds against a daemon running config/docker.yaml and fails without one.
The image itself is not built here."""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
import subprocess
import sys
import tomllib
from urllib.parse import urlparse

import pytest
import yaml

from tests.conftest import REPO, run_rsu
from tests.ops.daemonproc import RsuDaemon, group_and_port
from tests.transports.conftest import free_tcp_port

DOCKERFILE = REPO / "Dockerfile"
DOCKER_CONFIG = REPO / "config" / "docker.yaml"


def instructions() -> list[tuple[int, str, str]]:
    """(stage index, INSTRUCTION, arguments) in order; continuations joined, comments dropped."""
    out, stage, pending = [], -1, ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, args = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            stage += 1
        out.append((stage, word, args.strip()))
    return out


def final(word: str) -> list[str]:
    steps = instructions()
    last = steps[-1][0]
    return [args for stage, w, args in steps if stage == last and w == word]


def env_of_final_stage() -> dict[str, str]:
    env = {}
    for args in final("ENV"):
        for item in shlex.split(args):
            key, _, value = item.partition("=")
            env[key] = value
    return env


def docker_config() -> dict:
    return yaml.safe_load(DOCKER_CONFIG.read_text())


def test_slim_base_and_non_root_user():
    steps = instructions()
    bases = [args.split()[0] for _, w, args in steps if w == "FROM"]
    assert bases and all(b.startswith("python:3.11") and b.endswith("-slim") for b in bases), bases
    users = final("USER")
    assert users and users[-1] not in ("root", "0", "0:0"), users
    # the user is switched before the container's command, and never back
    order = [w for stage, w, _ in steps if stage == steps[-1][0]]
    assert order.index("USER") < order.index("ENTRYPOINT")
    assert "useradd" in " ".join(final("RUN")) and users[-1] in " ".join(final("RUN"))


def test_volumes_state_and_cache():
    volumes = [v for args in final("VOLUME") for v in json.loads(args)]
    assert set(volumes) == {"/etc/rsu", "/var/lib/rsu"}
    env = env_of_final_stage()
    assert env["STATE_DIRECTORY"] == "/var/lib/rsu"  # the daemon's state_dir default (config leaves it unset)
    assert "state_dir" not in docker_config()
    # the ASN.1 cache compiled at build time must not sit under a volume (a mount would hide it)
    assert not any(env["RSU_CACHE_DIR"].startswith(v) for v in volumes)
    run = " ".join(final("RUN"))
    # the parse trees and the specifications (loaded apart, on first use: .spec writes its cache file)
    assert "compile_set('is', 'uper').spec" in run and "compile_set('security', 'oer').spec" in run


def test_healthcheck_matches_the_loopback_api():
    api = docker_config()["api"]
    assert api["host"] == "127.0.0.1"  # loopback only until the API authenticates: nothing to EXPOSE
    assert final("EXPOSE") == []
    (health,) = final("HEALTHCHECK")
    options, cmd = health.split(" CMD ", 1)
    assert "--interval=" in options and "--start-period=" in options
    argv = json.loads(cmd)
    assert argv[0] == "python" and not any(tool in cmd for tool in ("curl", "wget"))  # none in slim images
    url = urlparse(env_of_final_stage()["RSU_HEALTH_URL"])
    assert "RSU_HEALTH_URL" in cmd
    assert (url.hostname, url.port, url.path) == ("127.0.0.1", api["port"], "/v1/health")


def _ignored(path: str, patterns: list[str]) -> bool:
    parts = path.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for pattern in patterns:
        pat = pattern[3:] if pattern.startswith("**/") else pattern
        for c in candidates:
            if fnmatch.fnmatch(c, pattern) or fnmatch.fnmatch(c.split("/")[-1], pat):
                return True
    return False


def test_every_copy_source_exists_and_is_in_the_build_context():
    ignore = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = []
    for args in final("COPY") + [a for s, w, a in instructions() if w == "COPY" and s != instructions()[-1][0]]:
        words = [w for w in args.split() if not w.startswith("--")]
        if "--from=" in args:
            continue  # from another stage, not from the repository
        sources += words[:-1]
    assert sources
    for src in sources:
        assert (REPO / src).exists(), f"COPY source missing: {src}"
        assert not _ignored(src.rstrip("/"), ignore), f".dockerignore excludes COPY source {src}"
    # what `pip wheel .` needs from pyproject.toml is copied into the build stage
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    build = project["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = {"pyproject.toml", project["project"]["readme"], *build["packages"], *build["force-include"]}
    assert needed <= set(sources), needed - set(sources)


def test_default_config_validates_where_the_image_puts_it():
    r = run_rsu("check-config", str(DOCKER_CONFIG))
    assert r.returncode == 0, r.stderr
    copies = " | ".join(final("COPY"))
    assert "config/docker.yaml" in copies and "/usr/local/share/rsu/" in copies
    # the file only: the build machine is not the host the container runs on
    assert "rsu check-config --no-host-checks /usr/local/share/rsu/docker.yaml" in " ".join(final("RUN"))
    entrypoint = (REPO / "docker" / "entrypoint.sh").read_text()
    assert "/usr/local/share/rsu/docker.yaml" in entrypoint and "/etc/rsu/rsu.yaml" in entrypoint
    assert json.loads(final("ENTRYPOINT")[0]) == ["/usr/local/bin/rsu-entrypoint"]
    assert json.loads(final("CMD")[0]) == ["run"]


@pytest.fixture
def entrypoint(tmp_path):
    """docker/entrypoint.sh run by /bin/sh with a stand-in `rsu` that prints its arguments."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "rsu"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)

    def run(*args: str, mounted: bool) -> tuple[list[str], str]:
        config = tmp_path / "etc" / "rsu.yaml"
        if mounted:
            config.parent.mkdir(exist_ok=True)
            config.write_text("{}\n")
        env = {
            "PATH": f"{bindir}:/usr/bin:/bin",
            "RSU_CONFIG": str(config),
            "RSU_DEFAULT_CONFIG": "/usr/local/share/rsu/docker.yaml",
        }
        r = subprocess.run(
            ["/bin/sh", str(REPO / "docker" / "entrypoint.sh"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert r.returncode == 0, r.stderr
        return r.stdout.splitlines(), r.stderr

    run.mounted_path = str(tmp_path / "etc" / "rsu.yaml")
    return run


def test_entrypoint_uses_the_mounted_config_else_the_default(entrypoint):
    argv, err = entrypoint("run", mounted=False)
    assert argv == ["run", "--config", "/usr/local/share/rsu/docker.yaml"] and "default configuration" in err
    assert entrypoint(mounted=False)[0] == argv  # no arguments at all: the same
    assert entrypoint("run", mounted=True)[0] == ["run", "--config", entrypoint.mounted_path]
    # anything else goes to rsu untouched
    assert entrypoint("status", "--json", mounted=False)[0] == ["status", "--json"]
    assert entrypoint("run", "--config", "/srv/x.yaml", mounted=True)[0] == ["run", "--config", "/srv/x.yaml"]
    assert entrypoint("check-config", "/etc/rsu/rsu.yaml", mounted=False)[0] == ["check-config", "/etc/rsu/rsu.yaml"]


def test_healthcheck_command_against_a_daemon_running_the_docker_config(tmp_path, monkeypatch):
    (health,) = final("HEALTHCHECK")
    argv = json.loads(health.split(" CMD ", 1)[1])
    argv[0] = sys.executable
    config = docker_config()
    config["api"]["port"] = free_tcp_port()
    group, port = group_and_port()
    config["transports"][0].update(group=group, port=port)
    d = RsuDaemon(tmp_path, group=group, port=port)
    d.config, d.api_port = config, config["api"]["port"]
    d.write_config(config)
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))  # as the image sets it
    d.start()
    try:
        url = f"http://127.0.0.1:{d.api_port}/v1/health"
        r = subprocess.run(argv, env={**os.environ, "RSU_HEALTH_URL": url}, capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "state" / "services.sqlite3").exists()  # the state went where the image says
    finally:
        assert d.stop() == 0
    r = subprocess.run(argv, env={**os.environ, "RSU_HEALTH_URL": url}, capture_output=True, timeout=30)
    assert r.returncode == 1  # unhealthy (Docker reserves 2)

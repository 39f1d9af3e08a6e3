"""The ``rsu`` commands in the README's and docs' ``sh`` blocks run as written.

Every ``rsu ...`` line of a fenced ``sh`` block (also ``python -m rsu ...`` and pipelines of them) is
one of:

* **runnable offline** (decode, encode, verify, check-config, pki, cert, map, --version): run, exit 0;
* **talks to the daemon** (status, trigger, update, terminate, list): run, exit 0, against one real
  ``rsu run`` this module starts (free ports, its own GN group; the command finds it through
  ``$RSU_API_URL``, as a user's shell would);
* **a synopsis** (placeholders such as FILE, ``[...]``, ``a|b``): the command names it uses must be
  commands of ``rsu``;
* **skipped**, each with its reason in :data:`SKIPPED`.

A new command in the docs that fits none of these fails the test until it runs or gets a reason.
Paths the docs use for an installed box are mapped into the test's own files (:data:`PATHS`).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest

from tests.conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "config" / "examples" / "README.md"]

SKIPPED = {
    "rsu trigger mapem --hex 0205...": "placeholder: the hex of a whole UPER MAPEM",
    "rsu trigger gpc --rtcm d300...  --stream base-1": "placeholder: RTCM 3 frames from a GNSS base station",
    "rsu trigger tlc --decision station-2104711:1201:5 --status granted": "needs a pending SREM from a vehicle (covered by tests/ops/test_daemon_e2e.py::test_two_daemons_srem_in_ssem_out)",
    "rsu run --config /etc/rsu/rsu.yaml --set logging.level=DEBUG": "runs a daemon in the foreground until stopped (--set is covered by tests/ops/test_config_overrides.py)",
}
SKIPPED_PREFIXES = {
    "rsu store ": "works on the installed daemon's state (/etc/rsu/rsu.yaml); every store command runs in "
    "tests/services/test_store_cli.py",
    "docker ": "needs Docker (the same commands run on the host in this test)",
    "systemctl ": "needs systemd (the unit is tested in tests/ops/test_systemd_unit.py)",
}
DAEMON_COMMANDS = {"status", "trigger", "update", "terminate", "list"}
OFFLINE_COMMANDS = {"decode", "encode", "verify", "check-config", "pki", "cert", "--version", "map"}
PLACEHOLDERS = {"FILE", "DIR", "INPUT", "URL", "TYPE", "SERVICE", "ID", "ISO8601", "COMMAND", "SUBCOMMAND"}
SUBCOMMANDS = DAEMON_COMMANDS | OFFLINE_COMMANDS | {"run", "store"}


def doc_commands() -> list[tuple[str, str]]:
    """(where, command) for every line of an ``sh`` block that runs ``rsu``, comments stripped."""
    out = []
    for path in DOCS:
        text = path.read_text()
        for block in re.finditer(r"^```sh\n(.*?)^```", text, re.M | re.S):
            lineno = text[: block.start()].count("\n") + 2
            for i, line in enumerate(block.group(1).splitlines()):
                command = re.split(r"\s+#\s", line.strip(), maxsplit=1)[0].strip()
                if re.search(r"(^|\s)(python -m )?rsu (" + "|".join(map(re.escape, SUBCOMMANDS)) + r")\b", command):
                    out.append((f"{path.relative_to(REPO)}:{lineno + i}", command))
    return out


COMMANDS = doc_commands()


def classify(command: str) -> tuple[str, str]:
    if command in SKIPPED:
        return "skip", SKIPPED[command]
    for prefix, reason in SKIPPED_PREFIXES.items():
        if command.startswith(prefix):
            return "skip", reason
    words = command.replace("python -m rsu", "rsu").split()
    assert words[0] == "rsu", f"not an rsu command line: {command!r}"
    if "|" in words[1] or any(w.strip("[]") in PLACEHOLDERS or "[" in w or w == "..." for w in words[1:]):
        return "synopsis", command
    if words[1] in DAEMON_COMMANDS:
        return "daemon", command
    if words[1] in OFFLINE_COMMANDS:
        return "offline", command
    raise AssertionError(f"{command!r}: neither runnable, a synopsis, nor skipped with a reason")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    from tests.ops.daemonproc import RsuDaemon, group_and_port

    group, port = group_and_port()
    d = RsuDaemon(tmp_path_factory.mktemp("docs-daemon"), group=group, port=port).start()
    yield d
    assert d.stop() == 0, d.log()


@pytest.fixture(scope="module")
def paths(daemon, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("docs-files")
    return {  # path in the docs -> the file this test uses
        "/etc/rsu/rsu.yaml": str(REPO / "config" / "rsu.example.yaml"),
        "capture.pcap": str(daemon.pcap),
        "/var/lib/rsu/pki": str(daemon.pki_dir),
        "/tmp/": str(tmp) + "/",
    }


def shell_line(command: str, paths: dict[str, str]) -> str:
    # the docs' paths first (one pass: no path replaced twice), then rsu: the interpreter's own path may
    # contain one of them (a checkout under /tmp/)
    pattern = "|".join(re.escape(p) for p in sorted(paths, key=len, reverse=True))
    line = re.sub(pattern, lambda m: paths[m.group(0)], command)
    rsu = f"{shlex.quote(sys.executable)} -m rsu"
    return re.sub(r"(^|\|\s*)(python -m rsu|rsu)\b", lambda m: m.group(1) + rsu, line)


def test_every_docs_command_is_classified():
    assert len(COMMANDS) >= 20  # the extraction finds the docs' commands
    kinds = {classify(c)[0] for _, c in COMMANDS}
    assert {"offline", "daemon", "synopsis", "skip"} <= kinds
    used = {c for _, c in COMMANDS}
    assert not set(SKIPPED) - used, f"skip reasons for commands the docs no longer have: {set(SKIPPED) - used}"


@pytest.mark.slow
def test_docs_commands_run_as_written(daemon, paths):
    """Offline and daemon commands in document order (a trigger comes before its update)."""
    from rsu.cli.main import build_parser

    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    # the API of the test's daemon, and a state directory of its own (systemd would set STATE_DIRECTORY)
    env = {**os.environ, "RSU_API_URL": daemon.url, "STATE_DIRECTORY": paths["/tmp/"] + "state"}
    ran, failures = [], []
    for where, command in COMMANDS:
        kind, _ = classify(command)
        if kind == "skip":
            continue
        if kind == "synopsis":
            for name in command.replace("python -m rsu", "rsu").split()[1].split("|"):
                if name not in commands:
                    failures.append(f"{where}: {command}: there is no command {name!r}")
            continue
        r = subprocess.run(
            shell_line(command, paths),
            shell=True,
            capture_output=True,
            cwd=REPO,
            env=env,
            timeout=120,
            executable="/bin/bash",
        )
        ran.append(command)
        if r.returncode != 0 or b"Traceback" in r.stderr:
            failures.append(f"{where}: {command}\n  exit {r.returncode}: {r.stderr.decode()[-400:]}")
    assert not failures, "\n".join(failures)
    assert any(c.startswith("rsu verify capture.pcap") for c in ran)
    assert sum(1 for c in ran if c.split()[1] in DAEMON_COMMANDS) >= 5


def test_every_api_error_code_is_documented():
    """docs/services.md's error table, the OpenAPI enum and the codes the API answers agree
    (``http_error`` was answered but listed nowhere)."""
    from rsu.api.openapi import document

    enum = set(document()["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"])
    app = (REPO / "rsu" / "api" / "app.py").read_text()
    answered = (
        set(re.findall(r'_error\("(\w+)"', app))
        | set(re.findall(r'\{\d{3}: "(\w+)"', app))
        | set(re.findall(r'\.get\(e\.status, "(\w+)"\)', app))
    )
    assert {"http_error", "not_found", "internal"} <= answered
    assert answered <= enum, answered - enum
    text = (REPO / "docs" / "services.md").read_text()
    table = text[text.index("| code | HTTP | when |") :]
    table = table[: table.index("\n\n")]
    documented = set(re.findall(r"`(\w+)`", "\n".join(line.split("|")[1] for line in table.splitlines()[2:])))
    assert documented == enum, (enum - documented, documented - enum)


def test_mqtt_source_default_is_what_the_example_config_says():
    """The example configuration said the MQTT source defaulted to rsu_<station.id>; it is the hostname."""
    import socket

    from rsu.transports.config import MqttConfig, _topic_safe

    assert MqttConfig().source_id == f"rsu_{_topic_safe(socket.gethostname())}"
    example = (REPO / "config" / "rsu.example.yaml").read_text()
    [line] = [line for line in example.splitlines() if re.match(r"\s*#?\s*source:", line)]
    assert '"rsu_<hostname>"' in line, line
    assert "`rsu_{hostname}`" in (REPO / "docs" / "transports.md").read_text()


def test_no_doubled_words_in_code_and_docs():
    """No word twice in a row (an "at" doubled in a message once) in code or docs, across line breaks too."""
    import subprocess as sp

    files = sp.run(
        ["git", "ls-files", "*.py", "*.md", "*.yaml", "*.service"], capture_output=True, text=True, cwd=REPO
    ).stdout.split()
    doubled = re.compile(r"\b(at|the|a|an|to|of|is|in|on|and|for|be|by|with|it)\s+\1\b", re.I)
    hits = [
        f"{name}: {m.group(0)!r}"
        for name in files
        if (REPO / name).is_file()
        for m in doubled.finditer((REPO / name).read_text(errors="replace"))
    ]
    assert hits == []

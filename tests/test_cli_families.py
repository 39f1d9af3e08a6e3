"""``rsu COMMAND`` builds only the parsers of its command's family (rsu.cli.main.COMMAND_FAMILY): the table
names every command of every family, and the parser built for one family is the one built for all."""

from __future__ import annotations

import argparse
import importlib

import pytest

from rsu.cli import main as climain


def _registered(module_name: str) -> set[str]:
    parser = climain._Parser(prog="rsu")
    sub = parser.add_subparsers(dest="command", parser_class=climain._Parser)
    importlib.import_module(module_name).register(sub)
    return set(sub.choices)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_the_table_names_every_command_of_every_family_and_nothing_else():
    expected = {command: name for name in climain.COMMAND_MODULES for command in _registered(name)}
    assert expected == climain.COMMAND_FAMILY


@pytest.mark.parametrize("command", sorted(climain.COMMAND_FAMILY))
def test_a_family_parser_is_the_full_parser_for_its_commands(command):
    full = climain.build_parser()
    only = climain.build_parser(climain.COMMAND_FAMILY[command])
    assert set(_subparsers(only)) == _registered(climain.COMMAND_FAMILY[command])
    assert _subparsers(only)[command].format_help() == _subparsers(full)[command].format_help()
    assert [a.option_strings for a in only._actions if a.option_strings] == [
        a.option_strings for a in full._actions if a.option_strings
    ]


@pytest.mark.parametrize(
    ("argv", "family"),
    [
        (["run", "--config", "rsu.yaml"], "rsu.cli.daemon_cmds"),
        (["--api", "http://127.0.0.1:8301", "status"], "rsu.cli.daemon_cmds"),
        (["--api=http://127.0.0.1:8301", "trigger", "rlt", "map.json"], "rsu.cli.services_cmds"),
        (["status", "--api", "http://127.0.0.1:8301"], "rsu.cli.daemon_cmds"),
        (["--api", "run"], None),  # "run" is the URL here: no command
        (["-h", "run"], None),  # the top-level help lists every command
        (["--version"], None),
        (["no-such-command"], None),  # argparse names every valid choice
        ([], None),
    ],
)
def test_the_family_of_a_command_line(argv, family):
    assert climain.family_of(argv) == family


def test_an_unknown_command_is_still_refused_with_every_choice(capsys):
    assert climain.main(["no-such-command"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice" in err
    assert all(repr(command) in err for command in climain.COMMAND_FAMILY)

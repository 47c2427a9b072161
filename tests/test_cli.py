"""The command-line shell: dispatch, verbosity flags anywhere, help for every command."""

from __future__ import annotations

import pytest

from medzsad.cli import _COMMANDS, build_parser, main


def test_verbose_flag_is_accepted_before_and_after_the_command(tiny_a_dir):
    assert main(["-v", "selftest", "--reference", str(tiny_a_dir)]) == 0
    assert main(["selftest", "--reference", str(tiny_a_dir), "-vv"]) == 0


@pytest.mark.parametrize("command", [c.replace("_", "-") for c in _COMMANDS])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: medzsad {command}")
    assert "-v, --verbose" in out


def test_top_level_help_lists_every_command():
    text = build_parser().format_help()
    for command in _COMMANDS:
        assert command.replace("_", "-") in text

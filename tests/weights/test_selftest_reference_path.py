"""``medzsad selftest --reference`` says plainly when the folder it is given does not exist."""

from __future__ import annotations

import pytest

from medzsad.cli import EXIT_MODEL, main
from medzsad.errors import ModelError
from medzsad.selftest import load_reference_fixture


def test_missing_reference_folder_is_said_to_not_exist(tmp_path, capsys):
    nowhere = tmp_path / "nonexistent"
    # the same exit code as a folder that lacks the fixture files (a model-check input: exit 5)
    assert main(["selftest", "--reference", str(nowhere)]) == EXIT_MODEL
    err = capsys.readouterr().err
    assert f"reference fixture folder {nowhere} does not exist" in err
    assert "missing [" not in err and "Traceback" not in err


def test_reference_that_is_a_file_is_said_to_be_no_folder(tmp_path):
    a_file = tmp_path / "config.json"
    a_file.write_text("{}")
    with pytest.raises(ModelError, match="is not a folder"):
        load_reference_fixture(a_file)

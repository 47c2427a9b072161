"""docs/pacs.md describes every PACS key of the cohort file and every pull/push option."""

from __future__ import annotations

from pathlib import Path

from medzsad.cli import build_parser
from medzsad.config.pacs import DicomWebInput, DimseInput, DimseTls, HttpAuth, PushConfig

DOC = (Path(__file__).parents[2] / "docs" / "pacs.md").read_text()


def test_docs_describe_every_pacs_key() -> None:
    for model in (DicomWebInput, DimseInput, HttpAuth, DimseTls, PushConfig):
        for key in model.model_fields:
            assert f"`{key}`" in DOC or f"{key}:" in DOC or f"{key}," in DOC, (model.__name__, key)


def test_docs_describe_every_pull_and_push_option() -> None:
    for command in ("pull", "push"):
        parser = build_parser(command)
        sub = next(a for a in parser._actions if a.dest == "command").choices[command]  # type: ignore[union-attr]
        for action in sub._actions:
            for opt in action.option_strings:
                if opt.startswith("--") and opt not in ("--help", "--verbose"):
                    assert opt in DOC, (command, opt)

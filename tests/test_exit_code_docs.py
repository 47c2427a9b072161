"""The exit codes the docs state are the ones :mod:`medzsad.cli` returns (issue 22's doc acceptance)."""

from __future__ import annotations

import re
from pathlib import Path

import medzsad.cli as cli

ROOT = Path(__file__).parents[1]
#: Every exit code ``medzsad run`` can end with.
RUN_CODES = {
    cli.EXIT_OK,
    cli.EXIT_ERROR,
    cli.EXIT_CONFIG,
    cli.EXIT_FAILED_STUDIES,
    cli.EXIT_INPUT,
    cli.EXIT_MODEL,
    cli.EXIT_OUTPUT,
    cli.EXIT_PACS_REFUSED,
    cli.EXIT_INTERRUPTED,
}


def _table(doc: str, heading: str) -> dict[int, str]:
    """``code -> meaning`` of the markdown table that follows ``heading`` in ``doc``."""
    text = (ROOT / "docs" / doc).read_text()
    start = text.index(heading)
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", text[start:].split("\n\n", 2)[1], flags=re.M)
    return {int(code): meaning for code, meaning in rows}


def test_run_exit_codes_in_inputs_and_pacs_docs_match_the_cli() -> None:
    for doc, heading in (
        ("inputs.md", "`medzsad run` on the same input"),
        ("pacs.md", "Exit codes of `medzsad run`"),
    ):
        table = _table(doc, heading)
        assert set(table) == RUN_CODES, doc
        assert "refused" in table[cli.EXIT_PACS_REFUSED] and "failed" in table[cli.EXIT_FAILED_STUDIES], doc
        assert "configuration" in table[cli.EXIT_CONFIG] and "interrupted" in table[cli.EXIT_INTERRUPTED], doc
    # the refusal's exit code is the one the CLI maps PacsRefusedError to
    assert ("PacsRefusedError", cli.EXIT_PACS_REFUSED) in cli._EXIT_BY_ERROR


def test_readme_and_run_help_name_every_exit_code() -> None:
    readme = (ROOT / "README.md").read_text()
    sentence = readme[readme.index("Exit codes: 0 success") :].split("\n\n")[0]
    for code in RUN_CODES - {cli.EXIT_OK}:
        assert re.search(rf"\b{code} ", sentence), code
    assert "7 the PACS refused us" in sentence
    from medzsad.cli.run_cmd import EPILOG

    assert "7 the PACS refused us" in EPILOG and "130 interrupted" in EPILOG

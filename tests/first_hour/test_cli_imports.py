"""The CLI is a shell over medzsad.api: it imports nothing else of the package (issue 15 item 6).

Walks the imports of every module of medzsad.cli: at module level only the standard library,
``medzsad.api`` and medzsad.cli's own modules; inside functions no medzsad module but those either.
Then builds every parser in a fresh interpreter and checks that no heavy library was loaded, which
is what keeps ``medzsad --help``/``--version`` and config errors under a second (bench/RESULTS.md).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import medzsad.cli

CLI_DIR = Path(medzsad.cli.__file__).parent
HEAVY = ("torch", "numpy", "pandas", "pydantic", "yaml", "PIL", "scipy", "nibabel", "pydicom", "open_clip")


def _is_type_checking(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _module_level(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If | ast.Try) and not _is_type_checking(node):
            for block in ("body", "orelse", "finalbody", "handlers"):
                todo += [n for n in getattr(node, block, []) if isinstance(n, ast.stmt)]
                for h in getattr(node, block, []):
                    if isinstance(h, ast.ExceptHandler):
                        todo += h.body
    return found


def _names(node: ast.Import | ast.ImportFrom) -> list[str]:
    """Fully qualified modules (or module.attribute) an import statement reaches."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:  # relative import inside medzsad.cli
        return [f"medzsad.cli.{node.module or ''}"]
    return [f"{node.module}.{a.name}" for a in node.names]


def _allowed(name: str) -> bool:
    root = name.split(".")[0]
    if root == "__future__" or (root in sys.stdlib_module_names and root != "medzsad"):
        return True
    return name in ("medzsad.api", "medzsad.cli") or name.startswith(("medzsad.api.", "medzsad.cli."))


def _cli_modules() -> list[Path]:
    files = sorted(CLI_DIR.glob("*.py"))
    assert len(files) >= 10, files  # __init__ and every command module
    return files


def test_cli_modules_import_only_the_api_and_the_standard_library() -> None:
    bad = []
    for path in _cli_modules():
        tree = ast.parse(path.read_text(), filename=str(path))
        module_level = _module_level(tree)
        type_only = {id(n) for b in tree.body if _is_type_checking(b) for n in ast.walk(b)}
        bad += [
            f"{path.name}:{n.lineno} {name}" for n in module_level for name in _names(n) if not _allowed(name)
        ]
        # inside functions too: no medzsad module other than the API (the CLI calls one API function)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Import | ast.ImportFrom)
                and node not in module_level
                and id(node) not in type_only
            ):
                names = [x for x in _names(node) if x.startswith("medzsad") and not _allowed(x)]
                bad += [f"{path.name}:{node.lineno} {name} (in a function)" for name in names]
    assert bad == []


def test_the_walker_catches_a_forbidden_import() -> None:
    tree = ast.parse("import os\nfrom medzsad.io import inspect\nif True:\n    import torch\n")
    names = [name for n in _module_level(tree) for name in _names(n)]
    assert sorted(x for x in names if not _allowed(x)) == ["medzsad.io.inspect", "torch"]
    guarded = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import torch\n")
    assert [name for n in _module_level(guarded) for name in _names(n)] == ["typing.TYPE_CHECKING"]


def test_building_every_parser_loads_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "from medzsad.cli import _COMMANDS, build_parser\n"
        "build_parser()\n"
        "for c in _COMMANDS: build_parser(c)\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""

"""Cohort YAML -> :class:`CohortConfig`, with the line of the offending key in every error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from medzsad.config.cohort import CohortConfig, validate_cohort_data
from medzsad.errors import ConfigError

__all__ = ["parse_cohort", "load_cohort", "validate_cohort_data"]


def _key_lines(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    """Record the 1-based line of every mapping key and sequence item under ``node``."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            sub = (*path, key_node.value)
            out[sub] = key_node.start_mark.line + 1
            _key_lines(value_node, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            sub = (*path, i)
            out[sub] = item.start_mark.line + 1
            _key_lines(item, sub, out)


def parse_cohort(text: str, source: str = "<memory>", base_dir: str | Path = ".") -> CohortConfig:
    """Parse cohort YAML text.

    Args:
        text: YAML document.
        source: Name used in error messages (the file name).
        base_dir: Directory that relative paths resolve against.

    Raises:
        ConfigError: Invalid YAML, unknown key, missing key or bad value (one line, with the line number).
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{source}{line}: invalid YAML: {problem}") from e
    lines: dict[tuple[Any, ...], int] = {}
    if node is not None:
        _key_lines(node, (), lines)
    if isinstance(data, dict):
        for reserved in ("base_dir", "source_file"):
            if reserved in data:
                raise ConfigError(
                    f"{source}:{lines.get((reserved,), '?')}: unknown key {reserved!r} at the top level"
                )
        data = {**data, "base_dir": str(Path(base_dir).resolve()), "source_file": source}
    return validate_cohort_data(data, source, lines)


def load_cohort(path: str | Path) -> CohortConfig:
    """Load and validate a cohort file.

    Raises:
        ConfigError: The file is missing or invalid (the message names the file and line).
    """
    p = Path(path)
    if p.is_dir() or _looks_like_scan(p):
        raise ConfigError(_not_a_cohort_file(p))
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the cohort file ({e.strerror}); check the path") from e
    except UnicodeDecodeError as e:  # binary: a scan or an archive without a known suffix
        raise ConfigError(_not_a_cohort_file(p)) from e
    return parse_cohort(text, source=str(p), base_dir=p.resolve().parent)


# Suffixes of inputs (scans, archives) that are never cohort files.
_SCAN_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm", ".ima", ".zip", ".png", ".jpg")


def _looks_like_scan(p: Path) -> bool:
    name = p.name.lower()
    return name == "dicomdir" or name.endswith(_SCAN_SUFFIXES)


def _not_a_cohort_file(p: Path) -> str:
    what = "a folder" if p.is_dir() else "a scan or archive, not a YAML file"
    return (
        f"{p}: expected a cohort YAML file but this is {what}; to score it directly run "
        f"'medzsad run -i {p} -o OUTPUT_DIR' (see 'medzsad run --help')"
    )

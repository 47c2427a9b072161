"""The ``medzsad`` command line: a thin shell over :mod:`medzsad.api`.

Each sub-command lives in its own small module with two functions: ``register(subparsers)`` adds
its parser, and the handler it sets with ``set_defaults(handler=...)`` calls **one** API function.
This module parses, configures logging, dispatches and maps exceptions to exit codes.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import textwrap
import traceback
from collections.abc import Sequence

from medzsad import api

__all__ = [
    "main",
    "EXIT_OK",
    "EXIT_FAILED_STUDIES",
    "EXIT_CONFIG",
    "EXIT_INPUT",
    "EXIT_MODEL",
    "EXIT_PACS_REFUSED",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_FAILED_STUDIES = 3
EXIT_CONFIG = 2
EXIT_INPUT = 4
EXIT_MODEL = 5
EXIT_OUTPUT = 6
EXIT_PACS_REFUSED = 7  # credentials or AE title refused, or no DICOMweb server: never retried
EXIT_INTERRUPTED = 130

# Sub-command modules, in the order ``--help`` lists them.
_COMMANDS = (
    "run",
    "inspect",
    "demo_data",
    "weights",
    "selftest",
    "train",
    "evaluate",
    "benchmark",
    "slicer",
    "profile",
    "pull",
    "push",
)

# Error class name in medzsad.api -> exit code (classes looked up when an error is mapped).
_EXIT_BY_ERROR: tuple[tuple[str, int], ...] = (
    ("PacsRefusedError", EXIT_PACS_REFUSED),
    ("PacsSendError", EXIT_OUTPUT),  # results could not be sent: an output problem, not an input one
    ("ConfigError", EXIT_CONFIG),
    ("InputError", EXIT_INPUT),
    ("ModelError", EXIT_MODEL),
    ("OutputError", EXIT_OUTPUT),
)


def _command_of(argv: Sequence[str]) -> str | None:
    """The sub-command named in ``argv`` (first non-option word), if it is a known one."""
    for word in argv:
        if not word.startswith("-"):
            name = word.replace("-", "_")
            return name if name in _COMMANDS else None
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Build the top-level parser.

    Args:
        only: Register just this sub-command (its module alone is imported, so e.g.
            ``medzsad weights list`` does not pay for importing torch); ``None`` registers all.
    """
    parser = argparse.ArgumentParser(
        prog="medzsad",
        description=(
            "Zero-shot anomaly detection for CT and MRI cohorts (AnomalyCLIP). "
            "Run 'medzsad COMMAND --help' for the options of one command."
        ),
    )
    parser.add_argument("--version", action="version", version=f"medzsad {api.version}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMANDS if only is None else (only,):
        try:
            module = importlib.import_module(f"medzsad.cli.{name}_cmd")
        except ModuleNotFoundError as e:
            if e.name != f"medzsad.cli.{name}_cmd":
                raise
            continue
        module.register(sub)
    for command_parser in sub.choices.values():
        # '-v' works after the command too (medzsad run cohort.yaml -v), as users type it
        command_parser.add_argument(
            "-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more logging (-vv for debug)"
        )
    return parser


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    """The sub-command action of the top-level parser."""
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def wrap(text: str, width: int = 88) -> str:
    """A command description wrapped for ``--help`` (commands whose epilog keeps its own layout)."""
    return textwrap.fill(" ".join(text.split()), width)


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.INFO if verbose <= 1 else logging.DEBUG)
    if verbose == 0 and not quiet:
        level = logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``medzsad`` console script. Returns the process exit code.

    Every failure ends in one message on stderr and its exit code: one line, or for a typed error
    that lists steps to take (missing weights), those steps as lines; the traceback is shown only
    with ``-vv`` (then it is logged at DEBUG level before the message).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(argv))
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # the command's own usage and error (exit 2), not the top-level usage
        command = _subparsers(parser).choices.get(getattr(args, "command", None) or "", parser)
        command.error(f"unrecognized arguments: {' '.join(unknown)}")
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return EXIT_CONFIG
    _configure_logging(args.verbose, getattr(args, "quiet", False))
    debug = args.verbose >= 2
    try:
        return int(args.handler(args) or EXIT_OK)
    except BrokenPipeError:  # output piped into `head` and closed early
        return EXIT_OK
    except KeyboardInterrupt:
        sys.stderr.write("medzsad: interrupted\n")
        return EXIT_INTERRUPTED
    except Exception as e:  # typed errors -> their code; anything else: one line, never a bare traceback
        if debug:
            traceback.print_exc(file=sys.stderr)
        return _report_error(e, debug)


def _report_error(error: Exception, debug: bool) -> int:
    """Write the one-line message of ``error`` to stderr; return its exit code."""
    if isinstance(error, api.MedzsadError):
        sys.stderr.write(f"medzsad: error: {_as_lines(error)}\n")
        for name, code in _EXIT_BY_ERROR:
            if isinstance(error, getattr(api, name)):
                return code
        return EXIT_ERROR
    hint = "" if debug else " (run again with -vv for the traceback)"
    sys.stderr.write(f"medzsad: unexpected error: {type(error).__name__}: {_one_line(error)}{hint}\n")
    return EXIT_ERROR


def _as_lines(error: BaseException) -> str:
    """A typed error's message: its first line, then any steps it lists, each on its own line."""
    lines = [line.rstrip() for line in str(error).strip().splitlines() if line.strip()]
    return "\n".join(lines) if lines else type(error).__name__


def _one_line(error: BaseException) -> str:
    """The message of ``error`` on one line (multi-line messages are joined with ' | ')."""
    text = str(error).strip() or type(error).__name__
    return " | ".join(part.strip() for part in text.splitlines() if part.strip())

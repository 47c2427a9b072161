"""``medzsad weights list|import|fetch|path``: manage the local copies of the model weights."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from medzsad import api

if TYPE_CHECKING:
    from medzsad.weights import StoredWeights, WeightStatus

_DESCRIPTION = (
    "Manage the pretrained weights medzsad runs on: the CLIP backbones and the AnomalyCLIP prompt "
    "checkpoints. Files live in $MEDZSAD_HOME/weights (default ~/.cache/medzsad/weights). "
    "On a machine without internet access, download the file elsewhere (the URL is printed by "
    "'medzsad weights path NAME') and run 'medzsad weights import NAME FILE'."
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``weights`` parser and its sub-commands."""
    p = sub.add_parser("weights", help="list, import and download model weights", description=_DESCRIPTION)
    wsub = p.add_subparsers(dest="weights_command", metavar="ACTION", required=True)

    p_list = wsub.add_parser(
        "list",
        help="show the known weights and whether they are on this machine",
        description="Show every known weight file: name, kind, architecture, cache status and path.",
    )
    p_list.add_argument(
        "--external",
        action="store_true",
        help="also look in the Hugging Face hub cache (slower: loads open_clip)",
    )
    p_list.add_argument(
        "--urls", action="store_true", help="also show each file's URL, checksum, licence and notes"
    )
    p_list.set_defaults(handler=_handle_list)

    p_import = wsub.add_parser(
        "import",
        help="copy an already downloaded file into the cache (offline machines)",
        description=(
            "Copy a downloaded weight file into the cache, verifying its SHA-256 against the registry "
            "(or --sha256) and, for prompt checkpoints, that the file is one (with or without "
            "--sha256). Files without a published checksum are stored with their digest recorded "
            "as unverified. A refused file leaves nothing in the cache."
        ),
    )
    p_import.add_argument("name", metavar="NAME", help="registry name, e.g. clip_vitl14_336.openai")
    p_import.add_argument("file", metavar="FILE", help="the downloaded file")
    p_import.add_argument("--sha256", metavar="HEX", help="pin the expected SHA-256 of FILE")
    p_import.set_defaults(handler=_handle_import)

    p_fetch = wsub.add_parser(
        "fetch",
        help="download weights into the cache (needs internet access)",
        description=(
            "Download registry weights (HTTP(S) through pooch, with retries), verify their SHA-256 and "
            "store them in the cache. Files already in the cache are kept. If any file cannot be "
            "downloaded, every missing one is named with its URL and the 'medzsad weights import' "
            "command for an offline machine (exit 5)."
        ),
    )
    p_fetch.add_argument(
        "name", metavar="NAME", nargs="+", help="registry name(s), e.g. anomalyclip_vitl14_336.mvtec"
    )
    p_fetch.add_argument(
        "--sha256", metavar="HEX", help="pin the expected SHA-256 of the download (one NAME)"
    )
    p_fetch.set_defaults(handler=_handle_fetch)

    p_path = wsub.add_parser(
        "path",
        help="print the local file of some weights (or how to get it)",
        description="Print the path of the cached file; exits 5 with instructions if it is absent.",
    )
    p_path.add_argument("name", metavar="NAME", help="registry name")
    p_path.set_defaults(handler=_handle_path)


def _handle_list(args: argparse.Namespace) -> int:
    rows = api.list_weights(external=args.external)
    header = ("name", "kind", "architecture", "status")
    cells = [(r.entry.name, r.entry.kind.value, r.entry.architecture, r.status.value) for r in rows]
    widths = [max(len(c[i]) for c in [header, *cells]) for i in range(len(header))]

    def line(values: tuple[str, ...], path: str) -> str:
        return "  ".join(f"{v:<{w}}" for v, w in zip(values, widths)) + "  " + path + "\n"

    sys.stdout.write(line(header, "path"))
    for row, values in zip(rows, cells):
        sys.stdout.write(line(values, str(row.path)))
        if args.urls:
            _write_details(row)
    return 0


def _write_details(row: WeightStatus) -> None:
    e = row.entry
    sys.stdout.write(f"    {e.description}; licence {e.license}\n")
    sys.stdout.write(f"    url: {e.urls[0]}\n    sha256: {e.sha256 or 'not published'}\n")
    if row.record is not None:
        state = "verified" if row.record.verified else "UNVERIFIED"
        sys.stdout.write(f"    stored sha256: {row.record.sha256} ({state}, from {row.record.origin})\n")
    if e.note:
        sys.stdout.write(f"    note: {e.note}\n")


def _report(stored: StoredWeights) -> None:
    if not stored.sha256:
        sys.stdout.write(f"{stored.name}: {stored.path} (already on this machine)\n")
        return
    state = "verified" if stored.verified else "UNVERIFIED (no published checksum; recorded)"
    sys.stdout.write(f"{stored.name}: {stored.path}\n  sha256 {stored.sha256} {state}\n")


def _handle_import(args: argparse.Namespace) -> int:
    _report(api.import_weights(args.name, args.file, sha256=args.sha256))
    return 0


def _handle_fetch(args: argparse.Namespace) -> int:
    if args.sha256 is not None:
        if len(args.name) != 1:
            raise api.ConfigError("--sha256 pins the digest of one file; give one NAME with it")
        _report(api.fetch_weights(args.name[0], sha256=args.sha256))
        return 0
    for stored in api.fetch_all_weights(args.name):
        _report(stored)
    return 0


def _handle_path(args: argparse.Namespace) -> int:
    sys.stdout.write(f"{api.weights_path(args.name)}\n")
    return 0

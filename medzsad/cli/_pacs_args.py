"""Endpoint options shared by ``medzsad pull`` and ``medzsad push`` (argparse only)."""

from __future__ import annotations

import argparse
from typing import Any


def add_endpoint_options(p: argparse.ArgumentParser, *, retrieve: bool = True) -> None:
    """Add ``--dicomweb``/``--dimse`` and the auth/TLS/timeout options.

    Args:
        p: The command's parser.
        retrieve: The command retrieves (``pull``): add ``--move-port``; ``push`` only sends.
    """
    where = p.add_mutually_exclusive_group()
    where.add_argument("--dicomweb", metavar="URL", help="DICOMweb base URL, e.g. https://pacs/dicom-web")
    where.add_argument(
        "--dimse",
        metavar="HOST:PORT:AE",
        help="DICOM peer, host:port:AE_TITLE[:CALLING_AE] (default calling AE MEDZSAD)",
    )
    p.add_argument("--user", dest="username", help="HTTP basic user name (with --password-env)")
    p.add_argument(
        "--password-env", metavar="VAR", help="environment variable holding the HTTP basic password"
    )
    p.add_argument("--token-env", metavar="VAR", help="environment variable holding a bearer token")
    p.add_argument("--ca-bundle", metavar="PEM", help="CA bundle for https (DICOMweb) or for DIMSE TLS")
    if retrieve:
        p.add_argument(
            "--move-port",
            type=int,
            metavar="PORT",
            help="DIMSE: retrieve by C-MOVE to our storage SCP on this port (for a PACS without C-GET)",
        )
    p.add_argument(
        "--timeout", dest="timeout_s", type=float, default=60.0, help="seconds per request (default 60)"
    )


def endpoint_args(args: argparse.Namespace) -> dict[str, Any]:
    """The endpoint options as keyword arguments of :class:`medzsad.api.EndpointArgs`."""
    keys = (
        "dicomweb",
        "dimse",
        "username",
        "password_env",
        "token_env",
        "ca_bundle",
        "timeout_s",
        "move_port",
    )
    return {k: getattr(args, k, None) for k in keys}

"""Endpoints from command-line words: ``--dicomweb URL``, ``--dimse host:port:AE[:CALLING_AE]``.

The commands ``medzsad pull`` / ``medzsad push`` build the same typed configs a cohort file does,
so they are validated by one set of rules (:mod:`medzsad.config.pacs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from medzsad.config.pacs import DicomWebInput, DimseInput, PushConfig
from medzsad.errors import ConfigError

__all__ = ["EndpointArgs", "pull_source", "push_destination", "cohort_sources"]


@dataclass(frozen=True)
class EndpointArgs:
    """An endpoint as typed on the command line.

    Attributes:
        dicomweb: DICOMweb base URL.
        dimse: ``host:port:AE`` or ``host:port:AE:CALLING_AE``.
        username: HTTP basic user name (with ``password_env``).
        password_env: Environment variable holding the HTTP basic password.
        token_env: Environment variable holding a bearer token.
        ca_bundle: CA bundle (PEM) for DICOMweb over https, or the CA file for DIMSE TLS.
        timeout_s: Seconds per request.
        move_port: DIMSE pull by C-MOVE to our storage SCP on this port (default: C-GET).
    """

    dicomweb: str | None = None
    dimse: str | None = None
    username: str | None = None
    password_env: str | None = None
    token_env: str | None = None
    ca_bundle: str | None = None
    timeout_s: float = 60.0
    move_port: int | None = None


def _dimse_fields(address: str) -> dict[str, Any]:
    parts = address.split(":")
    if len(parts) not in (3, 4) or not parts[1].isdigit():
        raise ConfigError(
            f"--dimse {address!r}: give host:port:AE_TITLE (optionally :CALLING_AE), e.g. pacs:104:PACS"
        )
    out: dict[str, Any] = {"host": parts[0], "port": int(parts[1]), "ae_title": parts[2]}
    if len(parts) == 4:
        out["calling_ae"] = parts[3]
    return out


def _endpoint(args: EndpointArgs) -> tuple[str, dict[str, Any]]:
    if (args.dicomweb is None) == (args.dimse is None):
        raise ConfigError("give exactly one of --dicomweb URL or --dimse host:port:AE")
    if args.dicomweb is not None:
        fields: dict[str, Any] = {"url": args.dicomweb, "timeout_s": args.timeout_s}
        if args.token_env:
            fields["auth"] = {"kind": "bearer", "token_env": args.token_env}
        elif args.username or args.password_env:
            fields["auth"] = {"kind": "basic", "username": args.username, "password_env": args.password_env}
        if args.ca_bundle:
            fields["ca_bundle"] = args.ca_bundle
        return "dicomweb", fields
    fields = {**_dimse_fields(str(args.dimse)), "timeout_s": args.timeout_s}
    if args.ca_bundle:
        fields["tls"] = {"ca_file": args.ca_bundle}
    if args.move_port is not None:
        fields.update(retrieve="move", move_port=args.move_port)
    return "dimse", fields


def _build(model: type[BaseModel], data: dict[str, Any], what: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{what}: {where}: {first['msg']}") from e


def pull_source(
    args: EndpointArgs, studies: tuple[str, ...] = (), query: dict[str, str] | None = None, parallel: int = 2
) -> DicomWebInput | DimseInput:
    """The pull source named by command-line words (a StudyInstanceUID list or a study query).

    Raises:
        ConfigError: Missing or conflicting options.
    """
    kind, fields = _endpoint(args)
    fields.update(studies=studies, query=dict(query or {}), parallel=parallel)
    model = DicomWebInput if kind == "dicomweb" else DimseInput
    return _build(model, fields, "medzsad pull")  # type: ignore[no-any-return]


def push_destination(
    args: EndpointArgs, what: tuple[str, ...] = ("seg", "pmap", "sr"), retries: int = 3
) -> PushConfig:
    """The push destination named by command-line words.

    Raises:
        ConfigError: Missing or conflicting options, or an unknown ``--what`` item.
    """
    kind, fields = _endpoint(args)
    return _build(PushConfig, {kind: fields, "what": what, "retries": retries}, "medzsad push")  # type: ignore[no-any-return]


def cohort_sources(cohort: str | Path) -> list[DicomWebInput | DimseInput]:
    """The ``inputs.dicomweb`` / ``inputs.dimse`` of a cohort file.

    Raises:
        ConfigError: The cohort file is invalid or names no PACS input.
    """
    from medzsad.config import load_cohort

    cfg = load_cohort(cohort)
    found = [s for s in (cfg.inputs.dicomweb, cfg.inputs.dimse) if s is not None]
    if not found:
        raise ConfigError(f"{cohort}: inputs has no dicomweb or dimse section to pull from")
    return found

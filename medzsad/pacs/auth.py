"""Credentials and TLS for PACS connections, read from the environment when a client is built.

Secrets stay in the environment variables the cohort file names; they are put on the HTTP session
(never on per-request headers, which ``dicomweb-client`` logs at debug level) and never logged,
written to provenance or the ledger.
"""

from __future__ import annotations

import os
import re
import ssl
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from medzsad.config.pacs import DicomWebEndpoint, DimseTls, HttpAuth
from medzsad.errors import ConfigError

__all__ = ["http_session", "dimse_ssl_context", "display_url", "dimse_endpoint", "host_id"]

#: Names of this machine's loopback interface: one endpoint however it is spelt.
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", "::1"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _env(name: str, endpoint: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ConfigError(
            f"{endpoint}: environment variable {name} (named in the cohort's auth) is not set or empty; "
            "export it before running"
        )
    return value


def host_id(host: str) -> str:
    """A host as endpoint identities spell it: lower case, no trailing dot, loopback as ``127.0.0.1``."""
    h = host.strip().strip("[]").lower().rstrip(".")
    if h in _LOOPBACK_NAMES or re.fullmatch(r"127(\.\d{1,3}){3}", h):
        return "127.0.0.1"
    return h


def display_url(url: str) -> str:
    """The endpoint identity of a DICOMweb URL: shown in messages, the key of what was sent where.

    Without any ``user:password@`` part, query or fragment; scheme and host in lower case,
    ``localhost`` (and every loopback spelling) as ``127.0.0.1``, no default port (80 for http,
    443 for https), no repeated or trailing slashes. So ``http://LOCALHOST:80/dicom-web/`` and
    ``http://127.0.0.1/dicom-web`` are one endpoint, and what was sent to one is not sent again
    to the other.

    Raises:
        ConfigError: The port is not a number in 0..65535.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError as e:
        raise ConfigError(f"DICOMweb URL {url!r}: {e}") from e
    host = host_id(parts.hostname or "")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        netloc += f":{port}"
    path = re.sub(r"/{2,}", "/", parts.path).rstrip("/")
    return urlunsplit((scheme, netloc, path, "", ""))


def dimse_endpoint(ae_title: str, host: str, port: int) -> str:
    """The endpoint identity of a DICOM peer: ``AE@host:port``, AE title unpadded, host as :func:`host_id`."""
    return f"{ae_title.strip()}@{host_id(host)}:{int(port)}"


def _apply_auth(session: requests.Session, auth: HttpAuth, endpoint: str) -> None:
    if auth.kind == "basic":
        session.auth = (auth.username or "", _env(auth.password_env or "", endpoint))
    else:
        session.headers["Authorization"] = f"Bearer {_env(auth.token_env or '', endpoint)}"


class _PinnedVerifySession(requests.Session):
    """A session whose ``verify`` (CA bundle, or off) wins over ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``.

    Plain ``requests`` lets those environment variables replace a session's ``verify`` (requests
    issue #3829), which would silently ignore the cohort's ``ca_bundle``.
    """

    def merge_environment_settings(  # type: ignore[override]
        self, url: str, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if verify is None:
            settings["verify"] = self.verify
        return settings


def http_session(endpoint: DicomWebEndpoint) -> requests.Session:
    """A ``requests`` session with the endpoint's authentication and TLS verification.

    Raises:
        ConfigError: The environment variable holding the secret is not set.
    """
    pinned = bool(endpoint.ca_bundle) or not endpoint.verify_tls
    session = _PinnedVerifySession() if pinned else requests.Session()
    shown = display_url(endpoint.url)
    if endpoint.auth is not None:
        _apply_auth(session, endpoint.auth, shown)
    session.verify = endpoint.ca_bundle if endpoint.ca_bundle else endpoint.verify_tls
    return session


def dimse_ssl_context(tls: DimseTls) -> ssl.SSLContext:
    """A client TLS context verifying the peer against ``tls.ca_file`` (and presenting our certificate).

    Raises:
        ConfigError: A certificate or key file cannot be loaded.
    """
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.ca_file)
        if tls.cert_file:
            context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"DIMSE TLS: cannot load {tls.ca_file} / {tls.cert_file} ({e})") from e
    return context

"""Credentials and TLS for PACS connections, read from the environment when a client is built.

Secrets stay in the environment variables the cohort file names; they are put on the HTTP session
(never on per-request headers, which ``dicomweb-client`` logs at debug level) and never logged,
written to provenance or the ledger.
"""

from __future__ import annotations

import os
import ssl
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from medzsad.config.pacs import DicomWebEndpoint, DimseTls, HttpAuth
from medzsad.errors import ConfigError

__all__ = ["http_session", "dimse_ssl_context", "display_url"]


def _env(name: str, endpoint: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ConfigError(
            f"{endpoint}: environment variable {name} (named in the cohort's auth) is not set or empty; "
            "export it before running"
        )
    return value


def display_url(url: str) -> str:
    """The URL without any ``user:password@`` part, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


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

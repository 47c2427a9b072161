"""``sent_objects``: which DICOM outputs went to which PACS, in the run ledger ``ledger.sqlite``.

A table of its own beside the ledger's ``studies`` table (its own connection, same WAL database),
so a rerun or a second ``medzsad push`` sends nothing already sent: an object is sent again only
to another endpoint or when its bytes changed (then it has a new SOPInstanceUID anyway).
Failed sends are kept with their error for ``errors.csv``. No credentials are stored.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from medzsad.errors import OutputError

__all__ = ["SentRecords", "PushFailure"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sent_objects (
    sop_uid TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    study_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    path TEXT NOT NULL,
    sent_at REAL NOT NULL,
    PRIMARY KEY (sop_uid, endpoint)
);
CREATE TABLE IF NOT EXISTS push_failures (
    study_id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    failed_at REAL NOT NULL,
    PRIMARY KEY (study_id, endpoint)
);
"""


@dataclass(frozen=True)
class PushFailure:
    """A study whose outputs could not be sent (after retries)."""

    study_id: str
    endpoint: str
    error: str
    attempts: int


class SentRecords:
    """The ``sent_objects`` and ``push_failures`` tables of ``<run>/ledger.sqlite``.

    Raises:
        OutputError: The database cannot be opened or written.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(
                str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as e:
            raise OutputError(f"{self.path}: cannot open the sent-objects table of the ledger ({e})") from e

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def __enter__(self) -> SentRecords:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, sql: str, params: tuple[object, ...]) -> None:
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(sql, params)
        except sqlite3.Error as e:
            raise OutputError(f"{self.path}: cannot record a sent object ({e})") from e

    def was_sent(self, sop_uid: str, endpoint: str, sha256: str) -> bool:
        """True when these bytes (same SOPInstanceUID and digest) went to this endpoint."""
        row = self._db.execute(
            "SELECT sha256 FROM sent_objects WHERE sop_uid=? AND endpoint=?", (sop_uid, endpoint)
        ).fetchone()
        return row is not None and row[0] == sha256

    def mark_sent(
        self, sop_uid: str, endpoint: str, sha256: str, study_id: str, kind: str, path: str
    ) -> None:
        """Record one object as stored by the endpoint."""
        self._write(
            "INSERT OR REPLACE INTO sent_objects VALUES (?, ?, ?, ?, ?, ?, ?)",
            (sop_uid, endpoint, sha256, study_id, kind, path, time.time()),
        )

    def n_sent(self, endpoint: str | None = None) -> int:
        """Objects recorded as sent (to ``endpoint``, or anywhere)."""
        if endpoint is None:
            return int(self._db.execute("SELECT COUNT(*) FROM sent_objects").fetchone()[0])
        q = "SELECT COUNT(*) FROM sent_objects WHERE endpoint=?"
        return int(self._db.execute(q, (endpoint,)).fetchone()[0])

    def mark_failed(self, study_id: str, endpoint: str, error: str, attempts: int) -> None:
        """Record that a study's outputs could not be sent to the endpoint."""
        self._write(
            "INSERT OR REPLACE INTO push_failures VALUES (?, ?, ?, ?, ?)",
            (study_id, endpoint, error, attempts, time.time()),
        )

    def clear_failure(self, study_id: str, endpoint: str) -> None:
        """Forget a study's failure once its outputs are sent."""
        self._write("DELETE FROM push_failures WHERE study_id=? AND endpoint=?", (study_id, endpoint))

    def failures(self) -> list[PushFailure]:
        """Studies still not sent, by study id."""
        rows = self._db.execute(
            "SELECT study_id, endpoint, error, attempts FROM push_failures ORDER BY study_id, endpoint"
        )
        return [PushFailure(str(r[0]), str(r[1]), str(r[2]), int(r[3])) for r in rows]

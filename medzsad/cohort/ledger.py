"""The run ledger: one SQLite row per study, so an interrupted run resumes with nothing lost.

Protocol (see :mod:`medzsad.cohort.runner`): a study is marked ``running``, its files are written
into ``studies/<id>.partial-<pid>/``, that folder is renamed to ``studies/<id>/``, and only then is
the row marked ``done`` (one committed transaction, ``synchronous=FULL``). A SIGKILL at any point
leaves either a complete folder with a ``done`` row, or a row that is not ``done`` and is redone.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from medzsad.errors import OutputError

__all__ = ["StudyState", "LedgerRow", "Ledger"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS studies (
    study_id TEXT PRIMARY KEY,
    safe_id TEXT NOT NULL,
    input_hash TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    state TEXT NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    started_at REAL,
    finished_at REAL,
    outputs TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS owned (path TEXT PRIMARY KEY, kind TEXT NOT NULL, created_at REAL NOT NULL);
"""


class StudyState(str, Enum):
    """State of a study in the ledger."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class LedgerRow:
    """One study's record.

    Attributes:
        study_id: The study id (from the manifest or discovery).
        safe_id: Its folder name under ``studies/``.
        input_hash: sha256 of the input files' names, sizes and modification times.
        config_hash: sha256 of the settings that change outputs.
        state: Current state.
        error: One-line error of the last failed attempt.
        attempts: Times the study was started.
        started_at: Unix time of the last start.
        finished_at: Unix time of the last finish (done or failed).
        outputs: Summary written with ``done`` (score, slices, lesions, series, files, ...).
    """

    study_id: str
    safe_id: str
    input_hash: str
    config_hash: str
    state: StudyState
    error: str
    attempts: int
    started_at: float | None
    finished_at: float | None
    outputs: dict[str, Any]


class Ledger:
    """The SQLite ledger ``<out>/ledger.sqlite``.

    Args:
        path: Database file; created with its table if missing.

    Raises:
        OutputError: The database cannot be opened (the message names the file).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            had_owned = self._db.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='owned'"
            ).fetchone()
            self._db.executescript(_SCHEMA)
            if not had_owned:  # a ledger from before ownership records: its done folders are ours
                self._db.execute(
                    "INSERT OR IGNORE INTO owned (path, kind, created_at) "
                    "SELECT 'studies/' || safe_id, 'study', ? FROM studies WHERE state = 'done'",
                    (time.time(),),
                )
        except sqlite3.Error as e:
            raise OutputError(
                f"{self.path}: cannot open the run ledger ({e}); delete it to start over"
            ) from e

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(sql, params)
        except sqlite3.Error as e:
            raise OutputError(f"{self.path}: cannot update the run ledger ({e})") from e

    def get(self, study_id: str) -> LedgerRow | None:
        """The row of a study, or ``None``."""
        cur = self._db.execute("SELECT * FROM studies WHERE study_id = ?", (study_id,))
        r = cur.fetchone()
        return None if r is None else _row(r)

    def rows(self) -> list[LedgerRow]:
        """All rows, ordered by study id."""
        return [_row(r) for r in self._db.execute("SELECT * FROM studies ORDER BY study_id")]

    def mark_running(self, study_id: str, safe_id: str, input_hash: str, config_hash: str) -> None:
        """Record that a study starts (inserting its row if new)."""
        self._write(
            """INSERT INTO studies (study_id, safe_id, input_hash, config_hash, state, attempts, started_at)
               VALUES (?, ?, ?, ?, 'running', 1, ?)
               ON CONFLICT(study_id) DO UPDATE SET safe_id=excluded.safe_id, input_hash=excluded.input_hash,
                 config_hash=excluded.config_hash, state='running', error='', attempts=attempts+1,
                 started_at=excluded.started_at, finished_at=NULL, outputs='{}'""",
            (study_id, safe_id, input_hash, config_hash, time.time()),
        )

    def mark_done(self, study_id: str, outputs: dict[str, Any]) -> None:
        """Record that a study's folder is complete (call after the folder rename)."""
        payload = json.dumps(outputs, sort_keys=True, allow_nan=True)
        self._write(
            "UPDATE studies SET state='done', error='', finished_at=?, outputs=? WHERE study_id=?",
            (time.time(), payload, study_id),
        )

    def mark_failed(self, study_id: str, error: str, outputs: dict[str, Any] | None = None) -> None:
        """Record that a study failed, with a one-line error."""
        payload = json.dumps(outputs or {}, sort_keys=True, allow_nan=True)
        self._write(
            "UPDATE studies SET state='failed', error=?, finished_at=?, outputs=? WHERE study_id=?",
            (error, time.time(), payload, study_id),
        )

    def set_meta(self, key: str, value: str) -> None:
        """Store a run-level value (cohort name, config hash)."""
        self._write("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def claim(self, path: str, kind: str) -> None:
        """Record, *before* creating it, a path (relative to the output folder) that medzsad creates.

        Kinds: ``partial`` (a study folder being written), ``temp`` (a temporary file of an atomic
        write), ``study`` (a published study folder). Only claimed paths are ever removed or replaced.
        """
        sql = "INSERT OR REPLACE INTO owned (path, kind, created_at) VALUES (?, ?, ?)"
        self._write(sql, (path, kind, time.time()))

    def release(self, path: str) -> None:
        """Forget a claimed path (it was renamed away or removed)."""
        self._write("DELETE FROM owned WHERE path = ?", (path,))

    def owned(self) -> dict[str, str]:
        """Claimed paths (relative to the output folder) and their kinds."""
        return {str(p): str(k) for p, k in self._db.execute("SELECT path, kind FROM owned ORDER BY path")}

    def owns_study_folder(self, safe_id: str) -> bool:
        """True when ``studies/<safe_id>`` was published by medzsad (claimed when it was)."""
        claimed = self._db.execute(
            "SELECT 1 FROM owned WHERE path = ? AND kind = 'study'", (f"studies/{safe_id}",)
        ).fetchone()
        return claimed is not None

    def get_meta(self, key: str) -> str | None:
        """A run-level value or ``None``."""
        r = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if r is None else str(r[0])


def _row(r: tuple[Any, ...]) -> LedgerRow:
    return LedgerRow(
        study_id=r[0],
        safe_id=r[1],
        input_hash=r[2],
        config_hash=r[3],
        state=StudyState(r[4]),
        error=r[5],
        attempts=int(r[6]),
        started_at=r[7],
        finished_at=r[8],
        outputs=json.loads(r[9]),
    )

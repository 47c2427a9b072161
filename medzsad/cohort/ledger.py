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

from medzsad.errors import LedgerError, OutputError

__all__ = ["StudyState", "LedgerRow", "Ledger", "LEDGER_FILE"]

#: The run ledger's file in a run folder: its presence marks a folder as one of medzsad's runs.
LEDGER_FILE = "ledger.sqlite"

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
        LedgerError: The file is empty (0 bytes) next to study folders, not a SQLite database, corrupt,
            or not a medzsad ledger; the message names the file and what to do.
        OutputError: The disk is full or the folder not writable.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        _refuse_empty(self.path)
        try:
            self._db = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
        except sqlite3.Error as e:
            raise LedgerError(f"{self.path}: cannot open the run ledger ({e}); {_ACCESS_HINT}") from e
        try:
            self._open()
        except sqlite3.DatabaseError as e:
            self._db.close()
            if _is_full(e):
                raise OutputError(f"{self.path}: {e}; {_FULL_HINT}") from e
            raise LedgerError(f"{self.path}: not a readable medzsad run ledger ({e}); {_CORRUPT_HINT}") from e
        except LedgerError:
            self._db.close()
            raise

    def _open(self) -> None:
        check = self._db.execute("PRAGMA quick_check").fetchone()
        if check is None or check[0] != "ok":
            found = check[0] if check else "no answer"
            raise LedgerError(
                f"{self.path}: the run ledger is corrupt (quick_check: {found}); {_CORRUPT_HINT}"
            )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        had_owned = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='owned'"
        ).fetchone()
        self._db.executescript(_SCHEMA)
        columns = [r[1] for r in self._db.execute("PRAGMA table_info(studies)")]
        if columns != _COLUMNS:
            raise LedgerError(
                f"{self.path}: table 'studies' has columns {columns}, expected {_COLUMNS}: not a medzsad run "
                f"ledger; {_CORRUPT_HINT}"
            )
        if not had_owned:  # a ledger from before ownership records: its done folders are ours
            self._db.execute(
                "INSERT OR IGNORE INTO owned (path, kind, created_at) "
                "SELECT 'studies/' || safe_id, 'study', ? FROM studies WHERE state = 'done'",
                (time.time(),),
            )

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
            hint = _FULL_HINT if _is_full(e) else _ACCESS_HINT
            raise OutputError(f"{self.path}: cannot update the run ledger ({e}); {hint}") from e

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return list(self._db.execute(sql, params))
        except sqlite3.Error as e:
            raise LedgerError(f"{self.path}: cannot read the run ledger ({e}); {_CORRUPT_HINT}") from e

    def get(self, study_id: str) -> LedgerRow | None:
        """The row of a study, or ``None``.

        Raises:
            LedgerError: The ledger cannot be read or the row holds values medzsad never writes.
        """
        rows = self._read("SELECT * FROM studies WHERE study_id = ?", (study_id,))
        return _row(rows[0], self.path) if rows else None

    def rows(self) -> list[LedgerRow]:
        """All rows, ordered by study id (see :meth:`get` for errors)."""
        return [_row(r, self.path) for r in self._read("SELECT * FROM studies ORDER BY study_id")]

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
        return {str(p): str(k) for p, k in self._read("SELECT path, kind FROM owned ORDER BY path")}

    def owns_study_folder(self, safe_id: str) -> bool:
        """True when ``studies/<safe_id>`` was published by medzsad (claimed when it was)."""
        return bool(
            self._read("SELECT 1 FROM owned WHERE path = ? AND kind = 'study'", (f"studies/{safe_id}",))
        )

    def get_meta(self, key: str) -> str | None:
        """A run-level value or ``None``."""
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None


def _row(r: tuple[Any, ...], path: Path) -> LedgerRow:
    try:
        outputs = json.loads(r[9])
        if not isinstance(outputs, dict):
            raise ValueError(f"outputs is a {type(outputs).__name__}, expected an object")
        return LedgerRow(
            study_id=str(r[0]),
            safe_id=str(r[1]),
            input_hash=str(r[2]),
            config_hash=str(r[3]),
            state=StudyState(r[4]),
            error=str(r[5]),
            attempts=int(r[6]),
            started_at=None if r[7] is None else float(r[7]),
            finished_at=None if r[8] is None else float(r[8]),
            outputs=outputs,
        )
    except (ValueError, TypeError) as e:
        raise LedgerError(
            f"{path}: the row of study {str(r[0])[:80]!r} holds values medzsad never writes ({e}); "
            f"{_CORRUPT_HINT}"
        ) from e


def _refuse_empty(path: Path) -> None:
    """A 0-byte ledger next to study folders means the ledger was truncated: refuse, never reset.

    SQLite opens a 0-byte file as a new, empty database; without this check every study would be
    recomputed silently. With no study folder yet there is nothing to lose and the run starts fresh.
    """
    try:
        empty = path.stat().st_size == 0
    except OSError:
        return
    studies = path.parent / "studies"
    folders = [p.name for p in studies.iterdir() if p.is_dir()] if empty and studies.is_dir() else []
    if folders:
        raise LedgerError(
            f"{path}: the run ledger is empty (0 bytes) but {studies} holds {len(folders)} study folder(s): "
            "it was truncated (disk full or a copy that failed), so medzsad cannot tell which studies are "
            f"done. Restore it from a backup, or move {studies} and the ledger aside (or choose another "
            "--out) to recompute every study"
        )


def _is_full(e: BaseException) -> bool:
    return "full" in str(e).lower() or getattr(e, "sqlite_errorcode", None) == 13  # SQLITE_FULL


_ACCESS_HINT = "check that the output folder is writable"
_FULL_HINT = (
    "the disk is full; free space and rerun the same command: studies already done are kept and "
    "only the others run"
)
_CORRUPT_HINT = (
    "it was overwritten or damaged. Restore it from a backup, or move it and the studies/ folder aside "
    "(or choose another --out) to recompute every study"
)
_COLUMNS = [
    "study_id", "safe_id", "input_hash", "config_hash", "state", "error", "attempts", "started_at",
    "finished_at", "outputs",
]  # fmt: skip

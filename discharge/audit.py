"""The audit log: a tamper-evident record of every PDF made or sent, and to whom (issue 13).

When a patient says "nobody told me", or a template turns out wrong, the clinic must be able to
answer: which version of which instructions did this patient get, when, from whom, and how.
Every PDF that ``generate``, ``batch`` and ``email`` make or send appends one record to an
embedded SQLite database.

- **Where**: the clinic settings' ``[audit] path`` (relative to the settings file), else the
  ``DISCHARGE_AUDIT_DB`` environment variable, else ``audit.sqlite3`` in the user's data folder
  (``platformdirs``). ``[audit] enabled = false`` turns the log off, explicitly.
- **Private**: a new database file is created with mode 0600 (SQLite gives its ``-wal`` and
  ``-shm`` files the same mode) and any folder created for it with mode 0700.
- **Many writers**: WAL mode, a busy timeout and ``BEGIN IMMEDIATE`` for every append, so two
  batch processes and a web server writing at the same time queue up instead of failing.
- **Tamper evidence**: records are numbered 1, 2, 3... and each stores
  ``sha256(previous record's hash + its own canonical content)``. ``verify`` recomputes the
  chain and names the first record that was changed, deleted or inserted. A chain cannot show
  that the *newest* records were deleted, or that someone rewrote the whole chain from some
  point on: ``verify`` reports the last hash so it can be written down elsewhere (an anchor).
- **Retention**: ``prune_before`` removes the oldest records and keeps a checkpoint (the id and
  hash the chain continues from), itself vouched for by a ``pruned`` record in the chain.
- **Failure**: a record that cannot be written is an ``AuditError``; callers then do not hand
  the document out (the file just written is removed again).

This module has no click: the ``discharge log`` command is in ``commands/log.py``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from zoneinfo import ZoneInfo

from discharge.clinic_data import create_private, immediate_transaction, keep_private
from discharge.config import Config
from discharge.errors import DischargeError, ExitStatus
from discharge.settings_schema import FilePath, Flag, Section, setting

if TYPE_CHECKING:
    from discharge.document import Document
    from discharge.request import DischargeRequest

AUDIT_ENV = "DISCHARGE_AUDIT_DB"
DB_NAME = "audit.sqlite3"
GENESIS = "0" * 64  # the "previous hash" of record 1
BUSY_TIMEOUT = 30.0  # seconds a writer waits for another one before giving up
SCHEMA_VERSION = 2  # 2: the user column

MADE, PRUNED = "made", "pruned"
# The web form's sign-ins (discharge.web.security): ``user`` is the name given (never the
# password), ``detail`` the address it came from and why it was refused.
SIGNED_IN, SIGNED_OUT, SIGN_IN_FAILED = "signed-in", "signed-out", "sign-in-failed"
# A sheet `discharge listen` removed from its ready folder (the appointment was cancelled).
WITHDRAWN = "withdrawn"
# The web form's local accounts changed (`discharge users`): ``user`` is who changed them (the
# OS account), ``detail`` the account changed (never a password).
USER_ADDED, USER_DISABLED, USER_RESET = "user-added", "user-disabled", "user-reset"
# The log's own actions; each delivery channel (discharge.channels) adds its three names
# (e.g. "emailed", "email-failed", "email-unknown") when it is registered.
ACTIONS = (
    MADE, PRUNED, SIGNED_IN, SIGNED_OUT, SIGN_IN_FAILED, WITHDRAWN, USER_ADDED, USER_DISABLED,
    USER_RESET,
)  # fmt: skip
_actions = set(ACTIONS)

# reportlab writes one "/Type /Page" dictionary per page (and "/Type /Pages" for the tree); it
# uses no object streams, so counting them is exact for our PDFs and takes microseconds.
_PAGE_OBJECT = re.compile(rb"/Type\s*/Page\b")


class AuditError(DischargeError):
    """The audit record could not be written: the document is not handed out."""

    exit_status = ExitStatus.AUDIT


# --- records ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditRecord:
    """One line of the log. Callers fill in what they know; ``AuditLog.record`` the rest."""

    action: str
    procedure: str = ""
    variant: str = ""  # the template's variant ("medical", "sterilisation-check")
    language: str = ""  # the locale the document was written in
    template_id: str = ""
    template_version: str = ""
    pdf_sha256: str = ""  # of the exact bytes written, or attached to the email
    pages: int = 0
    mrn: str = ""
    patient_name: str = ""
    clinician: str = ""
    channel: str = "cli"
    batch_file: str = ""
    batch_row: int = 0  # 0: not from a batch
    email_address: str = ""
    message_id: str = ""
    detail: str = ""  # e.g. for "pruned": what was removed
    user: str = ""  # who: the signed-in nurse on the web form; else the OS account (``acting_as``)
    # Set by AuditLog.record:
    id: int = 0
    time_utc: str = ""
    time_local: str = ""
    operator: str = ""  # the OS account of the program that wrote the record
    workstation: str = ""
    prev_hash: str = ""
    hash: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in COLUMNS}


# Display and export order; every column but ``hash`` is covered by the hash.
COLUMNS = (
    "id", "time_utc", "time_local", "action", "procedure", "variant", "language",
    "template_id", "template_version", "pdf_sha256", "pages", "mrn", "patient_name",
    "clinician", "user", "operator", "workstation", "channel", "batch_file", "batch_row",
    "email_address", "message_id", "detail", "prev_hash", "hash",
)  # fmt: skip
_HASHED = COLUMNS[:-1]
assert set(COLUMNS) == {f.name for f in fields(AuditRecord)}


# What a record's hash covers. Records written before the user column (content "v1") have
# user '' and keep their hashes; a record with a user covers it too ("v2"), so blanking a user
# changes the hash like any other change.
_CONTENT = tuple(name for name in _HASHED if name not in ("prev_hash", "user"))


def content_hash(record: AuditRecord) -> str:
    """sha256 of the previous hash followed by the record's canonical content (fixed JSON)."""
    return _content_hash(vars(record))


def _content_hash(values: Mapping[str, Any]) -> str:
    common = [values[name] for name in _CONTENT]
    versioned = ["v2", *common, values["user"]] if values["user"] else ["v1", *common]
    content = json.dumps(versioned, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((values["prev_hash"] + content).encode("utf-8")).hexdigest()


def register_actions(*names: str) -> None:
    """Accept these action names in new records (a delivery channel's, as it is registered)."""
    _actions.update(names)


def count_pages(pdf: bytes) -> int:
    return len(_PAGE_OBJECT.findall(pdf))


def as_new(record: AuditRecord, **changes: Any) -> AuditRecord:
    """A stored record (a sheet as made) as the start of a new one, e.g. its printing: who did
    it and where are this one's (the log fills them in, with its own id, times and chain)."""
    return replace(record, user="", operator="", workstation="", **changes)


def describe_pdf(
    request: DischargeRequest,
    document: Document,
    pdf: bytes,
    *,
    channel: str = "cli",
    action: str = MADE,
) -> AuditRecord:
    """The record of one made PDF: who it is for, which template, and its exact bytes."""
    return AuditRecord(
        action=action,
        procedure=request.procedure,
        variant=document.variant,
        language=document.locale,
        template_id=document.procedure_id,
        template_version=document.procedure_version,
        pdf_sha256=hashlib.sha256(pdf).hexdigest(),
        pages=count_pages(pdf),
        mrn=request.patient.mrn,
        patient_name=request.patient.name,
        clinician=request.clinician,
        channel=channel,
    )


def as_sent(record: AuditRecord, pdf: bytes, address: str | None, message_id: str) -> AuditRecord:
    """The same document as attached to an email (protected PDFs have other bytes)."""
    return replace(
        record,
        pdf_sha256=hashlib.sha256(pdf).hexdigest(),
        email_address=address or "",
        message_id=message_id,
    )


# --- where the log lives ------------------------------------------------------------------


@dataclass(frozen=True)
class AuditSettings:
    """Whether the log is on, and where it is."""

    enabled: bool
    path: Path
    source: str  # where the path came from, for messages


@dataclass(frozen=True)
class AuditSection(Section):
    """The ``[audit]`` section of the clinic's settings."""

    NAME: ClassVar[str] = "audit"

    enabled: bool = setting(Flag("must be true or false"), default=True)
    # relative to the settings file; None: $DISCHARGE_AUDIT_DB, else the user's data folder
    path: Path | None = setting(FilePath("the audit database file"), default=None)


def audit_settings(config: Config, environ: Mapping[str, str] | None = None) -> AuditSettings:
    """The ``[audit]`` settings, else ``$DISCHARGE_AUDIT_DB``, else the user's data folder."""
    env = os.environ if environ is None else environ
    section = config.section(AuditSection) or AuditSection()
    if section.path is not None:
        return AuditSettings(section.enabled, section.path, f"audit.path in {config.where()}")
    if env.get(AUDIT_ENV):
        path = Path(env[AUDIT_ENV]).expanduser().absolute()  # as meant where it was read
        return AuditSettings(section.enabled, path, f"${AUDIT_ENV}")
    from platformdirs import user_data_dir

    return AuditSettings(section.enabled, Path(user_data_dir("discharge")) / DB_NAME, "default")


@cache
def _operator() -> str:
    import getpass  # here, not at the top: a cold command should not pay for it twice

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment or the password database
        return str(os.getuid()) if hasattr(os, "getuid") else ""


_acting_user: ContextVar[str] = ContextVar("discharge_acting_user", default="")


@contextlib.contextmanager
def acting_as(user: str) -> Iterator[None]:
    """Records written in this context (thread, request) name ``user`` as who did it.

    The web form wraps each request in its signed-in nurse's name. Without it a record names
    the OS account: the command line records who is logged in to the computer, not a name
    typed on the command line, which nobody would have checked.
    """
    token = _acting_user.set(user)
    try:
        yield
    finally:
        _acting_user.reset(token)


def acting_user() -> str:
    return _acting_user.get() or _operator()


@cache
def _workstation() -> str:
    if hasattr(os, "uname"):  # what gethostname() returns, without importing socket (2 ms)
        return os.uname().nodename
    import socket

    return socket.gethostname()


# --- the log ------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,
    time_utc TEXT NOT NULL,
    time_local TEXT NOT NULL,
    action TEXT NOT NULL,
    procedure TEXT NOT NULL,
    variant TEXT NOT NULL,
    language TEXT NOT NULL,
    template_id TEXT NOT NULL,
    template_version TEXT NOT NULL,
    pdf_sha256 TEXT NOT NULL,
    pages INTEGER NOT NULL,
    mrn TEXT NOT NULL,
    patient_name TEXT NOT NULL,
    clinician TEXT NOT NULL,
    user TEXT NOT NULL DEFAULT '',
    operator TEXT NOT NULL,
    workstation TEXT NOT NULL,
    channel TEXT NOT NULL,
    batch_file TEXT NOT NULL,
    batch_row INTEGER NOT NULL,
    email_address TEXT NOT NULL,
    message_id TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_time ON records (time_utc);
CREATE INDEX IF NOT EXISTS records_mrn ON records (mrn);
CREATE INDEX IF NOT EXISTS records_pdf ON records (pdf_sha256);
CREATE TABLE IF NOT EXISTS checkpoints (
    first_id INTEGER PRIMARY KEY,  -- the first record kept after a prune
    prev_hash TEXT NOT NULL,       -- the hash of the record before it (removed)
    time_utc TEXT NOT NULL
);
"""
_INSERT = f"INSERT INTO records ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


@dataclass(frozen=True)
class Verification:
    """What ``verify`` found: intact, or the first problem."""

    ok: bool
    records: int
    first_id: int
    last_id: int
    head: str  # the last record's hash: write it down elsewhere to anchor the chain
    problem: str = ""
    bad_id: int = 0


class AuditLog:
    """An open audit log. ``AuditLog.open(config)``; a disabled log records nothing."""

    def __init__(
        self, path: Path | None, tz: ZoneInfo, conn: sqlite3.Connection | None = None
    ) -> None:
        self.path = path
        self.tz = tz
        self._conn = conn

    @classmethod
    def open(cls, config: Config, *, create: bool = True) -> AuditLog:
        """Open (and if needed create) the clinic's log; a disabled log when it is turned off.

        Raises ConfigError for bad ``[audit]`` settings, AuditError if it cannot be opened.
        """
        settings = audit_settings(config)
        if not settings.enabled:
            return cls(None, config.clinic.tz)
        path = settings.path
        if not create and not path.is_file():
            raise AuditError(f"there is no audit log at {path} (nothing has been recorded there)")
        return cls(path, config.clinic.tz, _connect(path, create=create))

    @property
    def enabled(self) -> bool:
        return self._conn is not None

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    # --- appending ---

    def record(self, entry: AuditRecord) -> AuditRecord:
        """Append one record (its own transaction); return it as stored."""
        stored = self.record_many([entry])
        return stored[0] if stored else entry

    def record_many(self, entries: Iterable[AuditRecord]) -> list[AuditRecord]:
        """Append records in one transaction: all of them are written, or none."""
        entries = list(entries)
        if self._conn is None or not entries:
            return []
        conn = self._conn
        try:
            with immediate_transaction(conn):
                return self._append(conn, entries)
        except sqlite3.Error as exc:
            raise AuditError(f"cannot write the audit log {self.path}: {exc}") from None

    def _append(self, conn: sqlite3.Connection, entries: list[AuditRecord]) -> list[AuditRecord]:
        # Inside BEGIN IMMEDIATE: no other writer can append between reading the last record
        # and writing the next, so the ids stay consecutive and each hash follows the last.
        next_id, prev = _chain_end(conn)
        now = datetime.now(UTC)
        time_utc = now.isoformat(timespec="microseconds")
        time_local = now.astimezone(self.tz).isoformat(timespec="seconds")
        stored = []
        for entry in entries:
            if entry.action not in _actions:
                raise ValueError(f"unknown audit action {entry.action!r}")
            values = dict(vars(entry))
            values.update(
                id=next_id,
                time_utc=time_utc,
                time_local=time_local,
                user=entry.user or acting_user(),
                operator=entry.operator or _operator(),
                workstation=entry.workstation or _workstation(),
                prev_hash=prev,
            )
            values["hash"] = prev = _content_hash(values)
            stored.append(replace(entry, **values))
            next_id += 1
        conn.executemany(_INSERT, [tuple(vars(r)[c] for c in COLUMNS) for r in stored])
        return stored

    def record_or_remove(self, entry: AuditRecord, *files: Path) -> AuditRecord:
        """Record a document just written to ``files``; if that fails, remove them again."""
        try:
            return self.record(entry)
        except AuditError as exc:
            for file in files:
                with contextlib.suppress(OSError):
                    file.unlink()
            kept = "; the file was not kept" if files else ""
            raise AuditError(f"{exc}{kept}") from None

    # --- reading ---

    def query(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        mrn: str | None = None,
        procedure: str | None = None,
        pdf_sha256: str | None = None,
        user: str | None = None,
    ) -> Iterator[AuditRecord]:
        """Records in order; ``since`` inclusive, ``until`` exclusive (aware datetimes)."""
        if self._conn is None:
            return
        where, args = [], []
        if since is not None:
            where.append("time_utc >= ?")
            args.append(_utc_text(since))
        if until is not None:
            where.append("time_utc < ?")
            args.append(_utc_text(until))
        if mrn is not None:
            where.append("mrn = ?")
            args.append(mrn.strip())
        if procedure is not None:
            where.append("procedure = ?")
            args.append(procedure.strip().lower())
        if pdf_sha256 is not None:
            where.append("pdf_sha256 = ?")
            args.append(pdf_sha256.lower())
        if user is not None:
            where.append("lower(user) = ?")
            args.append(user.strip().lower())
        sql = f"SELECT {', '.join(COLUMNS)} FROM records"
        if where:
            sql += " WHERE " + " AND ".join(where)
        try:
            for row in self._conn.execute(sql + " ORDER BY id", args):
                yield AuditRecord(**dict(zip(COLUMNS, row, strict=True)))
        except sqlite3.Error as exc:
            raise AuditError(f"cannot read the audit log {self.path}: {exc}") from None

    def last_made(self, pdf_sha256: str) -> AuditRecord | None:
        """The record of the making of the PDF with this digest (the last, if made twice)."""
        made = [r for r in self.query(pdf_sha256=pdf_sha256) if r.action == MADE]
        return made[-1] if made else None

    def verify(self) -> Verification:
        """Recompute the chain; name the first record that was changed, deleted or inserted."""
        if self._conn is None:
            return Verification(True, 0, 0, 0, "")
        try:
            checkpoint = self._conn.execute(
                "SELECT first_id, prev_hash FROM checkpoints ORDER BY first_id DESC LIMIT 1"
            ).fetchone()
            return _verify_chain(self.query(), checkpoint)
        except sqlite3.Error as exc:
            raise AuditError(f"cannot read the audit log {self.path}: {exc}") from None

    # --- retention ---

    def prune_before(self, cutoff: datetime) -> int:
        """Remove the records made before ``cutoff``; return how many. The chain still verifies.

        Refuses when the chain does not verify now: pruning must not hide a tampered record.
        """
        if self._conn is None:
            return 0
        check = self.verify()
        if not check.ok:
            raise AuditError(f"the audit log does not verify ({check.problem}); nothing pruned")
        conn = self._conn
        try:
            with immediate_transaction(conn):
                last = conn.execute(
                    "SELECT max(id), count(*) FROM records WHERE time_utc < ?",
                    (_utc_text(cutoff),),
                ).fetchone()
                if not last or last[0] is None:
                    return 0
                last_id, removed = int(last[0]), int(last[1])
                (anchor,) = conn.execute(
                    "SELECT hash FROM records WHERE id = ?", (last_id,)
                ).fetchone()
                # A prefix always: records are numbered in the order they were written.
                removed = conn.execute("DELETE FROM records WHERE id <= ?", (last_id,)).rowcount
                now = _utc_text(datetime.now(UTC))
                conn.execute(
                    "INSERT INTO checkpoints (first_id, prev_hash, time_utc) VALUES (?, ?, ?)",
                    (last_id + 1, anchor, now),
                )
                detail = {
                    "before": _utc_text(cutoff),
                    "removed": removed,
                    "first_kept": last_id + 1,
                    "checkpoint": anchor,
                }
                entry = AuditRecord(action=PRUNED, detail=json.dumps(detail, sort_keys=True))
                self._append(conn, [entry])
        except sqlite3.Error as exc:
            raise AuditError(f"cannot prune the audit log {self.path}: {exc}") from None
        return removed


def _verify_chain(
    records: Iterable[AuditRecord], checkpoint: tuple[int, str] | None
) -> Verification:
    expected_id, prev = (int(checkpoint[0]), str(checkpoint[1])) if checkpoint else (1, GENESIS)
    count, first_id, last_id = 0, 0, 0
    vouched = checkpoint is None

    def broken(problem: str, bad_id: int) -> Verification:
        return Verification(False, count, first_id, last_id, prev, problem, bad_id)

    for record in records:
        if record.hash != content_hash(record):
            return broken(f"record #{record.id} was changed: it does not match its hash", record.id)
        if record.id < expected_id:
            return broken(
                f"record #{record.id} was inserted: it is older than the start of the chain "
                f"(#{expected_id})",
                record.id,
            )
        if record.id > expected_id:
            gone = (
                f"record #{expected_id} is"
                if record.id == expected_id + 1
                else f"records #{expected_id} to #{record.id - 1} are"
            )
            return broken(f"{gone} missing (deleted)", expected_id)
        if record.prev_hash != prev:
            what = f"record #{record.id - 1} was changed" if count else "the chain's start changed"
            return broken(
                f"record #{record.id} does not follow the record before it: it was inserted, "
                f"or {what} and its hash recomputed",
                record.id,
            )
        if checkpoint is not None and record.action == PRUNED:
            vouched = vouched or _vouches(record, checkpoint)
        count += 1
        first_id = first_id or record.id
        last_id = record.id
        prev, expected_id = record.hash, record.id + 1
    if not vouched:
        assert checkpoint is not None
        return broken(
            f"records before #{checkpoint[0]} were removed without a 'pruned' record",
            int(checkpoint[0]),
        )
    return Verification(True, count, first_id, last_id, prev)


def _vouches(record: AuditRecord, checkpoint: tuple[int, str]) -> bool:
    try:
        detail = json.loads(record.detail)
    except ValueError:
        return False
    return (
        isinstance(detail, dict)
        and detail.get("first_kept") == checkpoint[0]
        and detail.get("checkpoint") == checkpoint[1]
    )


def _chain_end(conn: sqlite3.Connection) -> tuple[int, str]:
    """The next record's id and the hash it follows."""
    last = conn.execute("SELECT id, hash FROM records ORDER BY id DESC LIMIT 1").fetchone()
    if last is not None:
        return int(last[0]) + 1, str(last[1])
    checkpoint = conn.execute(
        "SELECT first_id, prev_hash FROM checkpoints ORDER BY first_id DESC LIMIT 1"
    ).fetchone()
    return (int(checkpoint[0]), str(checkpoint[1])) if checkpoint else (1, GENESIS)


def _utc_text(moment: datetime) -> str:
    # The stored form: fixed width, so text order is time order.
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _connect(path: Path, *, create: bool) -> sqlite3.Connection:
    try:
        if create:
            if path.is_dir():
                raise AuditError(f"the audit log {path} is a folder, expected a file name")
            create_private(path)
        keep_private(path, what="the audit log", error=AuditError)
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)
    except OSError as exc:
        raise AuditError(f"cannot create the audit log {path}: {exc.strerror}") from None
    except sqlite3.Error as exc:
        raise AuditError(f"cannot open the audit log {path}: {exc}") from None
    try:
        _retry_locked(lambda: conn.execute("PRAGMA journal_mode=WAL"))
        # FULL: each commit is on disk (the WAL is synced) before a document is handed out.
        conn.execute("PRAGMA synchronous=FULL")
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version != SCHEMA_VERSION:
            if version > SCHEMA_VERSION:
                raise AuditError(
                    f"the audit log {path} was written by a newer version of discharge"
                )
            with immediate_transaction(conn):
                # Statement by statement: executescript would commit the transaction first.
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                columns = {row[1] for row in conn.execute("PRAGMA table_info(records)")}
                if "user" not in columns:  # a log written before version 2: records keep ''
                    conn.execute("ALTER TABLE records ADD COLUMN user TEXT NOT NULL DEFAULT ''")
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise AuditError(f"cannot open the audit log {path}: {exc}") from None
    except AuditError:
        conn.close()
        raise
    return conn


def _retry_locked(step: Any) -> None:
    # Changing the journal mode of a brand-new file can meet another process doing the same;
    # the busy timeout covers most of it, this covers the rest.
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            step()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)

"""Who may use the web form: local accounts, and the sessions of those signed in (issue 24).

Both live in one SQLite file, ``users.sqlite3`` in the clinic's data folder
(``discharge.clinic_data``), readable by its owner only (0600; a file others can read is made
private, or refused, as the audit log does):

- **users**: a name, a password hash, enabled or not, when it was made and last signed in.
  Passwords are hashed with scrypt (``hashlib``, memory-hard: 32 MiB per try), a random salt per
  user, the parameters stored with the hash (``scrypt$n=32768,r=8,p=3$salt$hash``) so stronger
  ones can come later without invalidating anyone; compared in constant time.
- **sessions**: one row per browser signed in, under the *hash* of the random id its cookie
  holds (a copy of this file gives no one a working cookie), with the user, when it ends and
  when it was last used. Signing out deletes the row, so a cookie copied before then opens
  nothing afterwards; so do disabling the user and leaving the form unused for the idle time.
  Rows outlive a restart of the server.

``shared`` is the user the shared ward password signs in as; it cannot be a local account.
This module has no click and no Flask: ``discharge users`` is ``commands/users.py``, the
sign-in pages are ``web/security.py``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import re
import secrets
import sqlite3
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from discharge.clinic_data import create_private, data_dir, immediate_transaction, keep_private
from discharge.errors import ConfigError, InputError

DB_NAME = "users.sqlite3"
SHARED_USER = "shared"  # who the shared ward password signs in as
MIN_PASSWORD = 12  # characters; three or four ordinary words are easy to type and long enough
MAX_PASSWORD = 1024  # hashing is costly: no megabyte "passwords"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
# scrypt with N=2^15, r=8, p=3: one of OWASP's recommended settings (32 MiB, ~0.2 s here).
_N, _R, _P = 2**15, 8, 3
_MAXMEM = 256 * 1024 * 1024
_BUSY_TIMEOUT = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    created_utc TEXT NOT NULL,
    last_sign_in_utc TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS sessions (
    id_hash TEXT PRIMARY KEY,      -- sha256 of the cookie's random id, never the id itself
    user TEXT NOT NULL,
    created_utc TEXT NOT NULL,
    expires_utc TEXT NOT NULL,
    last_seen_utc TEXT NOT NULL DEFAULT ''  -- the last request (at most a minute behind)
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user);
"""


@dataclass(frozen=True)
class SessionCheck:
    user: str | None  # who the session is signed in as; None: no session (any more)
    idle_ended: str = ""  # whose session just ended for want of use (said once)


_NOTE_USE_EVERY = timedelta(minutes=1)  # how far behind a session's last use may be noted


class UnknownUser(InputError):
    """No account has that name."""


class DuplicateUser(InputError):
    """An account with that name exists already."""


class BadPassword(InputError):
    """A new password that cannot be used (too short, too long, typed differently twice)."""


@dataclass(frozen=True)
class User:
    name: str
    enabled: bool
    created_utc: str
    last_sign_in_utc: str  # '' if never


# --- names and passwords ------------------------------------------------------------------


def normalise_name(name: str) -> str:
    """A user name as stored: NFC, lower case, surrounding spaces removed."""
    return unicodedata.normalize("NFC", name).strip().lower()


def check_name(name: str) -> str:
    """A new account's name, normalised; InputError if it cannot be one."""
    name = normalise_name(name)
    if name == SHARED_USER:
        raise InputError(
            f"'{SHARED_USER}' is the user the shared ward password signs in as; choose another name"
        )
    if not _NAME.match(name):
        raise InputError(
            f"{name!r} cannot be a user name (expected 1 to 64 letters a-z, digits, '.', '_', "
            "'-' or '@', starting with a letter or digit)"
        )
    return name


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise BadPassword(
            f"the password is too short ({len(password)} characters; at least {MIN_PASSWORD}: "
            "three or four words are easy to type and long enough)"
        )
    if len(password) > MAX_PASSWORD:
        raise BadPassword(f"the password is too long (at most {MAX_PASSWORD} characters)")


def hash_password(password: str) -> str:
    """``scrypt$n=...,r=...,p=...$salt$hash`` (base64): the parameters travel with the hash."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, _N, _R, _P)
    return f"scrypt$n={_N},r={_R},p={_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """True if ``password`` is the one ``stored`` was made from (constant-time comparison)."""
    try:
        scheme, params, salt_text, digest_text = stored.split("$")
        values = dict(item.split("=", 1) for item in params.split(","))
        n, r, p = int(values["n"]), int(values["r"]), int(values["p"])
        salt, digest = _unb64(salt_text), _unb64(digest_text)
    except (ValueError, KeyError):
        return False
    if scheme != "scrypt" or len(password) > MAX_PASSWORD:
        return False
    return hmac.compare_digest(_scrypt(password, salt, n, r, p, len(digest)), digest)


def needs_rehash(stored: str) -> bool:
    return not stored.startswith(f"scrypt$n={_N},r={_R},p={_P}$")


# A real hash of nothing anyone knows: checked for an unknown name too, so the time a wrong
# answer takes does not tell a guesser which names exist.
_NOBODY = f"scrypt$n={_N},r={_R},p={_P}${'A' * 22}${'A' * 43}"


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int = 32) -> bytes:
    secret = unicodedata.normalize("NFC", password).encode("utf-8")
    return hashlib.scrypt(secret, salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=length)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _now() -> datetime:
    return datetime.now(UTC)


def _text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _session_key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


# --- the store ------------------------------------------------------------------------------


def accounts_path() -> Path:
    return data_dir() / DB_NAME


class Accounts:
    """The clinic's accounts and sessions. Each call opens its own short connection, so one
    object serves every thread of the web server."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or accounts_path()
        self._ready = False

    @contextlib.contextmanager
    def _db(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        try:
            if not self._ready:
                create_private(self.path)
            keep_private(self.path, what="the accounts file", error=ConfigError)
            conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT, isolation_level=None)
        except OSError as exc:
            raise ConfigError(
                f"cannot keep the accounts in {self.path}: {exc.strerror or exc} (set "
                "DISCHARGE_DATA_DIR to a folder this user can write)"
            ) from None
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the accounts file {self.path}: {exc}") from None
        try:
            if not self._ready:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA)
                columns = {row[1] for row in conn.execute("PRAGMA table_info(sessions)")}
                if "last_seen_utc" not in columns:  # an accounts file from before idle times
                    conn.execute(
                        "ALTER TABLE sessions ADD COLUMN last_seen_utc TEXT NOT NULL DEFAULT ''"
                    )
                self._ready = True
            # A change is one write transaction, taken at once; a read is one SELECT (its own
            # consistent snapshot).
            with immediate_transaction(conn) if write else contextlib.nullcontext():
                yield conn
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot use the accounts file {self.path}: {exc}") from None
        finally:
            conn.close()

    # --- accounts (discharge users ...) ---

    def add(self, name: str, password: str) -> str:
        """A new, enabled account; its stored name."""
        name = check_name(name)
        check_password(password)
        hashed = hash_password(password)  # before the transaction: it takes a moment
        with self._db() as conn:
            if conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise DuplicateUser(f"there is already a user {name!r} (see: discharge users list)")
            conn.execute(
                "INSERT INTO users (name, password_hash, enabled, created_utc) VALUES (?, ?, 1, ?)",
                (name, hashed, _text(_now())),
            )
        return name

    def reset(self, name: str, password: str) -> str:
        """A new password (the account is enabled again); her sessions end."""
        name = normalise_name(name)
        check_password(password)
        hashed = hash_password(password)
        with self._db() as conn:
            self._known(conn, name)
            conn.execute(
                "UPDATE users SET password_hash = ?, enabled = 1 WHERE name = ?", (hashed, name)
            )
            conn.execute("DELETE FROM sessions WHERE user = ?", (name,))
        return name

    def disable(self, name: str) -> int:
        """The account can no longer sign in; her sessions end now. How many ended."""
        name = normalise_name(name)
        with self._db() as conn:
            self._known(conn, name)
            conn.execute("UPDATE users SET enabled = 0 WHERE name = ?", (name,))
            return conn.execute("DELETE FROM sessions WHERE user = ?", (name,)).rowcount

    def users(self) -> list[User]:
        with self._db(write=False) as conn:
            rows = conn.execute(
                "SELECT name, enabled, created_utc, last_sign_in_utc FROM users ORDER BY name"
            ).fetchall()
        return [User(str(n), bool(e), str(c), str(s)) for n, e, c, s in rows]

    @staticmethod
    def _known(conn: sqlite3.Connection, name: str) -> None:
        if not conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
            raise UnknownUser(f"there is no user {name!r} (see: discharge users list)")

    # --- signing in ---

    def authenticate(self, name: str, password: str) -> str | None:
        """The stored name if ``password`` is right for an enabled account, else None."""
        name = normalise_name(name)
        with self._db(write=False) as conn:
            row = conn.execute(
                "SELECT password_hash, enabled FROM users WHERE name = ?", (name,)
            ).fetchone()
        stored = str(row[0]) if row else _NOBODY
        right = verify_password(password, stored)  # for unknown names too: the same time
        if not (row and right and row[1]):
            return None
        if needs_rehash(stored):
            with self._db() as conn:
                conn.execute(
                    "UPDATE users SET password_hash = ? WHERE name = ? AND password_hash = ?",
                    (hash_password(password), name, stored),
                )
        return name

    def start_session(self, user: str, hours: float) -> str:
        """A new session for ``user``: the random id for the cookie (stored only hashed)."""
        session_id = secrets.token_urlsafe(32)
        now = _now()
        with self._db() as conn:
            conn.execute("DELETE FROM sessions WHERE expires_utc <= ?", (_text(now),))
            conn.execute(
                "INSERT INTO sessions (id_hash, user, created_utc, expires_utc, last_seen_utc) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    _session_key(session_id),
                    user,
                    _text(now),
                    _text(now + timedelta(hours=hours)),
                    _text(now),
                ),
            )
            if user != SHARED_USER:
                conn.execute(
                    "UPDATE users SET last_sign_in_utc = ? WHERE name = ?", (_text(now), user)
                )
        return session_id

    def check_session(self, session_id: str, *, idle: timedelta) -> SessionCheck:
        """Who the session is signed in as, noting that it is in use; it ends when its time is
        up, its user is disabled, or it went unused for ``idle`` (which it says)."""
        with self._db(write=False) as conn:
            row = conn.execute(
                "SELECT s.user, s.expires_utc, s.created_utc, s.last_seen_utc, u.enabled "
                "FROM sessions s LEFT JOIN users u ON u.name = s.user WHERE s.id_hash = ?",
                (_session_key(session_id),),
            ).fetchone()
        if row is None:
            return SessionCheck(None)
        user, expires, created, seen_text, enabled = row
        now = _now()
        seen = datetime.fromisoformat(seen_text or created)
        if expires <= _text(now) or (user != SHARED_USER and not enabled):
            self.end_session(session_id)
            return SessionCheck(None)
        if now - seen >= idle:
            # Said once: of two requests at the same moment, one ends it.
            ended_now = self.end_session(session_id)
            return SessionCheck(None, str(user) if ended_now else "")
        # Noted at most once a minute (more often for a short idle time): a write per request
        # would make every page wait on the accounts file.
        if now - seen >= min(_NOTE_USE_EVERY, idle / 4):
            with self._db() as conn:
                conn.execute(
                    "UPDATE sessions SET last_seen_utc = ? WHERE id_hash = ?",
                    (_text(now), _session_key(session_id)),
                )
        return SessionCheck(str(user))

    def end_session(self, session_id: str) -> bool:
        """End the session; False if it had ended already."""
        with self._db() as conn:
            gone = conn.execute(
                "DELETE FROM sessions WHERE id_hash = ?", (_session_key(session_id),)
            ).rowcount
        return gone > 0

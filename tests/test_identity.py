"""Who did it: local accounts, the three ways to sign in, sessions held on the server, and the
``user`` on every audit record (issue 24).

The accounts are real scrypt hashes in a real SQLite file; the sessions are checked against the
real server (`discharge serve` behind waitress) with a real HTTP client, and the nurses sign in
in real Chromium.
"""

from __future__ import annotations

import getpass
import hashlib
import http.client
import json
import os
import pty
import select
import sqlite3
import stat
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from discharge.accounts import (
    MIN_PASSWORD,
    Accounts,
    hash_password,
    needs_rehash,
    verify_password,
)
from discharge.audit import AuditLog, AuditRecord, acting_as
from discharge.config import Config, parse_config
from discharge.errors import ConfigError
from discharge.web import create_app
from discharge.web.settings import ServeSettings, check_bind, load_serve_settings
from tests.helpers import audit_rows, axe_violations, run_discharge
from tests.test_web import (  # noqa: F401  (browser_type_launch_args: Debian's Chromium)
    FORM,
    Server,
    browser_type_launch_args,
    fill_form,
    pdf_text,
    start_server,
    token,
    upload,
    wait_for_batch,
)

ALICE_PW = "alice's ward three passphrase"
BOB_PW = "bob likes long walks on the ward"


def add_user(name: str, password: str) -> None:
    """As `discharge users add` does (tested through the command below), without its start-up."""
    Accounts().add(name, password)


def add_user_by_command(name: str, password: str) -> None:
    result = run_discharge("users", "add", name, "--password-stdin", stdin=password + "\n")
    assert result.code == 0, result.stderr


# --- passwords ------------------------------------------------------------------------------


def test_a_password_hash_is_scrypt_with_its_parameters_and_a_salt_of_its_own() -> None:
    first, second = hash_password(ALICE_PW), hash_password(ALICE_PW)
    assert first.startswith("scrypt$n=32768,r=8,p=3$") and ALICE_PW not in first
    assert first != second  # a random salt per hash
    assert verify_password(ALICE_PW, first) and verify_password(ALICE_PW, second)
    assert not verify_password(ALICE_PW + " ", first)
    assert not verify_password(ALICE_PW, "not a hash") and not needs_rehash(first)
    # Older (weaker) parameters still verify, from the hash itself, and are due for a rehash.
    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(ALICE_PW.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    import base64

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode().rstrip("=")

    old = f"scrypt$n=16384,r=8,p=1${b64(salt)}${b64(digest)}"
    assert verify_password(ALICE_PW, old) and needs_rehash(old)


def test_the_accounts_file_is_private_and_a_readable_one_is_made_private(
    clinic_data_dir: Path,
) -> None:
    add_user_by_command("alice", ALICE_PW)
    path = clinic_data_dir / "users.sqlite3"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ALICE_PW.encode() not in path.read_bytes()
    path.chmod(0o644)  # restored from a backup, say
    assert run_discharge("users", "list").code == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# --- discharge users ------------------------------------------------------------------------


def test_users_add_list_disable_reset_from_the_command_line(clinic_data_dir: Path) -> None:
    add_user_by_command("Alice", ALICE_PW)  # names are kept in lower case
    listed = run_discharge("users", "list")
    assert listed.code == 0
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["name", "enabled", "created", "last", "sign-in"]
    assert lines[1].split()[:2] == ["alice", "yes"] and lines[1].endswith("never")
    assert "scrypt" not in listed.stdout and ALICE_PW not in listed.stdout
    disabled = run_discharge("users", "disable", "alice")
    assert disabled.code == 0 and "disabled user alice" in disabled.stdout
    assert run_discharge("users", "list").stdout.splitlines()[1].split()[:2] == ["alice", "no"]
    assert Accounts().authenticate("alice", ALICE_PW) is None  # disabled: the right password
    reset = run_discharge("users", "reset", "alice", "--password-stdin", stdin=BOB_PW + "\n")
    assert reset.code == 0, reset.stderr
    assert Accounts().authenticate("ALICE", BOB_PW) == "alice"  # enabled again, new password
    assert Accounts().authenticate("alice", ALICE_PW) is None


def test_account_changes_are_audit_records_without_passwords(audit_db: Path) -> None:
    add_user_by_command("Alice", ALICE_PW)
    assert run_discharge("users", "disable", "alice").code == 0
    reset = run_discharge("users", "reset", "alice", "--password-stdin", stdin=BOB_PW + "\n")
    assert reset.code == 0, reset.stderr
    rows = audit_rows(audit_db)
    assert [(r["action"], json.loads(str(r["detail"]))["account"]) for r in rows] == [
        ("user-added", "alice"), ("user-disabled", "alice"), ("user-reset", "alice"),
    ]  # fmt: skip
    assert {r["user"] for r in rows} == {getpass.getuser()}  # who changed them: the OS account
    assert json.loads(str(rows[1]["detail"]))["sessions_ended"] == 0
    for secret in (ALICE_PW, BOB_PW, "scrypt"):
        assert all(secret not in str(value) for r in rows for value in r.values())
    assert run_discharge("log", "--verify").code == 0


def test_account_changes_go_to_the_audit_log_the_clinic_settings_name(
    tmp_path: Path, audit_db: Path
) -> None:
    """`discharge serve --config FILE` records sign-ins in FILE's [audit] log: the account
    changes made for that clinic go there too, and a log that cannot be used changes nothing."""
    clinic_log = tmp_path / "clinic-audit.sqlite3"
    settings = tmp_path / "clinic.toml"
    settings.write_text(f"[audit]\npath = {str(clinic_log)!r}\n", encoding="utf-8")
    added = run_discharge("users", "add", "alice", "--password-stdin", "--config", settings,
                          stdin=ALICE_PW + "\n")  # fmt: skip
    assert added.code == 0, added.stderr
    assert [r["action"] for r in audit_rows(clinic_log)] == ["user-added"]
    assert not audit_db.exists() or audit_rows(audit_db) == []
    (tmp_path / "a-folder").mkdir()
    settings.write_text(f"[audit]\npath = {str(tmp_path / 'a-folder')!r}\n", encoding="utf-8")
    refused = run_discharge("users", "disable", "alice", "--config", settings)
    assert refused.code != 0 and "is a folder" in refused.stderr
    assert run_discharge("users", "list").stdout.splitlines()[1].split()[:2] == ["alice", "yes"]


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["add", "alice", "--password-stdin"], ALICE_PW, "already a user 'alice'"),
        (["add", "bob", "--password-stdin"], "short\n", f"at least {MIN_PASSWORD}"),
        (["add", "shared", "--password-stdin"], BOB_PW, "shared ward password"),
        (["add", "bob smith", "--password-stdin"], BOB_PW, "cannot be a user name"),
        (["disable", "carol"], None, "no user 'carol'"),
        (["reset", "carol", "--password-stdin"], BOB_PW, "no user 'carol'"),
    ],
)
def test_users_bad_input_exits_2_with_one_line(
    args: list[str], stdin: str | None, message: str
) -> None:
    add_user("alice", ALICE_PW)
    result = run_discharge("users", *args, stdin=stdin)
    assert result.code == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def _on_a_terminal(*args: str, answers: list[str]) -> tuple[int, str]:
    """Run `discharge ARGS` on a pseudo-terminal, as a person at a keyboard; answer each
    prompt in turn. The exit code, and everything the terminal showed."""
    env = {k: v for k, v in os.environ.items() if k != "DISCHARGE_DEBUG"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: the command, with the terminal as its own
        os.execve(sys.executable, [sys.executable, "-m", "discharge", *args], env)
    shown = b""
    deadline = time.monotonic() + 60
    pending = list(answers)
    answered = 0
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # the command ended and closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
                # A new prompt, whole: click writes "Password:", then getpass writes the " "
                # after it has set the terminal up (and flushed what was typed before then).
                if pending and shown[answered:].endswith(b": "):
                    os.write(fd, pending.pop(0).encode() + b"\n")
                    answered = len(shown)
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")


def test_users_add_asks_twice_without_echo_and_refuses_passwords_that_differ() -> None:
    code, shown = _on_a_terminal("users", "add", "bob", answers=[BOB_PW, BOB_PW + "x"])
    assert code == 2 and "the two passwords differ" in shown
    assert "Password again:" in shown and BOB_PW not in shown  # typed, never shown
    code, shown = _on_a_terminal("users", "add", "bob", answers=[BOB_PW, BOB_PW])
    assert code == 0 and "added user bob" in shown and BOB_PW not in shown
    assert Accounts().authenticate("bob", BOB_PW) == "bob"


# --- settings -------------------------------------------------------------------------------


def test_sign_in_settings_report_every_problem_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"serve": {"sign_in": "kerberos", "user_header": "X Remote"}})
    message = str(caught.value)
    assert "[serve] sign_in: is 'kerberos', expected password, accounts or proxy" in message
    assert "[serve] user_header: must be the name of an HTTP header" in message
    with pytest.raises(ConfigError, match=r"\[serve\] sign_in: \"proxy\" needs tls_proxy"):
        parse_config({"serve": {"user_header": "X-Remote-User"}})
    with pytest.raises(ConfigError) as caught:
        parse_config({"serve": {"sign_in": "accounts", "password_env": "PW",
                                "user_header": "X-Remote-User"}})  # fmt: skip
    message = str(caught.value)
    assert '[serve] password_env: is only read with sign_in = "password"' in message
    assert '[serve] user_header: is only read with sign_in = "proxy"' in message
    with pytest.raises(ConfigError, match='"proxy" needs user_header'):
        parse_config({"serve": {"sign_in": "proxy", "tls_proxy": "10.0.0.2"}})
    settings = load_serve_settings(
        parse_config({"serve": {"user_header": "X-Remote-User", "tls_proxy": "10.0.0.2"}})
    )
    assert (settings.way, settings.user_header) == ("proxy", "X-Remote-User")
    check_bind("0.0.0.0", settings)  # a sign-in and a TLS proxy: may listen on the network
    check_bind("0.0.0.0", ServeSettings(sign_in="accounts", tls_proxy="10.0.0.2"))
    with pytest.raises(ConfigError, match="password_env"):
        check_bind("0.0.0.0", ServeSettings(tls_proxy="10.0.0.2"))


# --- the audit log: a user on every record; old logs still verify ----------------------------


def _old_log(path: Path) -> None:
    """An audit log as version 1 wrote it: no user column, hashes of the v1 content."""
    columns = [
        "id",
        "time_utc",
        "time_local",
        "action",
        "procedure",
        "variant",
        "language",
        "template_id",
        "template_version",
        "pdf_sha256",
        "pages",
        "mrn",
        "patient_name",
        "clinician",
        "operator",
        "workstation",
        "channel",
        "batch_file",
        "batch_row",
        "email_address",
        "message_id",
        "detail",
        "prev_hash",
        "hash",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    types = {"id": "INTEGER PRIMARY KEY", "pages": "INTEGER NOT NULL", "batch_row": "INTEGER"}
    conn.execute(
        "CREATE TABLE records ("
        + ", ".join(f"{c} {types.get(c, 'TEXT NOT NULL')}" for c in columns)
        + ")"
    )
    conn.execute(
        "CREATE TABLE checkpoints (first_id INTEGER PRIMARY KEY, prev_hash TEXT, time_utc TEXT)"
    )
    prev = "0" * 64
    for number, patient in ((1, "Ada Old"), (2, "Bea Older")):
        values = dict.fromkeys(columns, "")
        values.update(id=number, time_utc=f"2025-01-0{number}T10:00:00.000000+00:00",
                      time_local=f"2025-01-0{number}T10:00:00+00:00", action="made",
                      procedure="hsg", pages=2, batch_row=0, patient_name=patient, mrn=f"M{number}",
                      operator="ward3", workstation="desk", channel="cli")  # fmt: skip
        content = [values[c] for c in columns if c not in ("prev_hash", "hash")]
        text = json.dumps(["v1", *content], ensure_ascii=False, separators=(",", ":"))
        values["prev_hash"] = prev
        values["hash"] = prev = hashlib.sha256((prev + text).encode()).hexdigest()
        conn.execute(
            f"INSERT INTO records VALUES ({', '.join('?' * len(columns))})",
            [values[c] for c in columns],
        )
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()
    path.chmod(0o600)


def test_an_old_log_without_users_reads_verifies_and_takes_new_records(audit_db: Path) -> None:
    _old_log(audit_db)
    assert run_discharge("log", "--verify").code == 0
    with AuditLog.open(Config()) as audit:
        with acting_as("alice"):
            audit.record(AuditRecord(action="made", procedure="hsg", patient_name="Cy New"))
        audit.record(AuditRecord(action="made", procedure="hsg", patient_name="Di Cli"))
        assert audit.verify().ok
        assert [r.user for r in audit.query()] == ["", "", "alice", getpass.getuser()]
    verified = run_discharge("log", "--verify")
    assert verified.code == 0 and "intact, 4 records" in verified.stdout
    # A user is covered by the hash: taking her name off a record is found.
    with sqlite3.connect(audit_db) as conn:
        conn.execute("UPDATE records SET user = '' WHERE id = 3")
    broken = run_discharge("log", "--verify")
    assert broken.code == 1 and "record #3 was changed" in broken.stderr


def test_log_filters_by_user_and_shows_the_user_in_every_format(audit_db: Path) -> None:
    with AuditLog.open(Config()) as audit:
        for user, patient in (("alice", "Ann Patient"), ("bob", "Ben Patient")):
            with acting_as(user):
                audit.record(AuditRecord(action="made", procedure="hsg", patient_name=patient))
    table = run_discharge("log", "--user", "Alice")
    assert table.code == 0
    header, *rows = table.stdout.splitlines()
    assert "user" in header.split() and len(rows) == 1
    assert "alice" in rows[0].split() and "Ann Patient" in rows[0]
    as_json = json.loads(run_discharge("log", "--user", "bob", "--format", "json").stdout)
    assert [(r["user"], r["patient_name"]) for r in as_json] == [("bob", "Ben Patient")]
    as_csv = run_discharge("log", "--format", "csv").stdout.splitlines()
    assert "user" in as_csv[0].split(",") and len(as_csv) == 3
    nobody = run_discharge("log", "--user", "carol")
    assert nobody.code == 0 and nobody.stdout == "" and "no records" in nobody.stderr
    assert run_discharge("log", "--user", "bob", "--verify").code == 2  # a filter, not an action


def test_the_command_line_records_the_os_account(audit_db: Path, tmp_path: Path) -> None:
    result = run_discharge("generate", "--procedure", "hsg", "--date", "2026-11-21",
                           "--patient", "Ada", "--output", tmp_path / "a.pdf")  # fmt: skip
    assert result.code == 0, result.stderr
    (record,) = audit_rows(audit_db)
    assert record["user"] == record["operator"] == getpass.getuser()


# --- the web form, through the test client ---------------------------------------------------


def _app(settings: ServeSettings, password: str | None = None):  # type: ignore[no-untyped-def]
    return create_app(Config(), settings, password=password, overrides={"TESTING": True})


def _sign_in(client, name: str, password: str):  # type: ignore[no-untyped-def]
    page = client.get("/login").get_data(as_text=True)
    return client.post("/login", data={"name": name, "password": password,
                                       "csrf_token": token(page)})  # fmt: skip


def test_each_nurse_signs_in_as_herself_and_her_sheet_says_so(audit_db: Path) -> None:
    add_user("alice", ALICE_PW)
    add_user("bob", BOB_PW)
    app = _app(ServeSettings(sign_in="accounts"))
    for name, password, patient in (("alice", ALICE_PW, "Ann Patient"),
                                    ("bob", BOB_PW, "Ben Patient")):  # fmt: skip
        client = app.test_client()
        assert client.get("/").headers["Location"].endswith("/login")
        assert _sign_in(client, name, password).status_code == 302
        page = client.get("/").get_data(as_text=True)
        assert f"Signed in as {name}" in page
        made = client.post("/", data={**FORM, "patient": patient, "csrf_token": token(page)})
        assert made.mimetype == "application/pdf"
    made = {r["patient_name"]: r["user"] for r in audit_rows(audit_db) if r["action"] == "made"}
    assert made == {"Ann Patient": "alice", "Ben Patient": "bob"}
    signed_in = [r["user"] for r in audit_rows(audit_db) if r["action"] == "signed-in"]
    assert signed_in == ["alice", "bob"]


def test_a_nurses_schedule_is_recorded_under_her_name(
    audit_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The schedule is made by its own worker process: her name goes with it. (Its job folder
    # in this test's own temporary folder: a `discharge serve` starting elsewhere on this
    # computer removes the job folders of processes it does not take for a server.)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    add_user("alice", ALICE_PW)
    app = _app(ServeSettings(sign_in="accounts"))
    try:
        client = app.test_client()
        _sign_in(client, "alice", ALICE_PW)
        started = upload(client, b"patient_name,procedure,date\nAda Example,hsg,2026-11-23\n")
        assert "1 PDF made" in wait_for_batch(client, started.headers["Location"])
    finally:
        app.extensions["discharge.jobs"].close()
    made = [(r["channel"], r["user"]) for r in audit_rows(audit_db) if r["action"] == "made"]
    assert made == [("batch", "alice")]


def test_a_failed_sign_in_is_recorded_with_the_name_and_address_never_the_password(
    audit_db: Path,
) -> None:
    add_user("alice", ALICE_PW)
    client = _app(ServeSettings(sign_in="accounts")).test_client()
    wrong = _sign_in(client, "alice", "guess number one")
    assert wrong.status_code == 401 and "do not match an account" in wrong.get_data(as_text=True)
    assert _sign_in(client, "mallory", ALICE_PW).status_code == 401  # no such user
    assert client.get("/").status_code == 302
    failures = [r for r in audit_rows(audit_db) if r["action"] == "sign-in-failed"]
    assert [r["user"] for r in failures] == ["alice", "mallory"]
    assert json.loads(str(failures[0]["detail"]))["address"] == "127.0.0.1"
    stored = audit_db.read_bytes() + b"".join(p.read_bytes() for p in audit_db.parent.glob("*-wal"))
    assert b"guess number one" not in stored and ALICE_PW.encode() not in stored


def test_the_shared_password_signs_in_as_user_shared(audit_db: Path) -> None:
    client = _app(ServeSettings(password_env="PW"), password="ward three door").test_client()
    page = client.get("/login").get_data(as_text=True)
    assert 'name="name"' not in page  # one password for the ward: no name asked
    right = client.post("/login", data={"password": "ward three door", "csrf_token": token(page)})
    assert right.status_code == 302
    page = client.get("/").get_data(as_text=True)
    assert client.post("/", data={**FORM, "csrf_token": token(page)}).status_code == 200
    assert {r["action"]: r["user"] for r in audit_rows(audit_db)} == {
        "signed-in": "shared", "made": "shared",
    }  # fmt: skip


def test_the_proxys_user_header_is_trusted_from_its_address_only(audit_db: Path) -> None:
    app = _app(ServeSettings(tls_proxy="10.0.0.2", user_header="X-Remote-User", sign_in="proxy"))
    client = app.test_client()
    proxied = {"REMOTE_ADDR": "10.0.0.2"}
    headers = {"X-Remote-User": "Carol", "X-Forwarded-For": "10.1.2.3"}
    page = client.get("/", headers=headers, environ_base=proxied)
    assert page.status_code == 200 and "Signed in as carol" in page.get_data(as_text=True)
    data = {**FORM, "csrf_token": token(page.get_data(as_text=True))}
    made = client.post("/", data=data, headers=headers, environ_base=proxied)
    assert made.mimetype == "application/pdf"
    # The same header from anywhere else is refused, and recorded; no header from the proxy too.
    forged = client.get("/", headers={"X-Remote-User": "carol", "X-Forwarded-For": "10.0.0.2"},
                        environ_base={"REMOTE_ADDR": "10.9.9.9"})  # fmt: skip
    assert forged.status_code == 403 and "sign-on only" in forged.get_data(as_text=True)
    assert client.get("/", environ_base={"REMOTE_ADDR": "10.9.9.9"}).status_code == 403
    assert client.get("/", environ_base=proxied).status_code == 403  # the proxy named no one
    rows = audit_rows(audit_db)
    assert [(r["action"], r["user"]) for r in rows] == [("made", "carol"),
                                                        ("sign-in-failed", "carol")]  # fmt: skip
    assert json.loads(str(rows[1]["detail"]))["address"] == "10.9.9.9"  # its X-Forwarded-For: not


# --- the real server: sessions held on it --------------------------------------------------


def _settings_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "clinic.toml"
    path.write_text(f"[serve]\n{text}\n", encoding="utf-8")
    return path


def _env(clinic_data_dir: Path, audit_db: Path) -> dict[str, str]:
    return {"DISCHARGE_DATA_DIR": str(clinic_data_dir), "DISCHARGE_AUDIT_DB": str(audit_db)}


class Browser:
    """A real HTTP client with its own cookie jar (a nurse's browser, or a copy of it)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.jar = urllib.request.HTTPCookieProcessor()
        self.opener = urllib.request.build_opener(self.jar, _NoRedirect())

    def get(self, path: str = "") -> tuple[int, str, str]:
        return self._open(urllib.request.Request(self.url + path))

    def post(self, path: str, **form: str) -> tuple[int, str, str]:
        body = urllib.parse.urlencode(form).encode()
        return self._open(urllib.request.Request(self.url + path, data=body))

    def _open(self, request: urllib.request.Request) -> tuple[int, str, str]:
        try:
            with self.opener.open(request, timeout=30) as answer:
                return answer.status, answer.headers.get("Location", ""), answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("Location", ""), exc.read().decode()

    def sign_in(self, name: str, password: str) -> None:
        _, _, page = self.get("login")
        status, location, _ = self.post("login", name=name, password=password,
                                        csrf_token=token(page))  # fmt: skip
        assert status == 302 and not location.endswith("/login"), status

    def copy(self) -> Browser:
        other = Browser(self.url)
        for cookie in self.jar.cookiejar:
            other.jar.cookiejar.set_cookie(cookie)
        return other


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # see the redirect itself: where a refused session is sent


def _signed_out(answer: tuple[int, str, str]) -> bool:
    return answer[0] == 302 and answer[1].endswith("/login")


@dataclass
class AccountsServer:
    """One real server for the tests below, with its own data folder and audit log; each test
    signs in as a nurse of its own, so they do not see each other's sessions or records."""

    server: Server
    data: Path
    audit: Path

    @property
    def url(self) -> str:
        return self.server.url

    def records(self, *users: str) -> list[tuple[object, ...]]:
        rows = audit_rows(self.audit)
        return [(r["action"], r["user"], r["patient_name"]) for r in rows if r["user"] in users]

    def sessions(self, user: str) -> int:
        with sqlite3.connect(self.data / "users.sqlite3") as conn:
            query = "SELECT count(*) FROM sessions WHERE user = ?"
            return int(conn.execute(query, (user,)).fetchone()[0])


NURSES = {"olive": "olive's ward three passphrase", "hana": "hana's ward three passphrase",
          "dora": "dora's ward three passphrase", "alice": ALICE_PW, "bob": BOB_PW}  # fmt: skip


@pytest.fixture(scope="module")
def accounts_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AccountsServer]:
    folder = tmp_path_factory.mktemp("accounts-server")
    data, audit = folder / "data", folder / "audit" / "audit.sqlite3"
    accounts = Accounts(data / "users.sqlite3")
    for name, password in NURSES.items():
        accounts.add(name, password)
    settings = _settings_file(folder, 'sign_in = "accounts"')
    running = start_server("--workers", "0", "--config", str(settings),
                           extra_env=_env(data, audit))  # fmt: skip
    yield AccountsServer(running, data, audit)
    code, output = running.stop()
    assert code == 0, output
    for password in NURSES.values():  # nothing typed reaches the server's output
        assert password not in output


def test_sign_out_ends_the_session_a_cookie_copied_before_opens_nothing_after(
    accounts_server: AccountsServer,
) -> None:
    nurse = Browser(accounts_server.url)
    nurse.sign_in("olive", NURSES["olive"])
    thief = nurse.copy()  # the cookie, copied while she is signed in
    status, _, page = thief.get()
    assert status == 200 and "Signed in as olive" in page  # the copy works until she signs out
    _, _, page = nurse.get()
    assert _signed_out(nurse.post("logout", csrf_token=token(page)))
    assert _signed_out(thief.get())  # refused after it
    assert _signed_out(thief.post("", **FORM, csrf_token=token(page)))
    assert _signed_out(thief.get("batch/"))
    assert accounts_server.sessions("olive") == 0
    assert accounts_server.records("olive") == [("signed-in", "olive", ""),
                                                ("signed-out", "olive", "")]  # fmt: skip


def test_the_server_keeps_only_a_hash_of_the_session_id(
    accounts_server: AccountsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    nurse = Browser(accounts_server.url)
    nurse.sign_in("hana", NURSES["hana"])
    (cookie,) = [c.value for c in nurse.jar.cookiejar if c.name == "discharge_session"]
    # The cookie is signed with a key derived from the clinic's secret (the server's folder).
    monkeypatch.setenv("DISCHARGE_DATA_DIR", str(accounts_server.data))
    app = _app(ServeSettings(sign_in="accounts"))
    session_id = app.session_interface.get_signing_serializer(app).loads(cookie)["sid"]  # type: ignore[attr-defined]
    stored = b"".join(p.read_bytes() for p in accounts_server.data.glob("users.sqlite3*"))
    assert session_id.encode() not in stored
    assert hashlib.sha256(session_id.encode()).hexdigest().encode() in stored


def test_a_disabled_user_cannot_sign_in_and_her_open_sessions_end(
    accounts_server: AccountsServer,
) -> None:
    nurse = Browser(accounts_server.url)
    nurse.sign_in("dora", NURSES["dora"])
    assert nurse.get()[0] == 200
    result = run_discharge("users", "disable", "dora",
                           env={"DISCHARGE_DATA_DIR": str(accounts_server.data)})  # fmt: skip
    assert result.code == 0 and "1 open session(s) ended" in result.stdout
    assert _signed_out(nurse.get())
    again = Browser(accounts_server.url)
    _, _, page = again.get("login")
    status, _, page = again.post("login", name="dora", password=NURSES["dora"],
                                 csrf_token=token(page))  # fmt: skip
    assert status == 401 and "do not match an account" in page


def test_a_session_survives_a_restart_and_ends_after_session_hours(
    tmp_path: Path, clinic_data_dir: Path, audit_db: Path
) -> None:
    add_user("alice", ALICE_PW)
    settings = _settings_file(tmp_path, 'sign_in = "accounts"\nsession_hours = 2')
    env = _env(clinic_data_dir, audit_db)
    running = start_server("--workers", "0", "--config", str(settings), extra_env=env)
    try:
        nurse = Browser(running.url)
        nurse.sign_in("alice", ALICE_PW)
        assert nurse.get()[0] == 200
        running.stop()
        running = start_server("--workers", "0", "--config", str(settings), extra_env=env)
        nurse.url = running.url  # another port, the same cookie (cookies ignore the port)
        assert nurse.get()[0] == 200  # still signed in after the restart
        accounts = clinic_data_dir / "users.sqlite3"
        with sqlite3.connect(accounts) as conn:
            ((created, expires),) = conn.execute("SELECT created_utc, expires_utc FROM sessions")
            length = datetime.fromisoformat(expires) - datetime.fromisoformat(created)
            assert length == timedelta(hours=2)  # session_hours
            # Two hours later (the clock moved on, rather than the test waiting for it):
            conn.execute("UPDATE sessions SET expires_utc = ?",
                         ((datetime.now(UTC) - timedelta(seconds=1)).isoformat(),))  # fmt: skip
        assert _signed_out(nurse.get())  # the shift is over
        with sqlite3.connect(accounts) as conn:
            assert conn.execute("SELECT count(*) FROM sessions").fetchone() == (0,)
    finally:
        running.stop()


def test_a_session_left_unused_for_the_idle_time_ends_and_the_page_says_why(
    tmp_path: Path, clinic_data_dir: Path, audit_db: Path
) -> None:
    """A nurse who walks away from a signed-in screen: after session_idle_minutes without a
    request the next person finds the sign-in page, not the form in her name."""
    add_user("alice", ALICE_PW)
    settings = _settings_file(tmp_path, 'sign_in = "accounts"\nsession_idle_minutes = 20')
    running = start_server("--workers", "0", "--config", str(settings),
                           extra_env=_env(clinic_data_dir, audit_db))  # fmt: skip
    accounts = clinic_data_dir / "users.sqlite3"

    def last_used(minutes_ago: float) -> None:  # the clock moved on, rather than the test waiting
        with sqlite3.connect(accounts) as conn:
            moment = datetime.now(UTC) - timedelta(minutes=minutes_ago)
            conn.execute("UPDATE sessions SET last_seen_utc = ?", (moment.isoformat(),))

    try:
        nurse = Browser(running.url)
        nurse.sign_in("alice", ALICE_PW)
        last_used(19)
        assert nurse.get()[0] == 200  # 19 minutes: still hers, and that use is noted
        with sqlite3.connect(accounts) as conn:
            ((seen,),) = conn.execute("SELECT last_seen_utc FROM sessions")
        assert datetime.now(UTC) - datetime.fromisoformat(seen) < timedelta(minutes=1)
        last_used(19)
        assert nurse.get()[0] == 200  # 19 minutes after that use: still hers
        copy = nurse.copy()
        last_used(21)
        assert _signed_out(nurse.get())
        status, _, page = nurse.get("login")
        assert status == 200
        assert "signed out because the form was not used for 20 minutes" in page
        assert _signed_out(copy.get())  # a copy of the cookie opens nothing either
        with sqlite3.connect(accounts) as conn:
            assert conn.execute("SELECT count(*) FROM sessions").fetchone() == (0,)
        log = run_discharge("log", "--user", "alice", "--format", "json",
                            env={"DISCHARGE_AUDIT_DB": str(audit_db)})  # fmt: skip
        ends = [r for r in json.loads(log.stdout) if r["action"] == "signed-out"]
        assert len(ends) == 1 and "not used for 20 minutes" in ends[0]["detail"]
        nurse.sign_in("alice", ALICE_PW)  # and she signs in again as before
        assert nurse.get()[0] == 200
    finally:
        running.stop()


def test_an_accounts_file_from_before_idle_times_still_opens(clinic_data_dir: Path) -> None:
    path = clinic_data_dir / "users.sqlite3"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    with sqlite3.connect(path) as conn:  # the sessions table as the first version made it
        conn.execute("CREATE TABLE sessions (id_hash TEXT PRIMARY KEY, user TEXT NOT NULL, "
                     "created_utc TEXT NOT NULL, expires_utc TEXT NOT NULL)")  # fmt: skip
    add_user("alice", ALICE_PW)
    accounts = Accounts()
    sid = accounts.start_session("alice", 1)
    assert accounts.check_session(sid, idle=timedelta(minutes=5)).user == "alice"


def test_the_user_header_signs_in_from_the_proxys_address_only(
    tmp_path: Path, clinic_data_dir: Path, audit_db: Path
) -> None:
    # On loopback, 127.0.0.2 plays the TLS proxy, 127.0.0.1 any other computer.
    settings = _settings_file(tmp_path, 'tls_proxy = "127.0.0.2"\nuser_header = "X-Remote-User"')
    running = start_server("--workers", "0", "--config", str(settings),
                           extra_env=_env(clinic_data_dir, audit_db))  # fmt: skip
    port = urllib.parse.urlparse(running.url).port
    assert port is not None

    def ask(source: str, body: dict[str, str] | None = None, **headers: str):  # type: ignore[no-untyped-def]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30,
                                          source_address=(source, 0))  # fmt: skip
        sent = {"Host": f"127.0.0.1:{port}", **headers}
        if body is None:
            conn.request("GET", "/", headers=sent)
        else:
            sent["Content-Type"] = "application/x-www-form-urlencoded"
            conn.request("POST", "/", body=urllib.parse.urlencode(body).encode(), headers=sent)
        answer = conn.getresponse()
        result = answer.status, answer.headers, answer.read()
        conn.close()
        return result

    try:
        proxy = {"X-Remote-User": "Dana", "X-Forwarded-For": "10.20.30.40"}
        status, headers, page = ask("127.0.0.2", **proxy)
        assert status == 200 and b"Signed in as dana" in page
        cookie = headers["Set-Cookie"].split(";", 1)[0]
        status, headers, pdf = ask("127.0.0.2", {**FORM, "csrf_token": token(page.decode())},
                                   **proxy, Cookie=cookie)  # fmt: skip
        assert status == 200 and headers["Content-Type"] == "application/pdf", pdf[:300]
        assert "Zoë Nguyễn" in pdf_text(pdf)
        assert ask("127.0.0.1", **{"X-Remote-User": "dana"})[0] == 403  # not from the proxy
        assert ask("127.0.0.1")[0] == 403
    finally:
        running.stop()
    rows = [(r["action"], r["user"], r["detail"]) for r in audit_rows(audit_db)]
    assert [row[:2] for row in rows] == [("made", "dana"), ("sign-in-failed", "dana")]
    assert json.loads(str(rows[1][2]))["address"] == "127.0.0.1"


# --- in a real browser -------------------------------------------------------------------------


def test_browser_two_nurses_sign_in_each_as_herself(  # type: ignore[no-untyped-def]
    accounts_server: AccountsServer, browser
) -> None:
    for name, password, patient in (("alice", ALICE_PW, "Ann Patient"),
                                    ("bob", BOB_PW, "Ben Patient")):  # fmt: skip
        context = browser.new_context()
        page = context.new_page()
        page.goto(accounts_server.url)
        assert page.url.endswith("/login")
        assert axe_violations(page) == []  # the name field too
        page.get_by_label("Your user name").fill(name)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(accounts_server.url)
        assert page.get_by_text(f"Signed in as {name}").is_visible()
        fill_form(page, **{**FORM, "procedure": "After your HSG", "paper": "A4",
                           "patient": patient})  # fmt: skip
        with page.expect_response(lambda r: r.request.method == "POST") as answer:
            page.get_by_role("button", name="Make PDF").click()
        assert answer.value.status == 200
        context.close()
    made = [(user, patient) for action, user, patient in accounts_server.records("alice", "bob")
            if action == "made"]  # fmt: skip
    assert made == [("alice", "Ann Patient"), ("bob", "Ben Patient")]

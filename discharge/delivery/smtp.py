"""Sending over SMTP: one session reused for many messages, with faults sorted by what next.

- ``MessageRejected``: the server refused this one message (a 5xx for the address, temporary
  rejections that outlasted the retries, a connection that dropped twice before the message
  went out). Other patients' messages can still go.
- ``OutcomeUnknown``: the connection dropped, or the server went silent, after the whole
  message went out and before the server's reply. The server may have it: it is never sent
  again automatically (a connection that drops before that point is reopened once and the
  message tried again). ``stop`` is set when the server went silent: stop the run.
- any other ``DeliveryError``: the server cannot be reached, TLS or the login failed, or it
  stopped answering before the message went. Every further message would fail the same way,
  so a batch stops at once.
"""

from __future__ import annotations

import contextlib
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from discharge.delivery.compose import OutgoingEmail
from discharge.delivery.settings import SmtpSettings
from discharge.errors import ConfigError, DeliveryError, InputError, reason

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

MAX_RETRY_DELAY = 60.0  # seconds: backoff doubles up to this, never beyond


class MessageRejected(DeliveryError):
    """The server would not take this one message; others may still be sent."""


class OutcomeUnknown(DeliveryError):
    """The whole message reached the server and no answer came: it may have been delivered.

    Such a message is never sent again automatically. ``stop`` says the server has gone silent,
    so the caller should not try further messages now.
    """

    outcome_unknown = True

    def __init__(self, message: str, *, stop: bool) -> None:
        super().__init__(message)
        self.stop = stop


class _SMTP(smtplib.SMTP):
    """smtplib.SMTP that knows whether the whole message went to the server.

    After the final ``.`` of DATA the server may have accepted the message even if its reply
    never comes: resending then could deliver it twice.
    """

    body_sent = False
    before_content: Callable[[], None] | None = None

    def data(self, msg: ReadableBuffer | str) -> tuple[int, bytes]:
        self.body_sent = False
        if self.before_content is not None:  # the sender and recipient were accepted
            self.before_content()
        return super().data(msg)

    def send(self, s: ReadableBuffer | str) -> None:
        super().send(s)
        if isinstance(s, bytes) and s.endswith(b"\r\n.\r\n"):
            self.body_sent = True


class _SMTPSSL(_SMTP, smtplib.SMTP_SSL):
    pass


# --- sending ------------------------------------------------------------------------------


class Mailer:
    """One SMTP session, reused for many messages, reconnecting when the server drops it.

    Use as a context manager; the connection is opened on the first ``send``.
    """

    def __init__(
        self,
        smtp: SmtpSettings,
        environ: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if smtp.host is None:
            raise ConfigError("smtp.host is required to send email")
        self.settings = smtp
        self._password = smtp.password(environ)  # a missing variable is found before any work
        self._sleep = sleep
        self._conn: _SMTP | None = None

    def __enter__(self) -> Mailer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def server(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                conn.close()

    def send(
        self, email: OutgoingEmail, *, before_content: Callable[[], None] | None = None
    ) -> str:
        """Send one message; return its Message-ID. Raises as the module docstring says.

        ``before_content`` is called just before the message itself goes to the server (after
        it has accepted sender and recipient): from then on the outcome may be unknown, so a
        caller that keeps a journal records its intent there.
        """
        if email.recipient is None:
            raise InputError("no recipient address for this message")
        attempts = 0
        reconnected = False
        while True:
            conn = self._connect()
            if isinstance(conn, _SMTP):
                conn.before_content = before_content
            try:
                conn.send_message(email.message, to_addrs=[email.recipient])
                return email.message_id
            except smtplib.SMTPRecipientsRefused as exc:
                code, reply = next(iter(exc.recipients.values()), (0, b""))
                failure = _rejection(code, reply, f"refused the address {email.recipient}")
            except smtplib.SMTPSenderRefused as exc:
                if not _temporary(exc.smtp_code):
                    # Every message has this sender: no point going on with the others.
                    raise DeliveryError(
                        f"the SMTP server {self.server} refuses the sender address "
                        f"{self.settings.sender_address}: {_reply(exc.smtp_code, exc.smtp_error)}"
                    ) from None
                failure = _rejection(exc.smtp_code, exc.smtp_error, "refused the sender")
            except smtplib.SMTPDataError as exc:
                failure = _rejection(exc.smtp_code, exc.smtp_error, "refused the message")
            except smtplib.SMTPResponseException as exc:
                failure = _rejection(exc.smtp_code, exc.smtp_error, "refused the message")
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                body_sent = isinstance(conn, _SMTP) and conn.body_sent
                self._drop()
                if body_sent and _timed_out(exc):
                    raise OutcomeUnknown(
                        f"the SMTP server {self.server} stopped answering (no reply within "
                        f"{self.settings.timeout:g} seconds) after taking the message for "
                        f"{email.recipient}: it may or may not have been delivered",
                        stop=True,
                    ) from None
                if body_sent:
                    raise OutcomeUnknown(
                        f"the SMTP server {self.server} closed the connection after taking the "
                        f"message for {email.recipient} and before confirming it "
                        f"({_reason(exc)}): it may or may not have been delivered",
                        stop=False,
                    ) from None
                if _timed_out(exc):
                    # A server that has gone silent would make every further message wait as
                    # long again: stop the run now.
                    raise DeliveryError(
                        f"the SMTP server {self.server} stopped answering (no reply within "
                        f"{self.settings.timeout:g} seconds) while sending to {email.recipient}; "
                        "that message was not sent"
                    ) from None
                if reconnected:
                    raise MessageRejected(
                        f"the SMTP server {self.server} closed the connection twice while "
                        f"sending to {email.recipient} ({_reason(exc)})"
                    ) from None
                reconnected = True  # reconnect once and try this message again
                continue
            except smtplib.SMTPException as exc:  # e.g. an extension this message needs
                raise MessageRejected(
                    f"the SMTP server {self.server} could not take the message for "
                    f"{email.recipient}: {_reason(exc)}"
                ) from None
            if not failure.temporary or attempts >= self.settings.retries:
                suffix = f" (after {attempts + 1} attempts)" if failure.temporary else ""
                raise MessageRejected(f"the SMTP server {self.server} {failure.text}{suffix}")
            if failure.code == 421:  # "closing the channel": smtplib has already closed it
                self._drop()
            self._sleep(min(self.settings.retry_delay * 2**attempts, MAX_RETRY_DELAY))
            attempts += 1

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _connect(self) -> _SMTP:
        if self._conn is not None:
            return self._conn
        s = self.settings
        assert s.host is not None
        context = ssl.create_default_context(cafile=str(s.ca_file) if s.ca_file else None)
        conn: _SMTP | None = None
        try:
            if s.security == "tls":
                conn = _SMTPSSL(s.host, s.port, timeout=s.timeout, context=context)
            else:
                conn = _SMTP(s.host, s.port, timeout=s.timeout)
            conn.ehlo()
            if s.security == "starttls":
                if not conn.has_extn("starttls"):
                    raise DeliveryError(
                        f"the SMTP server {self.server} does not offer STARTTLS, and patient "
                        "data is never sent unencrypted (check smtp.host, smtp.port and "
                        "smtp.security)"
                    )
                conn.starttls(context=context)
                conn.ehlo()
            if s.username is not None and self._password is not None:
                conn.login(s.username, self._password)
        except DeliveryError:
            _close_quietly(conn)
            raise
        except smtplib.SMTPAuthenticationError:
            _close_quietly(conn)
            raise DeliveryError(
                f"the SMTP server {self.server} refused the login for {s.username!r}: wrong "
                f"username or password (the password is read from ${s.password_env})"
            ) from None
        except smtplib.SMTPNotSupportedError:
            _close_quietly(conn)
            raise DeliveryError(
                f"the SMTP server {self.server} does not accept a login here "
                "(no AUTH offered: check smtp.security and smtp.port)"
            ) from None
        except ssl.SSLError as exc:
            _close_quietly(conn)
            hint = (
                " (is smtp.ca_file the right CA?)"
                if isinstance(exc, ssl.SSLCertVerificationError)
                else " (check smtp.security and smtp.port)"
            )
            raise DeliveryError(
                f"TLS with the SMTP server {self.server} failed: "
                f"{getattr(exc, 'verify_message', None) or exc.reason or exc}{hint}"
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            _close_quietly(conn)
            if _timed_out(exc):
                # smtplib reports a reply that never came as "Connection unexpectedly closed".
                raise DeliveryError(
                    f"the SMTP server {self.server} did not answer within {s.timeout:g} seconds"
                ) from None
            if isinstance(exc, socket.gaierror):
                raise DeliveryError(
                    f"cannot find the SMTP server {s.host!r} (check smtp.host)"
                ) from None
            raise DeliveryError(
                f"cannot connect to the SMTP server {self.server}: {_reason(exc)}"
            ) from None
        self._conn = conn
        return conn


@dataclass(frozen=True)
class _Failure:
    code: int
    temporary: bool
    text: str


def _rejection(code: int, reply: bytes | str, what: str) -> _Failure:
    return _Failure(code, _temporary(code), f"{what}: {_reply(code, reply)}")


def _temporary(code: int) -> bool:
    return 400 <= code < 500


def _reply(code: int, reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return f"{code} {' '.join(text.split())}".strip()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running, and are smtp.host and smtp.port right?)"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    return reason(exc)


def _timed_out(exc: BaseException) -> bool:
    # smtplib reports a reply that never came as "Connection unexpectedly closed", with the
    # socket's TimeoutError as its context.
    return isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError)


def _close_quietly(conn: _SMTP | None) -> None:
    if conn is not None:
        with contextlib.suppress(OSError):
            conn.close()

"""The form's "Email to patient": the same message as ``discharge email``, sent once.

Shown only when the clinic's settings have an ``[smtp]`` section (checked when the server
starts, like the command checks it before any work). Each form the server hands out carries a
random send id; a send id is used once, so a double click, a reload or the browser's
"resend the form?" never emails a patient twice. A failed send frees it for another try.

The same form sent again once its send is over (a reload, the button pressed again) is
answered by the clinic's record, like a new form: "already emailed", or, when the mail server
never confirmed it, "the mail server may already have it — send again?".

Across forms, sessions and processes the clinic's record of emails sent decides, as for the
command line (``delivery/sent.py``): instructions already emailed to this address, an earlier
version of them, or a send the mail server never confirmed (it may have the message) are not
sent again from a plain "Email to patient". The page says which, and asks: only its
"Send again anyway" button sends.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

from discharge.config import Config
from discharge.delivery.settings import EmailSettings, SmtpSettings, load_email_settings
from discharge.request import DischargeRequest

_KEEP_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Outcome:
    sent: bool
    message: str  # for the nurse
    ask: bool = False  # not sent, may have been before: offer "Send again anyway"
    unknown: bool = False  # the mail server may have this very message: keep the send id


class FormEmail:
    def __init__(self, smtp: SmtpSettings, settings: EmailSettings) -> None:
        from discharge.delivery.smtp import Mailer

        Mailer(smtp)  # a missing password variable stops the server now, not at a nurse's send
        self.smtp = smtp
        self.settings = settings
        self._used: dict[str, float] = {}
        self._sending: set[str] = set()  # send ids whose send is under way
        self._lock = threading.Lock()

    @staticmethod
    def new_send_id() -> str:
        return secrets.token_urlsafe(16)

    def claim(self, send_id: str) -> bool:
        """Take the send id for this send; False if it was already used."""
        now = time.monotonic()
        with self._lock:
            for old in [k for k, t in self._used.items() if now - t > _KEEP_SECONDS]:
                del self._used[old]
            if not send_id or send_id in self._used:
                return False
            self._used[send_id] = now
            self._sending.add(send_id)
            return True

    def sending(self, send_id: str) -> bool:
        """Whether this send id's send is under way (its outcome not yet recorded)."""
        with self._lock:
            return not send_id or send_id in self._sending

    def finished(self, send_id: str) -> None:
        """The send is over and the clinic's record says how it went: the send id stays used."""
        with self._lock:
            self._sending.discard(send_id)

    def release(self, send_id: str) -> None:
        with self._lock:
            self._used.pop(send_id, None)
            self._sending.discard(send_id)

    def send(
        self,
        request: DischargeRequest,
        config: Config,
        address: str,
        draw: object,
        *,
        resend: bool = False,
    ) -> Outcome:
        """Make the PDF and the message (``draw`` serialises reportlab), then send it, unless
        the clinic's record says it went or may have (``resend``: the nurse confirmed)."""
        from discharge.channels.email import EmailResult, email_instructions
        from discharge.delivery.sent import CHANGED, SENT
        from discharge.delivery.smtp import OutcomeUnknown
        from discharge.errors import DischargeError

        assert callable(draw)
        try:  # the same code as `discharge email`, audit record included
            result: EmailResult = draw(
                lambda: email_instructions(request, config, address, channel="web", resend=resend)
            )
        except OutcomeUnknown:
            return Outcome(
                False,
                f"The email to {address} was not confirmed: the mail server may already have "
                "it — send again? Check with the patient first.",
                ask=True,
                unknown=True,
            )
        except DischargeError as exc:
            return Outcome(False, f"The email was not sent: {exc}")
        held = result.held
        if held is None:
            return Outcome(True, f"Emailed to {address}.")
        when = held.when_text(config.clinic.tz)
        if held.status == SENT:
            text = f"These instructions were already emailed to {address} on {when}."
        elif held.status == CHANGED:
            text = f"An earlier version of these instructions was emailed to {address} on {when}."
        else:
            text = (
                f"An earlier email of these instructions to {address} ({when}) was not "
                "confirmed: the mail server may already have it — send again? Check with the "
                "patient first."
            )
        return Outcome(False, f"{text} Nothing was sent now.", ask=True)


def form_email(config: Config) -> FormEmail | None:
    """The form's email settings, or None when the clinic has no ``[smtp]`` section."""
    if config.section(SmtpSettings) is None:
        return None
    smtp, settings = load_email_settings(config)
    return FormEmail(smtp, settings)

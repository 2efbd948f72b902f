"""The form's "Email to patient": the same message as ``discharge email``, sent once.

Shown only when the clinic's settings have an ``[smtp]`` section (checked when the server
starts, like the command checks it before any work). Each form the server hands out carries a
random send id; a send id is used once, so a double click, a reload or the browser's
"resend the form?" never emails a patient twice. A failed send frees it for another try.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

from discharge.config import Config
from discharge.delivery import EmailSettings, SmtpSettings, load_email_settings
from discharge.request import DischargeRequest

_KEEP_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Outcome:
    sent: bool
    message: str  # for the nurse


class FormEmail:
    def __init__(self, smtp: SmtpSettings, settings: EmailSettings) -> None:
        from discharge.delivery import Mailer

        Mailer(smtp)  # a missing password variable stops the server now, not at a nurse's send
        self.smtp = smtp
        self.settings = settings
        self._used: dict[str, float] = {}
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
            return True

    def release(self, send_id: str) -> None:
        with self._lock:
            self._used.pop(send_id, None)

    def send(
        self, request: DischargeRequest, config: Config, address: str, draw: object
    ) -> Outcome:
        """Make the PDF and the message (``draw`` serialises reportlab), then send it."""
        from discharge.delivery import email_instructions
        from discharge.errors import DischargeError

        assert callable(draw)
        try:  # the same code as `discharge email`, audit record included
            draw(lambda: email_instructions(request, config, address, channel="web"))
        except DischargeError as exc:
            return Outcome(False, f"The email was not sent: {exc}")
        return Outcome(True, f"Emailed to {address}.")


def form_email(config: Config) -> FormEmail | None:
    """The form's email settings, or None when the clinic has no ``[smtp]`` section."""
    if "smtp" not in config.extra:
        return None
    smtp, settings = load_email_settings(config)
    return FormEmail(smtp, settings)

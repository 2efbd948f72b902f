"""Handing a made PDF out: one seam, ``deliver(handout, pdf, channel, audit=...)``, and channels.

A **channel** is one way a patient's sheet leaves the program: ``email`` (``channels/email.py``,
over ``discharge.delivery``) and ``print`` (``channels/print.py``, over ``discharge.printing``).
Every front end (``generate --print``, ``batch --email``/``--print``, ``discharge email``,
``discharge print``, the web form's Email and Print) makes its ``Handout`` and calls
``deliver``; the channel does the work and records each attempt in the audit log under its own
action names (``Actions``: done, failed, unknown; e.g. ``emailed``/``email-failed``/
``email-unknown``). Whatever a channel must remember between runs stays with it (the email
channel's once-only record is ``delivery/sent.py``).

The audit record's ``channel`` column says which *front end* handed the sheet out (``cli``,
``batch``, ``web``); the *delivery* channel is in its ``action``.

**Adding a channel** (e.g. ``file``: filing the sheet to the patient's record over HL7):

1. Write one module, ``discharge/channels/<name>.py``, holding a class with ``name`` (a
   word), ``actions`` (``Actions("filed", "file-failed", "file-unknown")``: new names, never
   an existing channel's) and ``send(handout, pdf, recorder)``, decorated with ``@register``.
   ``send`` does the work and records through ``recorder``: ``done`` once it is known to
   have happened, ``failed`` when it surely did not, ``unknown`` when it may have (or wrap the
   attempt in ``recorder.attempt``). It raises a ``DischargeError`` subclass for a failure
   and returns whatever its front ends need to report (a receipt).
2. Register it: the ``@register`` decorator (the audit log then accepts its action names),
   and a line in ``pyproject.toml``'s import-linter layers only if the module imports a new
   package of its own (channels sit above ``batch``, ``delivery`` and ``printing``).
3. Call ``deliver(handout, pdf, YourChannel(...), audit=log)`` from the front ends that offer it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol, TypeVar

from discharge.audit import AuditError, AuditLog, AuditRecord, describe_pdf, register_actions
from discharge.errors import DeliveryError

if TYPE_CHECKING:
    from discharge.document import Document
    from discharge.request import DischargeRequest

__all__ = [
    "Actions", "Channel", "Handout", "Recorder", "deliver", "register", "registered",
]  # fmt: skip

R_co = TypeVar("R_co", covariant=True)


@dataclass(frozen=True)
class Actions:
    """A channel's audit action names: it happened, it surely did not, it may have."""

    done: str
    failed: str
    unknown: str

    def __iter__(self) -> Iterator[str]:
        return iter((self.done, self.failed, self.unknown))


@dataclass(frozen=True)
class Handout:
    """What is handed out: the audit records of the patients' sheets in the PDF, as made (one
    for a patient's PDF, several for a batch's combined PDF), and, when the document was made
    in this run, its request and document (a channel that writes to the patient needs them)."""

    records: tuple[AuditRecord, ...]
    request: DischargeRequest | None = None
    document: Document | None = None
    front_end: str = "cli"  # who hands it out: "cli", "batch" or "web" (the record's channel)

    @classmethod
    def of(
        cls, request: DischargeRequest, document: Document, pdf: bytes, *, front_end: str = "cli"
    ) -> Handout:
        """One patient's document made now."""
        made = describe_pdf(request, document, pdf, channel=front_end)
        return cls((made,), request, document, front_end)


class Recorder:
    """Records one channel's attempts in the audit log, under the channel's action names."""

    def __init__(self, log: AuditLog, actions: Actions) -> None:
        self.log = log
        self.actions = actions

    def done(self, records: Sequence[AuditRecord], *, said: str) -> list[AuditRecord]:
        """It happened. If it cannot be recorded, the AuditError says what happened (``said``:
        e.g. "the email was sent")."""
        try:
            return self.log.record_many(replace(r, action=self.actions.done) for r in records)
        except AuditError as exc:
            raise AuditError(f"{exc}; {said}") from None

    def failed(self, records: Sequence[AuditRecord]) -> None:
        """It surely did not happen (the channel's own error is the one to report)."""
        self._quietly(records, self.actions.failed)

    def unknown(self, records: Sequence[AuditRecord]) -> None:
        """It may have happened."""
        self._quietly(records, self.actions.unknown)

    @contextlib.contextmanager
    def attempt(
        self, records: Sequence[AuditRecord], *, unknown: tuple[type[BaseException], ...] = ()
    ) -> Iterator[None]:
        """Around one attempt: if it raises, record ``failed`` (a DeliveryError that is not
        one of ``unknown``) or ``unknown`` (anything else, e.g. Ctrl-C: it may have gone).
        The channel records ``done`` itself, once it has noted the outcome."""
        try:
            yield
        except BaseException as exc:
            failed = isinstance(exc, DeliveryError) and not isinstance(exc, unknown)
            (self.failed if failed else self.unknown)(records)
            raise

    def _quietly(self, records: Sequence[AuditRecord], action: str) -> None:
        with contextlib.suppress(AuditError):
            self.log.record_many(replace(r, action=action) for r in records)


class Channel(Protocol[R_co]):
    """One way out (see the module's docstring for how to add one)."""

    @property
    def name(self) -> str: ...

    @property
    def actions(self) -> Actions: ...

    def send(self, handout: Handout, pdf: bytes, recorder: Recorder) -> R_co: ...


_REGISTERED: dict[str, Actions] = {}

C = TypeVar("C", bound=type)


def register(channel: C) -> C:
    """Class decorator: make a channel known, and its action names to the audit log."""
    name: str = getattr(channel, "name")  # noqa: B009 - a class attribute of any channel
    actions: Actions = getattr(channel, "actions")  # noqa: B009
    taken = {a for n, known in _REGISTERED.items() if n != name for a in known}
    if taken & set(actions) or _REGISTERED.get(name, actions) != actions:
        raise ValueError(f"channel {name!r}: its name or action names are taken")
    _REGISTERED[name] = actions
    register_actions(*actions)
    return channel


def registered() -> dict[str, Actions]:
    """Every channel registered so far (imported), by name."""
    return dict(_REGISTERED)


def deliver(handout: Handout, pdf: bytes, channel: Channel[R_co], *, audit: AuditLog) -> R_co:
    """Hand ``pdf`` (the sheets ``handout`` describes) out through ``channel``, each attempt
    recorded in ``audit`` under the channel's action names; return the channel's receipt.
    A failure raises the channel's DischargeError (already recorded)."""
    if _REGISTERED.get(channel.name) != channel.actions:
        raise ValueError(f"channel {channel.name!r} is not registered")
    return channel.send(handout, pdf, Recorder(audit, channel.actions))

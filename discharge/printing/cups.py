"""The print system, reached the way every CUPS program reaches it.

- ``submit_job``: ``lp`` with an argument list and the PDF on its standard input (no shell, no
  temporary file); it answers with the job's id.
- ``printer_state``, ``job_state``: IPP Get-Printer-Attributes and Get-Job-Attributes (RFC 8010,
  8011) sent to the CUPS server that ``lpstat -H`` names (``$CUPS_SERVER``, ``client.conf``, or
  the local scheduler's socket). ``lpstat`` itself cannot be used to confirm a print: its
  ``-W completed`` lists completed, cancelled and aborted jobs alike, and only the job's
  ``job-state`` tells them apart. The few bytes of IPP below read that attribute.
- ``cancel_job``: ``cancel -x``, which also purges the spooled copy of the document.

Every command runs with ``LC_ALL=C`` so its answer can be read, whatever the desk's language.
Patient data (the job's title holds the hospital number) only ever travels as one argument.
"""

from __future__ import annotations

import getpass
import http.client
import os
import re
import socket
import struct
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from urllib.parse import quote

from discharge.errors import PrintError

COMMAND_TIMEOUT = 30.0  # seconds for one lp / lpstat / cancel / IPP exchange
_C_LOCALE = {"LC_ALL": "C", "LANG": "C"}

# IPP operations, delimiter and value tags (RFC 8010 section 3.5).
_GET_JOB_ATTRIBUTES, _GET_PRINTER_ATTRIBUTES = 0x0009, 0x000B
_OPERATION_GROUP, _END = 0x01, 0x03
_INTEGER, _BOOLEAN, _ENUM = 0x21, 0x22, 0x23
_TEXT_WITH_LANGUAGE, _NAME_WITH_LANGUAGE = 0x35, 0x36
_NAME, _KEYWORD, _URI, _CHARSET, _LANGUAGE = 0x42, 0x44, 0x45, 0x47, 0x48
_NOT_FOUND = 0x0406

PRINTER_STATES = {3: "idle", 4: "processing", 5: "stopped"}
JOB_STATES = {
    3: "pending", 4: "pending-held", 5: "processing", 6: "processing-stopped",
    7: "canceled", 8: "aborted", 9: "completed",
}  # fmt: skip


class CupsUnavailable(PrintError):
    """The print system itself cannot be reached (not installed, not running)."""


class PrinterUnknown(PrintError):
    """The print system has no printer (or class) of that name."""


@dataclass(frozen=True)
class PrinterState:
    name: str
    state: str  # idle, processing, stopped
    accepting: bool
    reasons: tuple[str, ...]  # printer-state-reasons, e.g. ("media-empty-error",)
    message: str  # printer-state-message: the printer's or the administrator's words
    sides_supported: tuple[str, ...]


@dataclass(frozen=True)
class JobState:
    job_id: int
    state: str  # one of JOB_STATES' values
    reasons: tuple[str, ...]  # job-state-reasons, e.g. ("job-completed-successfully",)
    message: str  # job-printer-state-message


# --- lp and cancel ------------------------------------------------------------------------


def submit_job(
    printer: str, pdf: bytes, *, title: str, copies: int, options: Mapping[str, str]
) -> int:
    """Queue ``pdf`` on ``printer`` with ``lp``; return the job id. Raises PrintError."""
    args = ["lp", "-d", printer, "-t", title, "-n", str(copies)]
    for key, value in options.items():
        args += ["-o", f"{key}={value}"]
    done = _run(args, stdin=pdf)
    if done.returncode != 0:
        raise PrintError(
            f"the print system refused the job for printer {printer!r}: {_said(done, 'lp')}"
        )
    found = re.search(r"request id is (.+)-(\d+) \(", done.stdout)
    if found is None:
        raise PrintError(f"lp did not say which job it queued on {printer!r}: {done.stdout!r}")
    return int(found.group(2))


def cancel_job(job_id: int) -> bool:
    """Cancel a job that has not printed and purge its spooled document; True if it was."""
    try:
        return _run(["cancel", "-x", str(job_id)]).returncode == 0
    except PrintError:
        return False


def known_printers() -> list[str]:
    """The destinations the print system offers (``lpstat -e``), for a helpful message."""
    try:
        done = _run(["lpstat", "-e"])
    except PrintError:
        return []
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def _run(args: Sequence[str], stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(
            list(args),
            input=stdin,
            capture_output=True,
            timeout=COMMAND_TIMEOUT,
            env={**os.environ, **_C_LOCALE},
            check=False,
        )
    except FileNotFoundError:
        raise CupsUnavailable(
            f"the print system's {args[0]!r} command is not installed (CUPS: on Debian or "
            "Ubuntu, apt-get install cups-client)"
        ) from None
    except subprocess.TimeoutExpired:
        raise CupsUnavailable(
            f"the print system did not answer {args[0]!r} within {COMMAND_TIMEOUT:.0f} s"
        ) from None
    except OSError as exc:
        raise CupsUnavailable(f"cannot run {args[0]!r}: {exc.strerror}") from None
    return subprocess.CompletedProcess(
        done.args,
        done.returncode,
        done.stdout.decode("utf-8", "replace"),
        done.stderr.decode("utf-8", "replace"),
    )


def _said(done: subprocess.CompletedProcess[str], command: str) -> str:
    text = " ".join((done.stderr or done.stdout).split())
    for prefix in (f"{command}: Error - ", f"{command}: error - ", f"{command}: "):
        text = text.removeprefix(prefix)
    return text or f"{command} exited with status {done.returncode}"


# --- IPP ----------------------------------------------------------------------------------


def printer_state(printer: str) -> PrinterState:
    """The printer's state now. Raises PrinterUnknown, CupsUnavailable."""
    status, attrs = _ipp(
        _GET_PRINTER_ATTRIBUTES,
        [(_URI, "printer-uri", f"ipp://localhost/printers/{quote(printer, safe='')}")],
        ["printer-state", "printer-state-reasons", "printer-state-message",
         "printer-is-accepting-jobs", "sides-supported"],
    )  # fmt: skip
    if status == _NOT_FOUND or "printer-state" not in attrs:
        known = known_printers()
        listed = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
        raise PrinterUnknown(
            f"printer {printer!r} is not known to the print system"
            + (f" (it has: {listed})" if known else " (it has no printers)")
            + ": nothing was printed"
        )
    return PrinterState(
        name=printer,
        state=PRINTER_STATES.get(_number(attrs, "printer-state"), "unknown"),
        accepting=bool(_first(attrs, "printer-is-accepting-jobs", True)),
        reasons=_strings(attrs, "printer-state-reasons"),
        message=str(_first(attrs, "printer-state-message", "")),
        sides_supported=_strings(attrs, "sides-supported"),
    )


def job_state(job_id: int) -> JobState:
    """A job's state now. Raises PrintError when the print system no longer knows the job."""
    status, attrs = _ipp(
        _GET_JOB_ATTRIBUTES,
        [(_URI, "job-uri", f"ipp://localhost/jobs/{job_id}")],
        ["job-state", "job-state-reasons", "job-printer-state-message"],
    )
    if "job-state" not in attrs:
        raise PrintError(
            f"the print system no longer knows job {job_id} (IPP status 0x{status:04x})"
        )
    return JobState(
        job_id=job_id,
        state=JOB_STATES.get(_number(attrs, "job-state"), "unknown"),
        reasons=_strings(attrs, "job-state-reasons"),
        message=str(_first(attrs, "job-printer-state-message", "")),
    )


def _first(attrs: Mapping[str, list[object]], name: str, default: object) -> object:
    values = attrs.get(name)
    return values[0] if values else default


def _number(attrs: Mapping[str, list[object]], name: str) -> int:
    value = _first(attrs, name, 0)
    return value if isinstance(value, int) else 0


def _strings(attrs: Mapping[str, list[object]], name: str) -> tuple[str, ...]:
    return tuple(str(v) for v in attrs.get(name, ()) if isinstance(v, str) and v != "none")


def server_address() -> str:
    """The CUPS server ``lp`` uses: a socket path, or host[:port] (``lpstat -H``)."""
    return _server_address(os.environ.get("CUPS_SERVER"))


@cache
def _server_address(_cups_server: str | None) -> str:
    done = _run(["lpstat", "-H"])
    address = done.stdout.strip()
    if done.returncode != 0 or not address:
        raise CupsUnavailable(f"cannot find the print server: {_said(done, 'lpstat')}")
    return address


def _ipp(
    operation: int, target: list[tuple[int, str, str]], requested: list[str]
) -> tuple[int, dict[str, list[object]]]:
    body = struct.pack(">HHI", 0x0200, operation, 1) + bytes([_OPERATION_GROUP])
    body += _attribute(_CHARSET, "attributes-charset", "utf-8")
    body += _attribute(_LANGUAGE, "attributes-natural-language", "en")
    for tag, name, value in target:
        body += _attribute(tag, name, value)
    body += _attribute(_NAME, "requesting-user-name", _user())
    for i, name in enumerate(requested):
        body += _attribute(_KEYWORD, "" if i else "requested-attributes", name)
    body += bytes([_END])
    address = server_address()
    connection = _connection(address)
    try:
        connection.request("POST", "/", body, {"Content-Type": "application/ipp"})
        response = connection.getresponse()
        data = response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise CupsUnavailable(f"cannot reach the print server at {address}: {exc}") from None
    finally:
        connection.close()
    if response.status != 200:
        raise CupsUnavailable(
            f"the print server at {address} answered HTTP {response.status} {response.reason}"
        )
    return _parse(data, address)


def _attribute(tag: int, name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode("utf-8")
    return (
        struct.pack(">BH", tag, len(raw_name))
        + raw_name
        + struct.pack(">H", len(raw_value))
        + raw_value
    )


def _parse(data: bytes, address: str) -> tuple[int, dict[str, list[object]]]:
    try:
        _version, status, _request = struct.unpack_from(">HHI", data, 0)
        attrs: dict[str, list[object]] = {}
        pos, name = 8, ""
        while pos < len(data):
            tag = data[pos]
            pos += 1
            if tag == _END:
                break
            if tag < 0x10:  # the start of another attribute group
                continue
            (length,) = struct.unpack_from(">H", data, pos)
            pos += 2
            if length:
                name = data[pos : pos + length].decode("utf-8", "replace")
                attrs.setdefault(name, [])
            pos += length
            (length,) = struct.unpack_from(">H", data, pos)
            pos += 2
            raw = data[pos : pos + length]
            pos += length
            attrs.setdefault(name, []).append(_value(tag, raw))
    except struct.error:
        raise CupsUnavailable(f"the print server at {address} sent a damaged answer") from None
    return status, attrs


def _value(tag: int, raw: bytes) -> object:
    if tag in (_INTEGER, _ENUM) and len(raw) == 4:
        return struct.unpack(">i", raw)[0]
    if tag == _BOOLEAN and len(raw) == 1:
        return raw != b"\x00"
    if tag in (_TEXT_WITH_LANGUAGE, _NAME_WITH_LANGUAGE) and len(raw) >= 4:
        (skip,) = struct.unpack_from(">H", raw, 0)  # the language, then the text
        raw = raw[4 + skip :]
    if 0x30 <= tag <= 0x4F:
        return raw.decode("utf-8", "replace")
    return raw


def _connection(address: str) -> http.client.HTTPConnection:
    if address.startswith("/"):
        return _SocketConnection(address, COMMAND_TIMEOUT)
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or host.endswith(":"):  # "printhost" or "[::1]"
        host, port = address, "631"
    return http.client.HTTPConnection(host.strip("[]"), int(port), timeout=COMMAND_TIMEOUT)


class _SocketConnection(http.client.HTTPConnection):
    """HTTP over the scheduler's local domain socket (``/run/cups/cups.sock``)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


@cache
def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "discharge"

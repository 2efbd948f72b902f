"""A real, private CUPS scheduler for the printing tests (tests/test_printing.py).

``cupsd -f`` runs with its own cupsd.conf and cups-files.conf, every folder (ServerRoot,
RequestRoot, logs, cache, state) in a fresh temporary folder, listening only on a domain socket
in it: ``CUPS_SERVER`` points ``lp``, ``lpstat`` and the program at it, and the machine's own
scheduler (if any) is never touched. Its printers:

- ``Ward3-PDF``: Debian's cups-pdf virtual printer (``printer-driver-cups-pdf``), one-sided.
  cups-pdf reads its settings from ``/etc/cups/cups-pdf-NAME.conf`` for a device URI
  ``cups-pdf:/NAME`` (the folder is compiled in); the server writes one such file with a unique
  NAME whose ``Out`` folder is inside the private folder, and removes it when it stops.
  cups-pdf must run as root (CUPS runs a backend that only its owner can execute as root),
  so the tests need root, as CI has.
- ``Ward3-Duplex``: the same, with a copy of its PPD that offers two-sided printing, so CUPS
  reports ``sides-supported`` two-sided (cups-pdf itself writes the pages as they come).
- ``Ward3-Slow``: a raw queue to a socket printer (``socket://``) on loopback that accepts the
  connection and never finishes: its first job stays "processing" and later jobs "pending".

The page log records each job's printer, id, pages, ``sides`` and title (``PageLogFormat``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

CUPSD = "/usr/sbin/cupsd"
CUPS_PDF_BACKEND = Path("/usr/lib/cups/backend/cups-pdf")
CUPS_PDF_PPD = Path("/usr/share/ppd/cups-pdf/CUPS-PDF_opt.ppd")
PDF_PRINTER, DUPLEX_PRINTER, SLOW_PRINTER = "Ward3-PDF", "Ward3-Duplex", "Ward3-Slow"
INSTALL = "apt-get install cups printer-driver-cups-pdf (.ci/run does)"

_DUPLEX = """
*OpenUI *Duplex/2-Sided Printing: PickOne
*OrderDependency: 10 AnySetup *Duplex
*DefaultDuplex: None
*Duplex None/Off: "<</Duplex false>>setpagedevice"
*Duplex DuplexNoTumble/Long Edge: "<</Duplex true/Tumble false>>setpagedevice"
*Duplex DuplexTumble/Short Edge: "<</Duplex true/Tumble true>>setpagedevice"
*CloseUI: *Duplex
"""


def missing_parts() -> list[str]:
    """What this machine lacks to run the tests (they fail, never skip, without it)."""
    missing = [
        tool
        for tool in ("lp", "lpstat", "lpadmin", "cupsdisable", "cupsenable", "cupsreject",
                     "cupsaccept", "cancel", "gs")
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists()
    ]  # fmt: skip
    for path in (Path(CUPSD), CUPS_PDF_BACKEND, CUPS_PDF_PPD):
        if not path.exists():
            missing.append(str(path))
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        missing.append("root (cups-pdf runs only as root)")
    return missing


class _SilentPrinter:
    """A 'printer' on loopback that takes every byte and never says it has finished."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.clients: list[socket.socket] = []
        self.stopped = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stopped:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.clients.append(client)
            threading.Thread(target=self._drain, args=(client,), daemon=True).start()

    @staticmethod
    def _drain(client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while client.recv(65536):
                pass

    def close(self) -> None:
        self.stopped = True
        self.server.close()
        for client in self.clients:
            with contextlib.suppress(OSError):
                client.close()


@dataclass
class CupsServer:
    root: Path
    socket: Path
    out: Path  # where cups-pdf writes the printed PDFs
    page_log: Path
    spool: Path
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            list(args), env={**os.environ, **self.env, "LC_ALL": "C"}, capture_output=True,
            text=True, check=False, timeout=30,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr}")
        return done

    def page_log_lines(self) -> list[str]:
        if not self.page_log.exists():
            return []
        return [line.strip('"') for line in self.page_log.read_text().splitlines()]

    def printed(self, job_id: int) -> Path:
        """The PDF cups-pdf wrote for a job (it names it ..._job_N.pdf)."""
        found = list(self.out.glob(f"*job_{job_id}.pdf"))
        assert len(found) == 1, (job_id, sorted(p.name for p in self.out.iterdir()))
        return found[0]


@contextlib.contextmanager
def cups_server():  # type: ignore[no-untyped-def]
    missing = missing_parts()
    if missing:
        raise RuntimeError(f"the printing tests need {', '.join(missing)}: {INSTALL}")
    # Not in pytest's tmp (0700): the scheduler's filters run as user lp and must reach the
    # spool folder; the folder itself is private to root and lp as cupsd makes it.
    root = Path(tempfile.mkdtemp(prefix="discharge-cups-"))
    root.chmod(0o755)
    name = f"discharge-test-{uuid.uuid4().hex[:12]}"
    pdf_conf = Path("/etc/cups") / f"cups-pdf-{name}.conf"
    etc, out, logs = root / "etc", root / "out", root / "log"
    for folder in (etc / "ppd", root / "spool" / "tmp", root / "cache", root / "state", out, logs):
        folder.mkdir(parents=True)
    sock = root / "cups.sock"
    server = CupsServer(root, sock, out, logs / "page_log", root / "spool",
                        env={"CUPS_SERVER": str(sock)})  # fmt: skip
    (etc / "cups-files.conf").write_text(
        f"ServerRoot {etc}\nRequestRoot {root / 'spool'}\nTempDir {root / 'spool' / 'tmp'}\n"
        f"CacheDir {root / 'cache'}\nStateDir {root / 'state'}\n"
        f"AccessLog {logs / 'access_log'}\nErrorLog {logs / 'error_log'}\n"
        f"PageLog {logs / 'page_log'}\nSystemGroup root\nSandboxing Relaxed\n"
    )
    (etc / "cupsd.conf").write_text(
        f"Listen {sock}\nLogLevel info\nBrowsing No\nDefaultAuthType None\n"
        'PageLogFormat "%p %j %u %P %C {%{sides}} {%{job-name}} {%{copies}}"\n'
        "PreserveJobFiles No\nJobRetryInterval 1\n"
        "<Location />\n  Order allow,deny\n  Allow all\n</Location>\n"
        "<Policy default>\n  <Limit All>\n    Order deny,allow\n  </Limit>\n</Policy>\n"
    )
    pdf_conf.write_text(
        f"Out {out}\nSpool {root / 'spool' / 'cups-pdf'}\nLog {logs}\nGrp root\nLabel 2\n"
    )
    duplex_ppd = root / "duplex.ppd"
    duplex_ppd.write_text(CUPS_PDF_PPD.read_text(encoding="latin-1") + _DUPLEX, "latin-1")
    silent = _SilentPrinter()
    cupsd = subprocess.Popen(
        [CUPSD, "-f", "-c", str(etc / "cupsd.conf"), "-s", str(etc / "cups-files.conf")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        # `lpstat -r` exits 0 either way: its words say whether the scheduler answers.
        while server.run("lpstat", "-r", check=False).stdout.strip() != "scheduler is running":
            if cupsd.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the private cupsd did not start: see {logs / 'error_log'}")
            time.sleep(0.1)
        ppd = str(CUPS_PDF_PPD)
        _add_printer(server, PDF_PRINTER, "-v", f"cups-pdf:/{name}", "-P", ppd)
        _add_printer(server, DUPLEX_PRINTER, "-v", f"cups-pdf:/{name}", "-P", str(duplex_ppd))
        _add_printer(server, SLOW_PRINTER, "-v", f"socket://127.0.0.1:{silent.port}")
        yield server
    finally:
        cupsd.terminate()
        try:
            cupsd.wait(10)
        except subprocess.TimeoutExpired:
            cupsd.kill()
            cupsd.wait()
        silent.close()
        pdf_conf.unlink(missing_ok=True)
        shutil.rmtree(root, ignore_errors=True)


def _add_printer(server: CupsServer, name: str, *args: str) -> None:
    # A scheduler that has just started may still be loading on a busy machine: try again
    # briefly, then say what it answered.
    for _attempt in range(8):
        done = server.run("lpadmin", "-p", name, "-E", *args, check=False)
        if done.returncode == 0:
            return
        time.sleep(0.25)
    log = server.root / "log" / "error_log"
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise RuntimeError(f"lpadmin -p {name} failed: {done.stderr.strip()}\n{tail}")

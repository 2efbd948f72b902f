"""Issue 18: email once-only kept by the clinic (not the output folder), the web form's unknown
outcome, and a rerun under a full disk (a file-size limit) ending in a clear error.

Everything runs for real: the installed command as a subprocess, aiosmtpd on loopback, SQLite.
"""

from __future__ import annotations

import csv
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

from tests.helpers import AUDIT_ENV, CACHE_ENV, DATA_DIR_ENV, run_discharge
from tests.test_email import (  # noqa: F401 (fixtures)
    Server,
    manifest,
    relay,
    relay_config,
    write_schedule,
)

# --- a rerun under a file-size limit (finding 4) ------------------------------------------


def _big_schedule(tmp_path: Path, rows: int, addresses: int = 0) -> Path:
    lines = ["patient_name,procedure,date,mrn,email"]
    for i in range(rows):
        email = f"p{i}@patient.example" if i < addresses else ""
        lines.append(f"Patient {i},hsg,2026-11-21,RX-{i},{email}")
    return write_schedule(tmp_path, lines)


def _limited(limit: int, *args: object) -> subprocess.CompletedProcess[str]:
    """The installed command with every file it writes limited to ``limit`` bytes, as a
    nearly full disk would: writes past it fail with EFBIG (SIGXFSZ ignored)."""

    def limit_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [sys.executable, "-m", "discharge", *map(str, args)],
        preexec_fn=limit_files,  # noqa: PLW1509 (no threads in the child before exec)
        capture_output=True,
        text=True,
        timeout=120,
        env={
            k: v
            for k, v in os.environ.items()
            if not k.startswith("DISCHARGE_") or k in (DATA_DIR_ENV, AUDIT_ENV, CACHE_ENV)
        },
    )


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.endswith(".part"))


def test_a_rerun_under_a_file_size_limit_skips_its_rows_and_leaves_nothing(
    relay: Server,  # noqa: F811
    tmp_path: Path,
) -> None:
    # 200 rows: the manifest (~45 kB) is larger than SQLite's shared-memory file (32 kB) the
    # audit log needs, and smaller than the previous manifest's index on disk.
    config, out = relay_config(tmp_path, relay), tmp_path / "out"
    schedule = _big_schedule(tmp_path, 200, addresses=3)
    args = ["batch", schedule, "--out-dir", out, "--config", config, "--jobs", "2"]
    assert run_discharge(*args, "--email").code == 0
    before = (out / "manifest.csv").stat().st_size
    kept = {r: (e["file"], e["sha256"], e["email_status"]) for r, e in manifest(out).items()}
    pdfs = {p.name: p.stat().st_mtime_ns for p in out.glob("*.pdf")}
    limit = before + 2048

    for extra in ([], ["--email"]):
        result = _limited(limit, *args, *extra)
        assert result.returncode == 0, result.stderr
        assert "0 ok / 0 error / 200 skipped" in result.stdout
        assert _leftovers(out) == []
        assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.pdf")} == pdfs
    assert len(relay.received) == 3  # nobody emailed twice
    now = {r: (e["file"], e["sha256"], e["email_status"]) for r, e in manifest(out).items()}
    assert now == kept


def test_a_manifest_that_no_longer_fits_is_a_clear_error_and_the_old_one_stays(
    relay: Server,  # noqa: F811
    tmp_path: Path,
) -> None:
    config, out = relay_config(tmp_path, relay), tmp_path / "out"
    schedule = _big_schedule(tmp_path, 200, addresses=1)
    args = ["batch", schedule, "--out-dir", out, "--config", config, "--jobs", "2"]
    assert run_discharge(*args).code == 0
    before = (out / "manifest.csv").read_bytes()

    for extra in ([], ["--email"]):
        result = _limited(40_000, *args, *extra)  # room for SQLite's 32 kB, not the manifest
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert line == f"discharge: error: cannot write {out / 'manifest.csv'}: File too large"
        assert _leftovers(out) == []
        assert (out / "manifest.csv").read_bytes() == before
    assert relay.received == []  # the email step never started

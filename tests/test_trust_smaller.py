"""Issue 18, finding 7 (the smaller items): an audit log readable by others is made private,
`log --show-pdf-hash` refuses a pipe or a device instead of hanging, and a name with
characters beyond U+FFFF keeps a correct text map (copy and paste, screen readers)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from discharge.audit import AuditError, AuditLog
from discharge.config import Config
from tests.helpers import pdf_text, run_discharge
from tests.test_audit import HSG, log

# Characters beyond the Basic Multilingual Plane that the bundled DejaVu Sans has:
# double-struck capitals, an emoji, an Old Italic letter.
BEYOND_BMP = "Zoë 𝔸𝔹 Okafor 😀 𐌀"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_an_audit_log_others_can_read_is_made_private(audit_db: Path, tmp_path: Path) -> None:
    first = run_discharge("generate", *HSG, "--patient", "Ann Alpha", "-o", tmp_path / "a.pdf")
    assert first.code == 0, first.stderr
    assert mode(audit_db) == 0o600
    os.chmod(audit_db, 0o644)  # copied in, restored from a backup, made by an older version
    wal = audit_db.with_name(audit_db.name + "-wal")
    if wal.exists():
        os.chmod(wal, 0o644)
    second = run_discharge("generate", *HSG, "--patient", "Bea Beta", "-o", tmp_path / "b.pdf")
    assert second.code == 0, second.stderr
    assert mode(audit_db) == 0o600
    assert not wal.exists() or mode(wal) == 0o600
    assert log("--verify").returncode == 0


def test_an_audit_log_that_cannot_be_made_private_is_refused(
    audit_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_discharge("generate", *HSG, "--patient", "Ann", "-o", tmp_path / "a.pdf").code == 0
    os.chmod(audit_db, 0o644)

    def refuse(path: object, new_mode: int) -> None:  # another user's file (tests run as root)
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "chmod", refuse)
    with pytest.raises(AuditError) as caught:
        AuditLog.open(Config())
    assert str(caught.value) == (
        f"the audit log {audit_db} can be read by other users (mode 0644) and cannot be made "
        f"private (Operation not permitted); its owner should run: chmod 600 {audit_db}"
    )


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_show_pdf_hash_refuses_a_pipe_or_a_device(tmp_path: Path, kind: str) -> None:
    target = Path("/dev/null")
    if kind == "fifo":
        target = tmp_path / "pipe.pdf"
        os.mkfifo(target)
    try:
        result = log("--show-pdf-hash", target)
    except subprocess.TimeoutExpired:
        raise AssertionError("log --show-pdf-hash hung on a pipe") from None
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().endswith(
        f"{target} is not a regular file (a pipe, a device or a folder): give the PDF file"
    ), result.stderr


def test_characters_beyond_the_bmp_are_extracted_as_written(tmp_path: Path) -> None:
    out = tmp_path / "out.pdf"
    result = run_discharge("generate", *HSG, "--patient", BEYOND_BMP, "-o", out)
    assert result.code == 0, result.stderr
    assert BEYOND_BMP in pdf_text(out)  # pypdf
    poppler = subprocess.run(["pdftotext", str(out), "-"], capture_output=True, text=True,
                             check=True, timeout=60).stdout  # fmt: skip
    assert BEYOND_BMP in poppler  # what copy and paste, and a screen reader, get

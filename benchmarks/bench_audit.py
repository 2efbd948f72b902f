"""Benchmark of the audit log: what recording one document costs (target: at most 1 ms).

Run:  python benchmarks/bench_audit.py [--folder DIR]

The database goes in a temporary folder on the same disk as the working directory (not /tmp,
which may be memory): a commit waits for the disk (synchronous=FULL), so the disk matters.
Figures go in the README's Speed section.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from discharge.audit import AUDIT_ENV, AuditLog, AuditRecord, count_pages, describe_pdf
from discharge.config import Config

ARGS = ["--procedure", "hsg", "--date", "2026-11-21", "--time", "10:30",
        "--patient", "Zoë Nguyễn", "--dob", "1990-02-01", "--mrn", "RX-104233",
        "--clinician", "Dr Amara Okafor"]  # fmt: skip


def median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1000


def describe_cost(runs: int = 300) -> tuple[float, float, int]:
    """sha256 + page count of a real PDF (what the worker / command adds before writing)."""
    from discharge.config import load_config
    from discharge.generate import make_pdf
    from discharge.request import parse_request

    config = load_config()
    request = parse_request(procedure="hsg", date="2026-11-21", patient="Zoë Nguyễn",
                            mrn="RX-104233", clinician="Dr Amara Okafor")  # fmt: skip
    document, pdf = make_pdf(request, config)
    times, page_times = [], []
    for _ in range(runs):
        start = time.perf_counter()
        describe_pdf(request, document, pdf)
        times.append(time.perf_counter() - start)
        start = time.perf_counter()
        count_pages(pdf)
        page_times.append(time.perf_counter() - start)
    return median_ms(times), median_ms(page_times), len(pdf)


def record_one(folder: Path, runs: int = 300) -> tuple[float, float]:
    """One record per transaction, as `generate` and `email` write: median and 95th centile."""
    os.environ[AUDIT_ENV] = str(folder / "one.sqlite3")
    entry = AuditRecord("made", procedure="hsg", mrn="RX-104233", patient_name="Zoë Nguyễn",
                        pdf_sha256="a" * 64, pages=2, clinician="Dr Amara Okafor")  # fmt: skip
    times = []
    with AuditLog.open(Config()) as audit:
        for _ in range(30):
            audit.record(entry)
        for i in range(runs):
            start = time.perf_counter()
            audit.record(replace(entry, mrn=f"RX-{i}"))
            times.append(time.perf_counter() - start)
    times.sort()
    return median_ms(times), times[int(len(times) * 0.95)] * 1000


def record_batch(folder: Path, rows: int = 10_000, per_commit: int = 64) -> float:
    """Many records per transaction, as `batch` writes them: milliseconds per record."""
    os.environ[AUDIT_ENV] = str(folder / "batch.sqlite3")
    entry = AuditRecord("made", procedure="hsg", patient_name="Zoë Nguyễn", pages=2,
                        pdf_sha256="a" * 64, channel="batch", batch_file="/x/day.csv")  # fmt: skip
    with AuditLog.open(Config()) as audit:
        start = time.perf_counter()
        for first in range(0, rows, per_commit):
            count = min(per_commit, rows - first)
            audit.record_many(
                replace(entry, mrn=f"RX-{first + i}", batch_row=first + i + 2) for i in range(count)
            )
        elapsed = time.perf_counter() - start
    return elapsed / rows * 1000


def open_cost(folder: Path, runs: int = 50) -> float:
    """Opening an existing log (each command does it once)."""
    os.environ[AUDIT_ENV] = str(folder / "one.sqlite3")
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        AuditLog.open(Config()).close()
        times.append(time.perf_counter() - start)
    return median_ms(times)


def verify_cost(folder: Path) -> tuple[int, float]:
    os.environ[AUDIT_ENV] = str(folder / "batch.sqlite3")
    with AuditLog.open(Config()) as audit:
        start = time.perf_counter()
        result = audit.verify()
        return result.records, time.perf_counter() - start


def import_cost(runs: int = 10) -> float:
    """What importing the audit module adds to a cold `generate` (sqlite3, mostly)."""
    code = (
        "import time; s = time.perf_counter(); import discharge.audit; "
        "print(time.perf_counter() - s)"
    )
    base = "import discharge.cli, discharge.generate, discharge.pdf.render"  # what generate loads
    # With bytecode caches, as an installed package has them.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    times = []
    for _ in range(runs + 1):
        out = subprocess.run([sys.executable, "-c", f"{base}; {code}"], capture_output=True,
                             text=True, check=True, env=env).stdout  # fmt: skip
        times.append(float(out))
    return median_ms(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path.cwd(),
                        help="where to put the temporary databases (default: here)")  # fmt: skip
    folder_arg = parser.parse_args().folder
    with tempfile.TemporaryDirectory(dir=folder_arg, prefix=".bench-audit-") as tmp:
        folder = Path(tmp)
        describe_ms, pages_ms, size = describe_cost()
        one_ms, one_p95 = record_one(folder)
        batch_ms = record_batch(folder)
        opened = open_cost(folder)
        verified, verify_s = verify_cost(folder)
    imported = import_cost()
    print(f"describe a PDF ({size // 1024} KB: sha256 + pages)  {describe_ms:.3f} ms"
          f"  (page count alone {pages_ms * 1000:.0f} µs)")  # fmt: skip
    print(f"record one document, own transaction   {one_ms:.3f} ms (95th centile {one_p95:.3f})")
    print(f"record in a batch, 64 per transaction   {batch_ms:.3f} ms a document")
    print(f"open the log (once per command)         {opened:.3f} ms")
    print(f"import discharge.audit (cold)           {imported:.1f} ms")
    print(f"verify {verified:,} records                 {verify_s:.2f} s")


if __name__ == "__main__":
    main()

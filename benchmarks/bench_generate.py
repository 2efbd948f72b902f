"""Benchmark of one document: in-process render time, cold command time and memory, PDF size.

Run:  python benchmarks/bench_generate.py        (figures go in the README's Speed section)
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NOTES = "Tubes open on both sides. Call if any fever.\nReview in clinic in 6 weeks."
ARGS = ["--procedure", "hsg", "--date", "2026-11-21", "--time", "10:30",
        "--patient", "Zoë Nguyễn", "--dob", "1990-02-01", "--mrn", "RX-104233",
        "--clinician", "Dr Amara Okafor", "--notes", NOTES]  # fmt: skip


def in_process(runs: int = 300, warmup: int = 30) -> tuple[float, int, int]:
    from pypdf import PdfReader

    from discharge.config import load_config
    from discharge.generate import make_pdf
    from discharge.request import parse_request

    config = load_config()
    names = [f"Patient {i}" for i in range(runs + warmup)]  # a different patient each time

    def one(name: str) -> bytes:
        request = parse_request(procedure="hsg", date="2026-11-21", time="10:30", patient=name,
                                dob="1990-02-01", mrn="RX-104233", notes=NOTES)  # fmt: skip
        return make_pdf(request, config)[1]

    for name in names[:warmup]:
        pdf = one(name)
    times = []
    for name in names[warmup:]:
        start = time.perf_counter()
        pdf = one(name)
        times.append(time.perf_counter() - start)
    import io

    pages = len(PdfReader(io.BytesIO(pdf)).pages)
    return statistics.median(times) * 1000, len(pdf), pages


def cold_command(runs: int = 10) -> tuple[float, float]:
    """Median wall time and peak RSS of `discharge generate` started as a new process."""
    walls = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.pdf"
        command = [sys.executable, "-m", "discharge", "generate", *ARGS, "-o", str(out)]
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            walls.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KB on Linux
    return statistics.median(walls), peak


def main() -> None:
    median_ms, size, pages = in_process()
    wall, rss = cold_command()
    script = Path(sys.executable).with_name("discharge")
    print(f"render one document in-process: {median_ms:.1f} ms median ({pages} pages)")
    print(f"cold `discharge generate`: {wall * 1000:.0f} ms median wall, {rss:.0f} MB peak RSS")
    print(f"PDF size: {size / 1024:.1f} KB (fonts embedded, subset)")
    if script.exists():
        start = time.perf_counter()
        subprocess.run([str(script), "--help"], check=True, capture_output=True)
        print(f"`discharge --help`: {(time.perf_counter() - start) * 1000:.0f} ms")


if __name__ == "__main__":
    main()

"""Benchmark of one document: in-process render time, cold command time and memory, PDF size.

Run:  python benchmarks/bench_generate.py        (figures go in the README's Speed section)
"""

from __future__ import annotations

import os
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


def in_process(runs: int = 300, warmup: int = 30) -> tuple[float, float, int, int]:
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
    times, cpu = [], []
    for name in names[warmup:]:
        start, start_cpu = time.perf_counter(), time.process_time()
        pdf = one(name)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    import io

    pages = len(PdfReader(io.BytesIO(pdf)).pages)
    return statistics.median(times) * 1000, statistics.median(cpu) * 1000, len(pdf), pages


def cold_command(runs: int = 20) -> tuple[list[float], list[float], float, float]:
    """Wall and CPU times and peak RSS of `discharge generate` started as a new process, each
    run a new Python; the installation's cache (discharge/cache.py) is warm after the first
    run, as it is on a clinic's computer after its first document. Also the first run, with
    an empty cache."""
    import compileall

    import discharge

    # An installed wheel has its modules compiled (pip does it); a checkout may not, when
    # PYTHONDONTWRITEBYTECODE is set: compile them, or every run compiles them again.
    compileall.compile_dir(Path(discharge.__file__).parent, quiet=1)
    walls, cpus = [], []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.pdf"
        env = dict(os.environ, DISCHARGE_CACHE_DIR=str(Path(tmp) / "cache"))
        command = [sys.executable, "-m", "discharge", "generate", *ARGS, "-o", str(out)]
        for _ in range(runs + 1):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
            walls.append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KB on Linux
    return walls[1:], cpus[1:], walls[0], peak


def spread(values: list[float]) -> str:
    ordered = sorted(values)
    quart = len(ordered) // 4
    return (f"{statistics.median(ordered) * 1000:.0f} ms median (middle half "
            f"{ordered[quart] * 1000:.0f}-{ordered[-quart - 1] * 1000:.0f}, "
            f"min {ordered[0] * 1000:.0f}, max {ordered[-1] * 1000:.0f})")  # fmt: skip


def main() -> None:
    print(f"load average before: {os.getloadavg()[0]:.1f} (2 cores: above 2, waiting for CPU)")
    median_ms, cpu_ms, size, pages = in_process()
    walls, cpus, first, rss = cold_command()
    script = Path(sys.executable).with_name("discharge")
    print(f"render one document in-process: {median_ms:.1f} ms median wall, {cpu_ms:.1f} ms CPU "
          f"({pages} pages)")  # fmt: skip
    print(f"cold `discharge generate`, wall: {spread(walls)}")
    print(f"cold `discharge generate`, CPU:  {spread(cpus)}")
    print(f"  first run, empty cache: {first * 1000:.0f} ms wall; peak RSS {rss:.0f} MB")
    print(f"PDF size: {size / 1024:.1f} KB (fonts embedded, subset)")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    if script.exists():
        start = time.perf_counter()
        subprocess.run([str(script), "--help"], check=True, capture_output=True)
        print(f"`discharge --help`: {(time.perf_counter() - start) * 1000:.0f} ms")


if __name__ == "__main__":
    main()

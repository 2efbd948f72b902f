"""Benchmark of `discharge batch`: documents per second and peak memory of the whole run.

Run:  python benchmarks/bench_batch.py                   10,000 rows, --jobs 2
      python benchmarks/bench_batch.py --rows 100000     (about 3.5 GB of PDFs in a temp dir)
      python benchmarks/bench_batch.py --scale           10,000 then 100,000: memory growth

Targets (issue 14, on a 2-core machine): >= 200 documents/second, peak memory <= 250 MB, and
peak memory for 100,000 rows no more than 10% above that for 10,000.

Memory is reported three ways, sampled from /proc every 50 ms over the process tree:
  - tree RSS: the sum of every process's resident memory (counts pages the forked workers
    share with the parent once per process, so it overstates the real use);
  - tree PSS: the same with shared pages divided among the processes that share them (the
    memory the run really costs the machine);
  - largest process: getrusage(RUSAGE_CHILDREN).ru_maxrss, the biggest single process.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

FIRST = ["Ann", "Zoë", "Amara", "Siobhán", "Mei", "Fatima", "Olga", "Lucía", "Priya", "Kate"]
LAST = ["Nguyễn", "Okafor", "O'Neil", "Kowalski", "Smith", "García", "Müller", "Khan", "Lee"]
NOTES = [
    "",
    "",
    "Tubes open on both sides. Call if any fever.",
    '"Review in clinic in 6 weeks.\nBring your medication list; ask for Dr Okafor."',
]


def write_schedule(path: Path, rows: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("patient_name,procedure,date,time,dob,mrn,clinician,notes,email\r\n")
        for i in range(rows):
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            day = f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            at = f"{rng.randint(8, 17)}:{rng.choice(['00', '15', '30', '45'])}"
            dob = f"{rng.randint(1960, 2004)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            handle.write(
                f'"{name}",{rng.choice(["hsg", "miscarriage"])},{day},{at},{dob},'
                f"RX-{100000 + i},Dr Amara Okafor,{rng.choice(NOTES)},p{i}@example.org\r\n"
            )


@dataclass
class Sample:
    rss_kb: int = 0
    pss_kb: int = 0
    processes: int = 0


def _children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(c) for c in handle.read().split()]
    except OSError:
        pass
    return found


def _memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in KB of one process, from smaps_rollup."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def sample_tree(root: int) -> Sample:
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo += _children(pid)
    total = Sample(processes=len(pids))
    for pid in pids:
        rss, pss = _memory(pid)
        total.rss_kb += rss
        total.pss_kb += pss
    return total


@dataclass
class Result:
    rows: int
    seconds: float
    tree_rss_mb: float
    tree_pss_mb: float
    largest_mb: float
    summary: str
    cpu_seconds: float  # the whole process tree's (parent and workers)
    load: float  # the machine's load average, at the start and end of the run


def run(rows: int, jobs: int, keep: bool) -> Result:
    tmp = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        schedule = tmp / "schedule.csv"
        write_schedule(schedule, rows)
        command = [sys.executable, "-m", "discharge", "batch", str(schedule),
                   "--out-dir", str(tmp / "out"), "--jobs", str(jobs)]  # fmt: skip
        env = {k: v for k, v in os.environ.items()  # DISCHARGE_SPEEDUPS=0: the plain path
               if not k.startswith("DISCHARGE_") or k == "DISCHARGE_SPEEDUPS"}  # fmt: skip
        # Its audit log and clinic data in its own folder: never the user's real ones.
        env.update(
            DISCHARGE_AUDIT_DB=str(tmp / "audit.sqlite3"), DISCHARGE_DATA_DIR=str(tmp / "data")
        )
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        before, cpu_before = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env)  # fmt: skip
        peak = Sample()
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                now = sample_tree(proc.pid)
                peak.rss_kb = max(peak.rss_kb, now.rss_kb)
                peak.pss_kb = max(peak.pss_kb, now.pss_kb)
                done.wait(0.05)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        stdout, stderr = proc.communicate()
        seconds = time.perf_counter() - start
        done.set()
        watcher.join()
        if proc.returncode != 0:
            raise SystemExit(f"batch failed ({proc.returncode}):\n{stderr[-2000:]}")
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        largest, cpu = usage.ru_maxrss, usage.ru_utime + usage.ru_stime - cpu_before
        load = (load_before + os.getloadavg()[0]) / 2
        if largest == before:
            largest = 0  # an earlier, bigger run holds the maximum: not this run's figure
        return Result(rows, seconds, peak.rss_kb / 1024, peak.pss_kb / 1024, largest / 1024,
                      stdout.strip(), cpu, load)  # fmt: skip
    finally:
        if keep:
            print(f"(kept {tmp})")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def report(result: Result) -> None:
    largest = f"{result.largest_mb:.0f} MB" if result.largest_mb else "n/a (see first run)"
    print(f"{result.rows:,} rows: {result.rows / result.seconds:.0f} documents/s "
          f"({result.seconds:.1f} s wall; load average {result.load:.1f} on "
          f"{os.cpu_count()} cores)")  # fmt: skip
    print(
        f"  CPU: {result.cpu_seconds / result.rows * 1000:.1f} ms a document, parent and "
        f"workers together (an idle machine makes at most "
        f"{result.rows / result.cpu_seconds * (os.cpu_count() or 1):.0f} documents/s)"
    )
    print(f"  peak memory: tree RSS {result.tree_rss_mb:.0f} MB, tree PSS "
          f"{result.tree_pss_mb:.0f} MB, largest process {largest}")  # fmt: skip
    print(f"  {result.summary}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--scale", action="store_true", help="10,000 then 100,000 rows")
    parser.add_argument("--keep", action="store_true", help="keep the output folder")
    args = parser.parse_args()
    if not Path("/proc/self/smaps_rollup").exists():
        print("note: no /proc/*/smaps_rollup here: tree figures will read 0")
    sizes = [10_000, 100_000] if args.scale else [args.rows]
    results = []
    for rows in sizes:
        results.append(run(rows, args.jobs, args.keep))
        report(results[-1])
    if len(results) == 2:
        small, big = results
        for label, a, b in (("tree RSS", small.tree_rss_mb, big.tree_rss_mb),
                            ("tree PSS", small.tree_pss_mb, big.tree_pss_mb)):  # fmt: skip
            print(f"memory growth 10k -> 100k ({label}): {(b / a - 1) * 100:+.1f}%")


if __name__ == "__main__":
    main()

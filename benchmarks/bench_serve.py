"""Benchmark of `discharge serve`: a PDF from the form, one nurse and eight at once.

Starts the real server (waitress, warm: it renders every procedure once at start-up, and this
script sends 30 more requests first), then POSTs the form as a browser would, a new patient
each time. "At the server" is the application's own time (its Server-Timing header: from the
request reaching Flask to the PDF being ready, including any wait for the render lock); "at the
client" adds HTTP on loopback.

Run:  python benchmarks/bench_serve.py [--requests 300] [--clients 8]
Targets (issue 11): median <= 30 ms at the server; p95 <= 100 ms with 8 concurrent clients.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

NOTES = "Tubes open on both sides. Call if any fever.\nReview in clinic in 6 weeks."


class Nurse:
    """One browser: its own connection (kept alive), session cookie and CSRF token."""

    def __init__(self, host: str, port: int) -> None:
        self.conn = http.client.HTTPConnection(host, port, timeout=60)
        self.conn.request("GET", "/")
        page = self.conn.getresponse()
        html = page.read().decode()
        self.cookie = page.headers["Set-Cookie"].split(";", 1)[0]
        match = re.search(r'name="csrf_token" value="([^"]+)"', html)
        assert match
        self.token = match.group(1)
        self.origin = f"http://{host}:{port}"

    def make_pdf(self, n: int) -> tuple[float, float]:
        form = {"procedure": "hsg", "date": "2026-11-21", "time": "10:30",
                "patient": f"Patient {n}", "dob": "1990-02-01", "mrn": f"RX-{n:06d}",
                "clinician": "Dr Amara Okafor", "notes": NOTES, "paper": "a4",
                "csrf_token": self.token}  # fmt: skip
        body = urllib.parse.urlencode(form)
        headers = {"Cookie": self.cookie, "Origin": self.origin,
                   "Content-Type": "application/x-www-form-urlencoded"}  # fmt: skip
        start = time.perf_counter()
        self.conn.request("POST", "/", body, headers)
        response = self.conn.getresponse()
        data = response.read()
        wall = (time.perf_counter() - start) * 1000
        assert response.status == 200 and data.startswith(b"%PDF"), response.status
        server = float(response.headers["Server-Timing"].split("dur=")[1])
        return server, wall


def tree_cpu_seconds(root: int) -> float | None:
    """User + system CPU of a process and all its descendants so far (Linux /proc), else None.

    On a shared machine, latency with 8 clients mostly measures the neighbours; the CPU the
    server spends per PDF does not, and gives the latency an idle machine would show.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        ticks[pid] = int(fields[11]) + int(fields[12])  # utime + stime of the living process
    total = 0
    for pid in ticks:
        ancestor = pid
        while ancestor not in (0, 1, root) and ancestor in parents:
            ancestor = parents[ancestor]
        if ancestor == root:
            total += ticks[pid]
    return total / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def report(name: str, samples: list[tuple[float, float]]) -> None:
    server = [s for s, _ in samples]
    wall = [w for _, w in samples]
    print(f"{name}: {len(samples)} PDFs")
    print(f"  at the server: median {statistics.median(server):5.1f} ms, "
          f"p95 {percentile(server, 95):5.1f} ms, max {max(server):5.1f} ms")  # fmt: skip
    print(f"  at the client: median {statistics.median(wall):5.1f} ms, "
          f"p95 {percentile(wall, 95):5.1f} ms, max {max(wall):5.1f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", help="discharge serve --workers (default: its own)")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISCHARGE_")}
    # Its audit log and clinic data in a folder of its own: never the user's real ones.
    folder = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    env.update(DISCHARGE_AUDIT_DB=str(folder / "audit.sqlite3"), DISCHARGE_DATA_DIR=str(folder))
    server = subprocess.Popen(
        [sys.executable, "-m", "discharge", "serve", "--port", "0",
         *(["--workers", args.workers] if args.workers else [])],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        url = urllib.parse.urlparse(server.stdout.readline().split()[-1])
        host, port = url.hostname or "127.0.0.1", url.port or 80
        one = Nurse(host, port)
        for n in range(30):
            one.make_pdf(n)
        report("one nurse", [one.make_pdf(n) for n in range(args.requests)])

        nurses = [Nurse(host, port) for _ in range(args.clients)]
        per_client = max(1, args.requests // args.clients)
        samples: list[tuple[float, float]] = []
        lock = threading.Lock()
        barrier = threading.Barrier(args.clients)

        def run(index: int, nurse: Nurse) -> None:
            barrier.wait()
            mine = [nurse.make_pdf(index * 100_000 + n) for n in range(per_client)]
            with lock:
                samples.extend(mine)

        threads = [threading.Thread(target=run, args=(i, n)) for i, n in enumerate(nurses)]
        cpu_before = tree_cpu_seconds(server.pid)
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - began
        report(f"{args.clients} nurses at once", samples)
        cores = os.cpu_count() or 1
        print(f"  throughput: {len(samples) / elapsed:.0f} PDFs/s on {cores} cores")
        cpu_after = tree_cpu_seconds(server.pid)
        if cpu_before is not None and cpu_after is not None:
            per_pdf = (cpu_after - cpu_before) / len(samples) * 1000
            # The GIL: with --workers 0 the PDFs are drawn one at a time, on one core.
            parallel = cores if args.workers is None else max(1, min(cores, int(args.workers)))
            idle = args.clients * per_pdf / parallel
            print(f"  server CPU per PDF (all its processes): {per_pdf:.1f} ms; on an idle "
                  f"{cores}-core machine {args.clients} clients would wait about {idle:.0f} ms "
                  f"each on average")  # fmt: skip
            print(f"  machine load average during the run: {os.getloadavg()[0]:.1f}")
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

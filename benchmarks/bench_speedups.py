"""What each speed trick (discharge/speedups.py) is worth: the render and a cold start with
every trick on, every trick off (``DISCHARGE_SPEEDUPS=0``), and each trick off on its own.

Run:  python benchmarks/bench_speedups.py [--rounds 3] [--renders 200] [--colds 8]
      python benchmarks/bench_speedups.py --instructions   (valgrind; the load does not move it)

Each setting runs in its own new processes, the settings in turns, ``--rounds`` times, so a
change in the machine's load falls on all of them alike; each figure is CPU time (the load
moves it less than wall time), the median of the rounds' medians, with their range. The
installation's cache is warm (filled first).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# The instruction counter is bench_instructions.py's (this folder is on sys.path when a script
# in it runs).
from bench_instructions import instructions

ARGS = ["--procedure", "hsg", "--date", "2026-11-21", "--time", "10:30",
        "--patient", "Zoë Nguyễn", "--dob", "1990-02-01", "--mrn", "RX-104233",
        "--clinician", "Dr Amara Okafor", "--notes",
        "Tubes open on both sides. Call if any fever.\nReview in clinic in 6 weeks."]  # fmt: skip

# Turns one trick off as if its private names were gone, before anything else is imported.
_OFF = """
import sys
from discharge import speedups
off = sys.argv.pop(1)
if off:
    speedups._TRICKS[off] = (speedups._TRICKS[off][0], lambda: ["(turned off)"])
"""

_RENDER = (
    _OFF
    + """
import time
from discharge.config import load_config
from discharge.generate import make_pdf
from discharge.request import parse_request
config = load_config()
notes = "Tubes open on both sides. Call if any fever.\\nReview in clinic in 6 weeks."
renders, warmup, times = int(sys.argv[1]), int(sys.argv[2]), []
for i in range(warmup + renders):  # as bench_generate.py: a new patient each time
    request = parse_request(procedure="hsg", date="2026-11-21", time="10:30",
                            patient=f"Patient {i}", dob="1990-02-01", mrn="RX-104233",
                            notes=notes)
    start = time.process_time()  # CPU: the machine's load moves it less than wall time
    make_pdf(request, config)
    times.append(time.process_time() - start)
times = sorted(times[warmup:]) or [0]
print(times[len(times) // 2] * 1000)
"""
)

_COLD = (
    _OFF
    + """
from discharge.__main__ import run
sys.argv = ["discharge", *sys.argv[1:]]
run()
"""
)


def render_ms(trick: str, renders: int, env: dict[str, str]) -> float:
    proc = subprocess.run([sys.executable, "-c", _RENDER, trick, str(renders), "30"],
                          capture_output=True, text=True, check=True, env=env)  # fmt: skip
    return float(proc.stdout.split()[-1])


def cold_s(trick: str, colds: int, out: Path, env: dict[str, str]) -> float:
    cpus = []  # the new process's CPU time (user + system)
    command = [sys.executable, "-c", _COLD, trick, "generate", *ARGS, "-o", str(out)]
    for _ in range(colds):
        start = os.times()
        subprocess.run(command, check=True, capture_output=True, env=env)
        end = os.times()
        cpus.append(end.children_user + end.children_system
                    - start.children_user - start.children_system)  # fmt: skip
    return statistics.median(cpus)


def count(settings: list[str], base: dict[str, str], out: Path) -> None:
    """Millions of instructions: a cold generate, and a document rendered in a warm process
    (the difference between rendering 5 and 15, divided by 10), per setting."""
    print(f"{'setting':<22} {'cold generate':>14} {'vs on':>7} {'warm document':>14} {'vs on':>7}")
    first: tuple[float, float] | None = None
    for setting in settings:
        env = dict(base, PYTHONHASHSEED="0")
        if setting == "ALL":
            env["DISCHARGE_SPEEDUPS"] = "0"
        trick = "" if setting == "ALL" else setting
        cold = instructions([sys.executable, "-c", _COLD, trick, "generate", *ARGS, "-o", str(out)],
                            env) / 1e6  # fmt: skip
        few = instructions([sys.executable, "-c", _RENDER, trick, "0", "5"], env)
        more = instructions([sys.executable, "-c", _RENDER, trick, "10", "5"], env)
        warm = (more - few) / 10 / 1e6
        first = first or (cold, warm)
        name = {"": "every trick on", "ALL": "every trick off"}.get(setting, f"{setting} off")
        print(f"{name:<22} {cold:>11.0f} Mi {(cold / first[0] - 1) * 100:>+6.0f}%"
              f" {warm:>11.1f} Mi {(warm / first[1] - 1) * 100:>+6.0f}%", flush=True)  # fmt: skip


def main() -> None:
    from discharge import speedups

    parser = argparse.ArgumentParser()
    parser.add_argument("--instructions", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--renders", type=int, default=200)
    parser.add_argument("--colds", type=int, default=8)
    options = parser.parse_args()
    settings = ["", "ALL", *speedups.TRICKS]  # "": every trick on; "ALL": DISCHARGE_SPEEDUPS=0
    renders: dict[str, list[float]] = {s: [] for s in settings}
    colds: dict[str, list[float]] = {s: [] for s in settings}
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        base = dict(os.environ, DISCHARGE_CACHE_DIR=str(Path(tmp) / "cache"),
                    DISCHARGE_AUDIT_DB=str(Path(tmp) / "audit.sqlite3"))  # fmt: skip
        out = Path(tmp) / "out.pdf"
        cold_s("", 1, out, base)  # fills the cache
        if options.instructions:
            count(settings, base, out)
            return
        for _ in range(options.rounds):
            for setting in settings:
                env = dict(base, DISCHARGE_SPEEDUPS="0") if setting == "ALL" else base
                trick = "" if setting == "ALL" else setting
                renders[setting].append(render_ms(trick, options.renders, env))
                colds[setting].append(cold_s(trick, options.colds, out, env))
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    on_render = statistics.median(renders[""])
    on_cold = statistics.median(colds[""])
    head = f"{'render CPU ms (range)':>22} {'vs on':>7} {'cold CPU s (range)':>22} {'vs on':>7}"
    print(f"{'setting':<22} {head}")
    for setting in settings:
        name = {"": "every trick on", "ALL": "every trick off"}.get(setting, f"{setting} off")
        r, c = renders[setting], colds[setting]
        print(
            f"{name:<22} {statistics.median(r):>8.2f} ({min(r):.2f}-{max(r):.2f})"
            f" {(statistics.median(r) / on_render - 1) * 100:>+6.0f}%"
            f" {statistics.median(c):>8.3f} ({min(c):.3f}-{max(c):.3f})"
            f" {(statistics.median(c) / on_cold - 1) * 100:>+6.0f}%"
        )


if __name__ == "__main__":
    main()

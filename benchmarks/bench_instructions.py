"""Instructions, not seconds: the same figure on a busy machine as on an idle one.

Timings on a shared virtual machine move with its load (the same code measured 5.5 to 7.2 ms a
document in one afternoon). Counting the instructions a run executes (valgrind's callgrind) does
not, so a change that saves 3% shows as 3%. Use it to compare two versions; use the other
benchmarks for the figures a user sees.

Run:  python benchmarks/bench_instructions.py        (needs valgrind: apt-get install valgrind)

Reports, in millions of instructions (Mi):
  - cold `discharge generate` (a new process, the installation's cache warm);
  - one batch document in a warm worker: the difference between rendering 60 and 100 rows of a
    schedule in one process, divided by 40.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ARGS = ["--procedure", "hsg", "--date", "2026-11-21", "--time", "10:30",
        "--patient", "Zoë Nguyễn", "--dob", "1990-02-01", "--mrn", "RX-104233",
        "--notes", "Tubes open on both sides.\nReview in clinic in 6 weeks."]  # fmt: skip

WORKER = """
import sys
from pathlib import Path
from discharge.config import load_config
from discharge.batch import run
from discharge.batch.schedule import open_schedule, read_rows
config = load_config()
out = Path(sys.argv[2])
run.prepare_renderer(config, out)
rows = read_rows(open_schedule(Path(sys.argv[1])), config, None)
tasks = [run.RenderTask(r.row, f"r{r.row}.pdf", r.request) for r, _ in zip(rows, range(100))]
for task in tasks[: 60 + int(sys.argv[3])]:
    run.render_row(task)
"""


def instructions(command: list[str], env: dict[str, str]) -> int:
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *command],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    match = re.search(r"Collected : (\d+)", proc.stderr)
    if not match:
        raise SystemExit(f"no instruction count from valgrind:\n{proc.stderr[-2000:]}")
    return int(match.group(1))


def main() -> None:
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    import compileall

    import discharge

    compileall.compile_dir(Path(discharge.__file__).parent, quiet=1)  # as an installed wheel
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_batch import write_schedule

    env = dict(os.environ, PYTHONHASHSEED="0")  # the same dictionaries, run after run
    with tempfile.TemporaryDirectory() as tmp:
        env["DISCHARGE_CACHE_DIR"] = str(Path(tmp) / "cache")
        env["DISCHARGE_AUDIT_DB"] = str(Path(tmp) / "audit.sqlite3")
        out = Path(tmp) / "out.pdf"
        generate = [sys.executable, "-m", "discharge", "generate", *ARGS, "-o", str(out)]
        subprocess.run(generate, check=True, capture_output=True, env=env)  # fills the cache
        cold = instructions(generate, env)
        schedule = Path(tmp) / "schedule.csv"
        write_schedule(schedule, 100)
        pdfs = Path(tmp) / "pdfs"
        pdfs.mkdir()
        worker = [sys.executable, "-c", WORKER, str(schedule), str(pdfs)]
        base = instructions([*worker, "0"], env)
        more = instructions([*worker, "40"], env)
    print(f"cold `discharge generate`: {cold / 1e6:.0f} Mi")
    print(f"one batch document in a warm worker: {(more - base) / 40 / 1e6:.1f} Mi")


if __name__ == "__main__":
    main()

"""The long run of the quoting-accident property (issue 18, finding 1).

Run:  python benchmarks/bench_quoting.py        100,000 rows read (+50,000 well-formed), 300 batches
      python benchmarks/bench_quoting.py --rows 1000000 --batches 2000 --seed 7

Every patient's name, hospital number, clinician, notes, email and date of birth carry that
row's tag (``tests/quoting_accidents.py``); each schedule has one to three quoting accidents
(a quote left open, a closing quote dropped or doubled, a stray quote, a quote removed) at any
column of any row. Two levels:

  - read: every schedule read as `discharge batch`, `--check` and the web upload read it;
    no row made may hold another row's tag, and no tag may be in two rows;
  - well-formed: half as many rows again, quoted as a spreadsheet quotes them (notes over
    lines, with delimiters, quotes and dates in them): none may be stopped for a quote;
  - batches: a smaller number of schedules, with the accidents that swallow rows, made into
    real PDFs by `discharge batch` (in this process, --jobs 1); each PDF's text is searched.

Prints the counts and the time; exits 1 at the first schedule that breaks the property,
printing it.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from discharge.cli import main as discharge_main  # noqa: E402
from discharge.config import Config  # noqa: E402
from tests.helpers import pdf_text  # noqa: E402
from tests.quoting_accidents import (  # noqa: E402
    check_one_patient_each,
    read_back,
    tagged_schedule,
    tags_in,
    write,
)


def read_level(rows: int, seed: int, folder: Path) -> None:
    rnd = random.Random(seed)
    config = Config()
    kinds: Counter[str] = Counter()
    done = schedules = made = stopped = other = 0
    began = time.perf_counter()
    while done < rows:
        tagged = tagged_schedule(rnd)
        found = read_back(write(tagged.text, folder / "s.csv"), config)
        try:
            check_one_patient_each(found.made, "request")
        except AssertionError as exc:
            sys.exit(f"FAILED: {exc}\naccidents: {tagged.accidents}\n{tagged.text!r}")
        kinds.update(kind for kind, _, _ in tagged.accidents)
        done += tagged.rows
        schedules += 1
        made += len(found.made)
        quoting = sum("quote" in message for message in found.errors.values())
        stopped += quoting
        other += len(found.errors) - quoting
    took = time.perf_counter() - began
    accidents = ", ".join(f"{k} {n:,}" for k, n in sorted(kinds.items()))
    print(f"read: {schedules:,} schedules, {done:,} rows, {sum(kinds.values()):,} accidents "
          f"({accidents})")  # fmt: skip
    print(f"      {made:,} rows made, {stopped:,} stopped for a quote, {other:,} other errors; "
          "0 rows holding another row's details")  # fmt: skip
    print(f"      {took:.1f} s ({done / took:,.0f} rows/s)")


def well_formed(rows: int, seed: int, folder: Path) -> None:
    """The other side: schedules quoted as a spreadsheet quotes them, notes over lines with
    delimiters, quotes and dates in them; no row may be taken for a quote."""
    rnd = random.Random(seed)
    config = Config()
    done = stopped = 0
    began = time.perf_counter()
    while done < rows:
        tagged = tagged_schedule(rnd, kinds=(), breaks=True)
        found = read_back(write(tagged.text, folder / "w.csv"), config)
        stopped += sum("quote" in message for message in found.errors.values())
        done += tagged.rows
    took = time.perf_counter() - began
    print(f"well-formed: {done:,} rows (notes over lines), {stopped:,} stopped for a quote; "
          f"{took:.1f} s")  # fmt: skip


def batch_level(batches: int, seed: int, folder: Path) -> None:
    rnd = random.Random(seed)
    pdfs = rows = 0
    began = time.perf_counter()
    for number in range(batches):
        kinds = ("unclosed", "closing dropped", "doubled")
        tagged = tagged_schedule(rnd, rows=4, kinds=kinds, breaks=True, hit="notes")
        path = write(tagged.text, folder / f"s{number}.csv")
        out = folder / f"out{number}"
        quiet = contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO())
        with quiet[0], quiet[1], contextlib.suppress(SystemExit):
            discharge_main(["batch", str(path), "--out-dir", str(out), "--jobs", "1"])
        with (out / "manifest.csv").open(encoding="utf-8-sig", newline="") as handle:
            entries = list(csv.DictReader(handle))
        in_pdfs = {
            int(e["row"]): tags_in([pdf_text(out / e["file"])])
            for e in entries
            if e["status"] == "ok"
        }
        try:
            check_one_patient_each(in_pdfs, "PDF")
        except AssertionError as exc:
            sys.exit(f"FAILED: {exc}\naccidents: {tagged.accidents}\n{tagged.text!r}")
        pdfs += len(in_pdfs)
        rows += tagged.rows
    took = time.perf_counter() - began
    print(f"batches: {batches:,} schedules, {rows:,} rows, {pdfs:,} PDFs made and searched; "
          f"0 PDFs holding another row's details; {took:.1f} s")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows to read (default 100,000)")
    parser.add_argument("--batches", type=int, default=300, help="schedules made into PDFs")
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="discharge-quoting-") as name:
        read_level(args.rows, args.seed, Path(name))
        well_formed(args.rows // 2, args.seed, Path(name))
        batch_level(args.batches, args.seed, Path(name))


if __name__ == "__main__":
    main()

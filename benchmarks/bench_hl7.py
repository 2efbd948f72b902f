"""Benchmark of `discharge listen`: bookings per second through the MLLP listener.

Run:  python benchmarks/bench_hl7.py                        1,000 bookings over 4 connections
      python benchmarks/bench_hl7.py --bookings 5000 --connections 1 --jobs 1

The listener runs as a real `discharge listen` process on loopback, with its own audit log,
clinic data folder and ready folder in a temporary directory. Each booking is a new SIU^S12
(a new patient, a new appointment), sent with python-hl7's own MLLP client, acknowledged only
once its PDF is on disk and recorded: the rate is PDFs made, flushed, audited, journaled and
acknowledged per second. The load average is printed beside it (the machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hl7.mllp import open_hl7_connection

SETTINGS = '[hl7]\npatient_id_type = "MR"\n[hl7.procedures]\n"HSG" = "hsg"\n'
FIRST = ["Ann", "Zoë", "Amara", "Siobhán", "Mei", "Fatima", "Olga", "Lucía", "Priya", "Kate"]
LAST = ["Nguyễn", "Okafor", "O'Neil", "Kowalski", "Smith", "García", "Müller", "Khan", "Lee"]


def booking(n: int) -> bytes:
    start = f"2027{1 + n % 12:02d}{1 + n % 28:02d}{8 + n % 9:02d}30"
    segments = [
        f"MSH|^~\\&|RIS|NORTHGATE|DISCHARGE|CLINIC|20261120101500||SIU^S12^SIU_S12|B{n}|P|2.5.1"
        "||||||UNICODE UTF-8",
        f"SCH|P{n}|F{n}|||||HSG^Hysterosalpingogram||||^^^{start}",
        f"PID|1||{900000 + n}^^^NORTHGATE^MR||{LAST[n % len(LAST)]}^{FIRST[n % len(FIRST)]}"
        f"||19900201|F|||||^NET^Internet^patient{n}@example.org",
        "RGS|1",
        "AIS|1||HSG^Hysterosalpingogram",
        "AIP|1||4711^Okafor^Amara^^^Dr|RADIOLOGIST",
    ]
    return ("\r".join(segments) + "\r").encode("utf-8")


def send(port: int, frames: list[bytes]) -> list[bytes]:
    async def exchange() -> list[bytes]:
        reader, writer = await open_hl7_connection("127.0.0.1", port)
        replies = []
        for frame in frames:
            writer.writeblock(frame)
            await writer.drain()
            replies.append(await reader.readblock())
        writer.close()
        return replies

    return asyncio.run(exchange())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bookings", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=None, help="the listener's --jobs")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-hl7-"))
    try:
        config = folder / "clinic.toml"
        config.write_text(SETTINGS, encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("DISCHARGE_")}
        env.update(
            DISCHARGE_AUDIT_DB=str(folder / "audit.sqlite3"),
            DISCHARGE_DATA_DIR=str(folder / "data"),
            PYTHONUNBUFFERED="1",
        )
        command = [sys.executable, "-m", "discharge", "listen", "--port", "0", "--out-dir",
                   str(folder / "out"), "--config", str(config)]  # fmt: skip
        if args.jobs:
            command += ["--jobs", str(args.jobs)]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
        )
        assert process.stdout is not None
        port = 0
        for line in process.stdout:
            if line.startswith("Listening for HL7"):
                port = int(line.split(":")[1].split(";")[0])
                break
        if not port:
            raise SystemExit("the listener did not start")
        # Its one line a message is read and dropped, so its pipe never fills.
        threading.Thread(target=process.stdout.read, daemon=True).start()
        send(port, [booking(-1)])  # warm: the first PDF loads what the workers had not
        frames = [booking(n) for n in range(args.bookings)]
        load = os.getloadavg()[0]
        began = time.perf_counter()
        with ThreadPoolExecutor(args.connections) as senders:
            parts = list(senders.map(lambda c: send(port, frames[c :: args.connections]),
                                     range(args.connections)))  # fmt: skip
        seconds = time.perf_counter() - began
        replies = [reply for part in parts for reply in part]
        accepted = sum(b"MSA|AA|" in reply for reply in replies)
        process.terminate()
        process.wait(timeout=60)
        print(
            f"{args.bookings} bookings over {args.connections} connection(s): {seconds:.1f} s, "
            f"{args.bookings / seconds:.1f} bookings/s ({accepted} AA); load average "
            f"{load:.1f} before, {os.getloadavg()[0]:.1f} after, {os.cpu_count()} cores"
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

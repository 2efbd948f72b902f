"""The MLLP server of ``discharge listen``: python-hl7's asyncio streams, one message at a time.

Each connection is read frame by frame (VT ... FS CR); every frame is handed to the ready
folder in one worker thread (so messages are done in the order they came, and the event loop
keeps accepting other connections meanwhile) and its acknowledgement written back. A frame
that is not HL7 is answered with AR; a client that disconnects mid-frame or sends an
oversized frame loses only its own connection; nothing a client sends stops the listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from hl7.mllp import InvalidBlockError, start_hl7_server

from discharge.hl7.sheets import ReadyFolder
from discharge.hl7.siu import REJECT, SEGMENT_SEQUENCE, Problem, decode_frame, make_ack

LOG = logging.getLogger("discharge.listen")
# Far above any scheduling message (a few kilobytes): a frame that never ends is cut here.
FRAME_LIMIT = 1024 * 1024
# A connection that sends nothing for this long is closed (the engine reconnects).
IDLE_SECONDS = 600.0


def listen(
    folder: ReadyFolder,
    host: str,
    port: int,
    *,
    started: Callable[[int], None] | None = None,
    report: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM; ``started`` is told the port once it listens, ``report``
    one line per message (event, control id, acknowledgement: never patient data)."""
    asyncio.run(_serve(folder, host, port, started, report))


async def _serve(
    folder: ReadyFolder,
    host: str,
    port: int,
    started: Callable[[int], None] | None,
    report: Callable[[str], None] | None,
) -> None:
    loop = asyncio.get_running_loop()
    worker = ThreadPoolExecutor(1, thread_name_prefix="discharge-hl7")
    stop = asyncio.Event()
    connections: set[asyncio.Task[None]] = set()

    async def connection(reader, writer) -> None:  # type: ignore[no-untyped-def]
        task = asyncio.current_task()
        if task is not None:
            connections.add(task)
        try:
            while True:
                try:
                    frame = await asyncio.wait_for(reader.readblock(), IDLE_SECONDS)
                except InvalidBlockError:
                    # Bytes before the start of a frame: answer AR and read on.
                    writer.writeblock(_not_a_frame())
                    await writer.drain()
                    continue
                except (asyncio.IncompleteReadError, ValueError, TimeoutError):
                    break  # disconnected (mid-frame or not), a frame over the limit, or idle
                reply = await loop.run_in_executor(worker, folder.handle, frame)
                if report is not None:
                    report(_summary(frame, reply))
                writer.writeblock(reply)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
            if task is not None:
                connections.discard(task)

    server = await start_hl7_server(connection, host, port, limit=FRAME_LIMIT)
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows: Ctrl-C only
            loop.add_signal_handler(signum, stop.set)
    if started is not None:
        started(server.sockets[0].getsockname()[1])
    try:
        await stop.wait()
    finally:
        server.close()
        for task in list(connections):
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)
        # A message being done is finished (its acknowledgement is not sent: the engine
        # sends it again, and the journal answers it).
        await loop.run_in_executor(worker, folder.close)
        worker.shutdown(wait=True)
        await server.wait_closed()


def _not_a_frame() -> bytes:
    received = decode_frame(b"")
    problem = Problem("MSH", 1, SEGMENT_SEQUENCE, "bytes outside an MLLP frame (expected VT, "
                      "the message, FS CR)")  # fmt: skip
    return make_ack(received, REJECT, [problem], problem.text, "DISCHARGE").encode("ascii")


def _summary(frame: bytes, reply: bytes) -> str:
    """``SIU^S12 1234: AA made``: the event, the control id and the acknowledgement."""
    from discharge.hl7.siu import field_text

    received = decode_frame(frame)
    answer = decode_frame(reply)
    if answer.message is None:
        return "frame: no acknowledgement"
    code = field_text(answer.message, "MSA", 1)
    text = field_text(answer.message, "MSA", 3)
    if received.message is None:
        return f"not an HL7 message: {code}"
    kind = "^".join(
        part
        for part in (
            field_text(received.message, "MSH", 9, 1, 1),
            field_text(received.message, "MSH", 9, 1, 2),
        )
        if part
    )
    word = text.split(":", 1)[0] if code == "AA" else text
    return f"{kind or '?'} {received.control_id or '(no control id)'}: {code} {word}".rstrip()

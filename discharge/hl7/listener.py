"""The MLLP server of ``discharge listen``: python-hl7's asyncio streams.

Each connection is read frame by frame (VT ... FS CR), one message at a time, as MLLP sends
them: the acknowledgement to one goes back before the next is read. The ready folder reads and
records messages in one thread, in the order they come; their PDFs are rendered by the batch's
worker processes, so several connections (an engine with several outbound threads) keep every
core busy. A frame
that is not HL7 is answered with AR; a client that disconnects mid-frame or sends an
oversized frame loses only its own connection; nothing a client sends stops the listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hl7.mllp import InvalidBlockError, start_hl7_server

from discharge.hl7.sheets import ReadyFolder
from discharge.hl7.siu import REJECT, SEGMENT_SEQUENCE, Problem, decode_frame, make_ack

# Far above any scheduling message (a few kilobytes): a frame that never ends is cut here.
FRAME_LIMIT = 1024 * 1024
# A connection that sends nothing for this long is closed (the engine reconnects).
IDLE_SECONDS = 600.0


def listen(
    folder: ReadyFolder,
    host: str,
    port: int,
    *,
    jobs: int | None = None,
    started: Callable[[int], None] | None = None,
    report: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM; ``started`` is told the port once it listens, ``report``
    one line per message (event, control id, acknowledgement: never patient data). ``jobs``
    worker processes render the PDFs (default: the number of cores; 1: this process)."""
    from discharge.batch.run import render_pool

    jobs = jobs or os.cpu_count() or 1
    # Started before the event loop and its threads, so the workers fork from one thread.
    pool = render_pool(folder.config, folder.out, jobs) if jobs > 1 else None
    try:
        asyncio.run(_serve(folder, host, port, pool, started, report))
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()


async def _serve(
    folder: ReadyFolder,
    host: str,
    port: int,
    pool: Any,
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
                reply = await _handle(loop, worker, pool, folder, frame)
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


async def _handle(
    loop: asyncio.AbstractEventLoop,
    worker: ThreadPoolExecutor,
    pool: Any,
    folder: ReadyFolder,
    frame: bytes,
) -> bytes:
    if pool is None:
        return await loop.run_in_executor(worker, folder.handle, frame)
    from discharge.batch.run import render_rows

    step = await loop.run_in_executor(worker, folder.begin, frame)
    if step.task is None:
        return step.reply
    done: asyncio.Future[Any] = loop.create_future()

    def set_result(result: Any) -> None:
        if not done.done():
            done.set_result(result)

    def set_exception(exc: BaseException) -> None:
        if not done.done():
            done.set_exception(exc)

    # Called in the pool's result thread: handed over to the event loop's.
    def settle(result: Any) -> None:
        loop.call_soon_threadsafe(set_result, result)

    def fail(exc: BaseException) -> None:
        loop.call_soon_threadsafe(set_exception, exc)

    pool.apply_async(render_rows, ([step.task],), callback=settle, error_callback=fail)
    try:
        (result,) = await done
    except Exception as exc:  # noqa: BLE001 - a worker died: this message is not done
        from discharge.batch.run import RenderResult

        result = RenderResult(step.task.row, step.task.file, "", f"not made ({type(exc).__name__})")
    return await loop.run_in_executor(worker, folder.finish, step, result)


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

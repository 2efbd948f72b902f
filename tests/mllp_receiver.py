"""A record system's MLLP receiver for the tests: python-hl7's own asyncio server on loopback.

It keeps every message it receives (the raw text) and answers as told: ``AA``, ``AE`` / ``AR``
(with an ERR segment), ``drop`` (closes the connection without a word) or ``stall`` (keeps it
open and never answers). ``answer`` may be changed between messages. It runs its own event loop
in a thread, so the code under test can use ``asyncio.run`` as a caller would.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

import hl7
from hl7.mllp import start_hl7_server

from tests.helpers import free_port

MESSAGE_LIMIT = 64 << 20  # a sheet's PDF, base64-encoded, is far above the library's 64 KiB


class MllpReceiver:
    def __init__(
        self, answer: str = "AA", port: int | None = None, error_text: str = "",
        err: str | None = None,
    ) -> None:  # fmt: skip
        self.answer = answer
        self.error_text = error_text
        # v2.5's ERR: location (segment^sequence^field), code^text^table, severity, ERR-8 the
        # user message; ``err`` replaces it (e.g. v2.3's "ERR|PID^1^3^204&Unknown key")
        self.err = err or f"ERR||PID^1^5|103^Table value not found^HL70357|E||||{error_text}"
        self.port = port or free_port()
        self.messages: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: Any = None
        self._tasks: set[asyncio.Task[None]] = set()

    def __enter__(self) -> MllpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> MllpReceiver:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            start_hl7_server(
                self._client, "127.0.0.1", self.port, limit=MESSAGE_LIMIT, encoding="utf-8"
            ),
            self._loop,
        ).result(10)
        return self

    def stop(self) -> None:
        async def _close() -> None:
            self._server.close()
            for task in self._tasks:  # a stalled client, or one still reading
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()

        if self._server is not None:
            asyncio.run_coroutine_threadsafe(_close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def parsed(self, index: int = -1) -> hl7.Message:
        return hl7.parse(self.messages[index])

    async def _client(self, reader: Any, writer: Any) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                block = await reader.readblock()
                text = block.decode("utf-8")
                self.messages.append(text)
                if self.answer == "drop":
                    return
                if self.answer == "stall":
                    await asyncio.sleep(3600)
                ack = str(hl7.parse(text).create_ack(self.answer, message_id="ACK1"))
                if self.answer != "AA":  # MSA-3's text, then the ERR segment
                    ack = ack.rstrip("\r") + f"|{self.error_text}\r{self.err}\r"
                writer.writeblock(ack.encode("utf-8"))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

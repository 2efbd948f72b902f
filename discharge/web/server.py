"""Limits on waitress's connections, so slow or idle clients cannot starve the nurses.

Waitress reads every request on one thread (its asyncore loop) and hands only complete ones
to its worker threads, so a slow client costs a connection, never a worker. Connections are
what such clients take, so (``[serve]`` settings):

- ``connection_limit``: open connections at most (waitress stops accepting beyond it; its own
  default, 100, is what 150 slow clients filled). ``poll`` rather than ``select``, which cannot
  watch more than 1024 sockets.
- ``connections_per_address``: one computer's share; a connection beyond it is closed at once,
  unread. The TLS proxy (``tls_proxy``) is exempt: every nurse comes through it, and it guards
  its own side (see deploy/Caddyfile).
- ``header_seconds``: a request's headers must arrive within this, however slowly they trickle
  (a "slowloris" sends a byte now and then, so it is never idle).
- ``idle_seconds``: a connection with no request (an idle keep-alive, a silent client) is closed.

An upload whose declared size is over ``max_upload_mb`` is answered from its headers alone,
by the application's own 413 page (which says the limit), and the connection closed: its body
is never read (waitress's own answer would be a bare "Request Entity Too Large").

These reach into waitress's channel (``HTTPChannel``: its ``request``, ``creation_time``,
``will_close``, ``error_task_class``, ``parser_class``; the server's ``active_channels``),
hence the upper bound on waitress in pyproject.toml.
"""

from __future__ import annotations

import time
from typing import Any

from discharge.web.settings import ServeSettings


def connection_limits(settings: ServeSettings) -> dict[str, Any]:
    """Waitress's own settings for the limits above."""
    return {
        "connection_limit": settings.connection_limit,
        "channel_timeout": max(1, round(settings.idle_seconds)),
        # How often idle connections are looked for (waitress: every 30 s).
        "cleanup_interval": max(1, round(min(settings.idle_seconds, 30) / 4)),
        "asyncore_use_poll": True,
    }


def guard_connections(server: Any, settings: ServeSettings) -> None:
    """Each connection ``server`` accepts from now on keeps to its address's share and to
    the header deadline."""
    from waitress.channel import HTTPChannel
    from waitress.parser import HTTPRequestParser
    from waitress.task import ErrorTask, WSGITask
    from waitress.utilities import RequestEntityTooLarge

    header_seconds = settings.header_seconds
    per_address = settings.connections_per_address
    exempt = settings.tls_proxy

    class TooLargePage(WSGITask):
        def execute(self) -> None:
            self.set_close_on_finish()  # the rest of the upload is still coming: never read
            super().execute()

    def error_task(channel: Any, request: Any) -> Any:
        too_large = isinstance(request.error, RequestEntityTooLarge)
        if too_large and not request.chunked and request.content_length > 0:
            # The application sees the declared size, an empty body, and answers 413.
            return TooLargePage(channel, request)
        return ErrorTask(channel, request)

    class Parser(HTTPRequestParser):
        def received(self, data: bytes) -> Any:
            consumed = super().received(data)
            if self.error is not None:  # no "100 Continue" for a request already refused
                self.expect_continue = False
            return consumed

    class GuardedChannel(HTTPChannel):
        parser_class = Parser
        error_task_class = staticmethod(error_task)

        def __init__(self, server: Any, sock: Any, addr: Any, adj: Any, map: Any = None) -> None:
            super().__init__(server, sock, addr, adj, map)
            self.request_began = self.creation_time
            if isinstance(addr, tuple) and addr[0] != exempt:
                same = sum(
                    1
                    for channel in server.active_channels.values()
                    if isinstance(channel.addr, tuple) and channel.addr[0] == addr[0]
                )
                if same > per_address:
                    self.will_close = True  # closed on the loop's next turn

        def received(self, data: bytes) -> Any:
            if self.request is None:
                self.request_began = time.time()
            return super().received(data)

        def readable(self) -> bool:
            request = self.request
            if (
                request is not None
                and not request.headers_finished
                and time.time() - self.request_began > header_seconds
            ):
                self.will_close = True
            return bool(super().readable())

    server.channel_class = GuardedChannel

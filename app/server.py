"""uvicorn's HTTP protocol with a read deadline (slowloris): ``--http app.server:GuardedHttp``.

uvicorn times out idle keep-alive connections, but a client that opens a connection and sends its
request a byte at a time is never timed out: 200 such connections were held open for 40 s and
more. Here each request must arrive whole — from the connection's first byte (or the end of the
previous response) to the end of its body — within ``OPTIM_HTTP_READ_TIMEOUT_S`` seconds
(default 15); otherwise the connection is closed. Responses (SSE streams included) are not
limited: the deadline stops once the request has been read.

It also tells the app which address the server really binds (:func:`bound_host`): the open /
keys decision must not trust ``OPTIM_HOST`` alone, or ``uvicorn app.main:app --host 0.0.0.0``
without it would serve open to the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

READ_TIMEOUT_S = float(os.environ.get("OPTIM_HTTP_READ_TIMEOUT_S", "15"))


class GuardedHttp(HttpToolsProtocol):
    _read_deadline: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._read_deadline = self.loop.call_later(READ_TIMEOUT_S, self._read_timed_out)

    def _disarm(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _read_timed_out(self) -> None:
        self._read_deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._read_deadline is None:  # a pipelined or keep-alive request: a new deadline
            self._arm()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def bound_host() -> str | None:
    """The address the uvicorn server of this process binds, or None when it is not known (not
    run by uvicorn). Read while the app starts (uvicorn runs the lifespan before it binds, so
    there is no socket yet): a running ``uvicorn.Server`` has installed its ``handle_exit`` as
    the SIGTERM handler, and its config names the host (or the inherited socket, ``--fd``, or
    the unix socket, ``--uds``: local only, reported as ``localhost``)."""
    server = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
    config = getattr(server, "config", None)
    if not isinstance(server, uvicorn.Server) or not isinstance(config, uvicorn.Config):
        return None
    if config.uds:
        return "localhost"
    if config.fd is not None:
        with contextlib.suppress(OSError), socket.socket(fileno=os.dup(config.fd)) as sock:
            name = sock.getsockname()
            return "localhost" if isinstance(name, (str, bytes)) else str(name[0])
        return None
    return str(config.host)

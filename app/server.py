"""uvicorn's HTTP protocol with a read deadline (slowloris): ``--http app.server:GuardedHttp``.

uvicorn times out idle keep-alive connections, but a client that opens a connection and sends its
request a byte at a time is never timed out: 200 such connections were held open for 40 s and
more. Here each request must arrive whole — from the connection's first byte (or the end of the
previous response) to the end of its body — within ``OPTIM_HTTP_READ_TIMEOUT_S`` seconds
(default 15); otherwise the connection is closed. Responses (SSE streams included) are not
limited: the deadline stops once the request has been read.
"""

from __future__ import annotations

import asyncio
import os

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

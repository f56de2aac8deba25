"""The HTTP connection protocol `intento serve` runs: uvicorn's h11 protocol, with a bound on
how long a client may take to send a request's headers.

Input: connections. Output: the same requests uvicorn would parse. uvicorn times out an idle
keep-alive connection, but not a client that connects and then sends its headers slowly (or
never): each such connection would be held forever. Here a timer runs from the connection (and
from the first byte of each further request) until the headers are complete; if it fires first,
the connection is closed. (Bodies are bounded by `app.BoundedBody`.)
"""

from __future__ import annotations

from uvicorn.protocols.http.h11_impl import H11Protocol

#: Seconds a client has to send a request's headers.
HEADER_TIMEOUT_S = 10.0


def bounded_protocol(header_timeout_s: float = HEADER_TIMEOUT_S) -> type[H11Protocol]:
    """An `H11Protocol` class whose connections give up on headers after ``header_timeout_s``."""

    class BoundedH11(H11Protocol):
        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._header_timer = self.loop.call_later(header_timeout_s, self._headers_too_slow)

        def _between_requests(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def data_received(self, data: bytes) -> None:
            if self._between_requests() and getattr(self, "_header_timer", None) is None:
                self._header_timer = self.loop.call_later(header_timeout_s, self._headers_too_slow)
            super().data_received(data)
            if not self._between_requests():
                self._cancel_header_timer()  # the headers are in: a request is being served

        def connection_lost(self, exc) -> None:
            self._cancel_header_timer()
            super().connection_lost(exc)

        def _cancel_header_timer(self) -> None:
            timer = getattr(self, "_header_timer", None)
            if timer is not None:
                timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self._between_requests() and not self.transport.is_closing():
                self.transport.close()

    return BoundedH11

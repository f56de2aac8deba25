"""`BoundedBody`: a client that sends its body too slowly is answered 408 and cut off; the
application never runs for it. Driven as plain ASGI, with a receive that never finishes."""

from __future__ import annotations

import asyncio
import json

from intento.service.app import BoundedBody


def _call(messages, timeout_s: float, max_body: int = 100):
    ran, sent = [], []

    async def app(scope, receive, send):
        ran.append(await receive())

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # the client stalls forever

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "headers": []}
    asyncio.run(BoundedBody(app, max_body=max_body, timeout_s=timeout_s)(scope, receive, send))
    return ran, sent


def test_a_stalled_body_is_408_and_never_reaches_the_app():
    ran, sent = _call([{"type": "http.request", "body": b"{", "more_body": True}], timeout_s=0.2)
    assert not ran and sent[0]["status"] == 408 and json.loads(sent[1]["body"])["code"] == "too_slow"


def test_a_body_in_pieces_reaches_the_app_whole():
    pieces = [{"type": "http.request", "body": b'{"a": ', "more_body": True}, {"type": "http.request", "body": b"1}", "more_body": False}]
    ran, sent = _call(pieces, timeout_s=5)
    assert ran == [{"type": "http.request", "body": b'{"a": 1}', "more_body": False}] and not sent


def test_too_many_bytes_in_pieces_are_413():
    pieces = [{"type": "http.request", "body": b"x" * 60, "more_body": True}] * 2
    ran, sent = _call(list(pieces), timeout_s=5)
    assert not ran and sent[0]["status"] == 413

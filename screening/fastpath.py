"""Pieces shared by the fast paths: pure ASGI handlers that answer the service's two
busiest requests (a clerk's scan, a resident's query) without FastAPI's routing and
dependency solving, and hand anything unusual to the FastAPI route, body and all
(issue 15; bench/README.md, "Where a scan's time goes")."""

from __future__ import annotations

from starlette.types import Message, Receive, Send

JSON_HEADERS = [(b"content-type", b"application/json")]


class RouteTemplate:
    """What :func:`screening.errors.route_of` reads from ``scope["route"]``: the route's
    template, for the access log and the metrics (never the concrete path)."""

    def __init__(self, path: str) -> None:
        self.path = path


async def read_body(receive: Receive) -> tuple[bytes, list[Message]]:
    """The whole body (small: the body limit outside caps it), and the messages it
    came in, to hand on unchanged."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    return b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request"), messages


def replaying(messages: list[Message], receive: Receive) -> Receive:
    """``receive`` for the route: the messages already read, then the rest."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


async def send_json(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": JSON_HEADERS})
    await send({"type": "http.response.body", "body": body})

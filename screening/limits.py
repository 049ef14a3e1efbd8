"""Guards in front of the work: bodies above the configured size get 413 before they
are read whole (by Content-Length and while streaming), URLs holding a NUL character
get 422, and heavy work (uploads, census imports, PDFs) runs a few at a time so that
it can never hold every database connection: scans keep their own capacity."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from screening.errors import PayloadTooLarge, ServerBusy, Unprocessable, problem_response

RETRY_AFTER_SECONDS = 5


class HeavyWork:
    """At most ``slots`` heavy requests of this process at once.

    A lab-day upload holds its database connection for its whole ingestion, a label
    sheet holds a CPU for seconds: 22 of them at once took all 20 connections and a
    sampler's scan waited 30 s for one. With ``slots`` below the pool size the rest of
    the pool stays free for scans and reads whatever the labs do. A request that finds
    no slot within ``wait_seconds`` gets 503 ``server-busy`` with ``Retry-After``: it
    has done nothing yet and can simply be sent again.
    """

    def __init__(self, slots: int, wait_seconds: float) -> None:
        if slots < 1:
            raise ValueError("heavy work needs at least one slot")
        self.slots = slots
        self.wait_seconds = wait_seconds
        self._free = asyncio.Semaphore(slots)

    async def enter(self) -> None:
        if not self._free.locked():
            await self._free.acquire()  # free: taken at once
            return
        try:
            await asyncio.wait_for(self._free.acquire(), timeout=self.wait_seconds)
        except TimeoutError:
            raise ServerBusy(
                f"{self.slots} uploads, imports or PDFs are under way; send this again"
                f" in {RETRY_AFTER_SECONDS} seconds",
                retry_after=RETRY_AFTER_SECONDS,
            ) from None

    def leave(self) -> None:
        self._free.release()


async def heavy_slot(request: Request) -> AsyncIterator[None]:
    """Dependency: hold one heavy-work slot for the request (see :class:`HeavyWork`)."""
    gate: HeavyWork = request.app.state.heavy_work
    await gate.enter()
    try:
        yield
    finally:
        gate.leave()


HeavySlot = Annotated[None, Depends(heavy_slot)]
"""A heavy-work slot for a request whose session is not ``HeavySession`` (a report
read on the replica); list it before the session parameter."""


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = PayloadTooLarge(f"the body is larger than {self.max_bytes} bytes")
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await problem_response(too_large)(scope, receive, send)
                return
        seen = 0
        exceeded = False
        replaced = False

        async def guarded_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    exceeded = True
                    raise too_large
            return message

        async def guarded_send(message: Message) -> None:
            # The app may turn the failed read into an error of its own (a 400 for an
            # unreadable body): whatever it answers, the client gets the 413.
            nonlocal replaced
            if exceeded:
                if not replaced:
                    replaced = True
                    await problem_response(too_large)(scope, receive, send)
                return
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except PayloadTooLarge:
            if not replaced:
                replaced = True
                await problem_response(too_large)(scope, receive, send)


class StorableUrl:
    """Refuses a path or query holding a NUL character (``%00``) with 422, naming
    which: PostgreSQL text cannot hold one, so it could only end as a database error.
    Bodies are checked by the schemas (screening.schemas.Schema)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            query = scope.get("query_string", b"").lower()
            where = (
                "path"
                if "\x00" in scope.get("path", "")
                else "query"
                if b"%00" in query or b"\x00" in query
                else None
            )
            if where is not None:
                problem = Unprocessable(f"the {where} holds a NUL character")
                await problem_response(problem)(scope, receive, send)
                return
        await self.app(scope, receive, send)

"""ASGI guards in front of everything: bodies above the configured size get 413
before they are read whole (by Content-Length and while streaming), and URLs holding
a NUL character get 422."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from screening.errors import PayloadTooLarge, Unprocessable, problem_response


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

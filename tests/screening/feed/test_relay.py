"""`screening feed push`: pages delivered to a receiver that fails, goes away and comes
back, by relays that are stopped and restarted: every change arrives exactly once, in
order, signed; retention prunes only what every relay has delivered."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import text

from screening.feed.relay import RelayConfig, push
from screening.feed.service import prune_feed
from screening.privacy import load_vault

SECRET = "shared-with-the-platform"


class Receiver:
    """A platform's endpoint on a fixed port: it can fail the next n requests, and be
    stopped and started again."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.pages: list[tuple[dict[str, str], bytes]] = []
        self.fail_next = 0
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/push"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.fail_next > 0:
                    receiver.fail_next -= 1
                    self.send_response(503)
                else:
                    receiver.pages.append((dict(self.headers), body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()

    def items(self) -> list[dict[str, Any]]:
        got = []
        for headers, body in self.pages:
            expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            assert headers["X-Screening-Signature"] == expected
            got += json.loads(body)["items"]
        return got


async def feed_from_start(client, token) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    r = await client.get("/feed/results", params={"limit": 5000}, headers=token)
    assert r.status_code == 200
    return list(r.json()["items"])


async def test_pages_arrive_once_through_failures_and_restarts(
    committed_client, make_scene, engine, settings
) -> None:
    scene = await make_scene(committed_client).build()
    token = {
        "Authorization": "Bearer " + (await scene.ok("/tokens", {"role": "platform"}))["token"]
    }
    vault = load_vault(settings)
    receiver = Receiver()
    receiver.start()
    config = RelayConfig(
        name="health-code",
        url=receiver.url,
        secret=SECRET,
        limit=3,
        first_backoff=0.01,
        max_backoff=0.05,
        timeout=2,
    )

    # 1. the receiver refuses the first two tries
    await scene.fill(scene.barcodes["P1"][0], range(7))
    receiver.fail_next = 2
    assert await push(engine, vault, config, until_idle=True) == 3  # 7 changes, 3 a page
    assert [h["X-Screening-Page"].count("-") for h, _ in receiver.pages] == [1, 1, 1]

    # 2. the receiver goes away and comes back while the relay retries
    await scene.fill(scene.barcodes["P1"][1], range(7, 12))
    receiver.stop()
    relay = asyncio.create_task(push(engine, vault, config, until_idle=True))
    await asyncio.sleep(0.3)
    assert not relay.done()
    receiver.start()
    await asyncio.wait_for(relay, 20)

    # 3. the relay is stopped (SIGTERM in the CLI) after one page; a new one resumes
    await scene.fill(scene.barcodes["P2"][0], range(12, 20), who="P2")
    before, stop = len(receiver.pages), asyncio.Event()
    relay = asyncio.create_task(push(engine, vault, config, stop=stop))
    while len(receiver.pages) == before:  # noqa: ASYNC110 (the receiver runs in a thread)
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(relay, 20)
    await push(engine, vault, config, until_idle=True)

    delivered = receiver.items()
    assert delivered == await feed_from_start(committed_client, token)
    assert len(delivered) == 20
    ids = [h["X-Screening-Page"] for h, _ in receiver.pages]
    assert len(ids) == len(set(ids)), "a page was delivered twice"

    # 4. a relay killed while a page is in flight sends that page again, under the
    # same page id: the receiver drops the repeat by it
    await scene.fill(scene.barcodes["P2"][1], range(20, 26), who="P2")
    before = len(receiver.pages)
    relay = asyncio.create_task(push(engine, vault, config))
    while len(receiver.pages) == before:  # noqa: ASYNC110
        await asyncio.sleep(0.001)
    relay.cancel()
    await asyncio.gather(relay, return_exceptions=True)
    await push(engine, vault, config, until_idle=True)
    receiver.stop()
    kept: dict[str, bytes] = {}
    for headers, body in receiver.pages:
        kept.setdefault(headers["X-Screening-Page"], body)
    deduplicated = [item for body in kept.values() for item in json.loads(body)["items"]]
    assert deduplicated == await feed_from_start(committed_client, token)


async def test_retention_keeps_what_a_relay_has_not_delivered(
    committed_client, make_scene, engine, settings
) -> None:
    scene = await make_scene(committed_client).build()
    token = {
        "Authorization": "Bearer " + (await scene.ok("/tokens", {"role": "platform"}))["token"]
    }
    await scene.fill(scene.barcodes["P1"][0], range(4))
    changes = await feed_from_start(committed_client, token)
    seqs = [c["seq"] for c in changes]
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE feed_changes SET changed_at = now() - interval '40 days'"))
        await conn.execute(
            text("INSERT INTO feed_relays (name, url, cursor) VALUES ('slow', 'http://x', :c)"),
            {"c": seqs[1]},
        )
    async with engine.begin() as conn:  # an open round keeps everything
        assert (await prune_feed(conn, retention_days=30)) == 0  # type: ignore[arg-type]
    r = await committed_client.post(
        f"/rounds/{scene.round_id}/close", headers=scene.tokens["admin"]
    )
    assert r.status_code == 200, r.text
    async with engine.begin() as conn:
        assert (await prune_feed(conn, retention_days=30)) == 2  # type: ignore[arg-type]
        assert (await prune_feed(conn, retention_days=60)) == 0  # type: ignore[arg-type]
    left = await feed_from_start(committed_client, token)
    assert [c["seq"] for c in left] == seqs[2:]

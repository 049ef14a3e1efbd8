"""The ``screening`` command: serve, migrate, demo data, tokens."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from screening.config import Settings, get_settings
from screening.db import make_engine, make_sessionmaker, migrate_engine, resolve_database_url
from screening.errors import AppError
from screening.tokens.service import TokenRecord, create_token

T = TypeVar("T")


class Role(StrEnum):
    admin = "admin"
    sampler = "sampler"
    lab = "lab"
    platform = "platform"


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # screening.metrics reads it, at import

app = typer.Typer(help="City-wide pooled PCR screening service.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")
feed_app = typer.Typer(help="The result feed for the health-code platform.", no_args_is_help=True)
app.add_typer(feed_app, name="feed")
console = Console()


async def _prepare(settings: Settings) -> str:
    """Resolve the database (starting the embedded one if needed) and migrate it."""
    url = await resolve_database_url(settings)
    engine = make_engine(url, settings)
    try:
        await migrate_engine(engine)
    finally:
        await engine.dispose()
    return url


async def _run_demo(
    settings: Settings,
    url: str,
    residents: int,
    points: int,
    *,
    base_url: str = "http://127.0.0.1:8000",
    once: bool = False,
) -> None:
    """Run the demo round (``once``: only when no demo round exists yet; then just
    issue a fresh admin token for the dashboard)."""
    from screening.demo_round import (
        fresh_demo_tokens,
        has_demo_round,
        run_demo_round,
        summary_lines,
    )

    logging.getLogger("lab_io").setLevel(logging.WARNING)
    engine = make_engine(url, settings)
    try:
        if once and await has_demo_round(engine):
            tokens = await fresh_demo_tokens(engine)
            console.print(f"demo round already loaded; dashboard: {base_url}/")
            _print_tokens("Demo: new tokens (shown once)", tokens.pop("admin"), tokens, base_url)
            return
        out = await run_demo_round(
            engine, settings, residents=residents, points=points, console=console
        )
    finally:
        await engine.dispose()
    for line in summary_lines(out, base_url):
        console.print(line)
    tokens = dict(sorted(out.tokens.items())[:4])
    _print_tokens(
        f"Demo round {out.round_id}: tokens (shown once)", out.admin_token, tokens, base_url
    )


def _print_tokens(title: str, admin: str, tokens: dict[str, str], base_url: str) -> None:
    """The demo's tokens, each with the page it opens under ``base_url``."""
    table = Table(title=title)
    table.add_column("who (page)")
    table.add_column("token", no_wrap=True)
    table.add_row("admin (/)", admin)
    for who, token in sorted(tokens.items()):
        role, page = ("lab", "/lab") if who.startswith("LAB") else ("sampler", "/station")
        table.add_row(f"{role} {who} ({page})", token)
    console.print(table)
    console.print(f"pages open at {base_url}; more tokens:")
    console.print(
        "  screening token create --role sampler --sampling-point PT003 (or --role lab --lab LAB-A)"
    )


@app.command()
def migrate() -> None:
    """Apply the database migrations."""
    asyncio.run(_prepare(get_settings()))
    console.print("schema is up to date")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            envvar="SCREENING_WORKERS",
            help="worker processes on the one port (2-core box with PostgreSQL on it: 2)",
        ),
    ] = 1,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            envvar="SCREENING_FORWARDED_ALLOW_IPS",
            help="comma-separated addresses of trusted proxies whose X-Forwarded-For gives"
            " the client address (the resident-query limit counts per client); without"
            " it X-Forwarded-For is ignored",
        ),
    ] = None,
    demo: Annotated[
        bool, typer.Option(help="run a synthetic demo round first and print its tokens")
    ] = False,
    residents: Annotated[int, typer.Option(help="--demo: people in the demo district")] = 100_000,
) -> None:
    """Migrate the schema, then serve the API (http://HOST:PORT/docs) with WORKERS
    processes. The embedded PostgreSQL (when no URL is configured) is started once,
    here, shared by the workers and stopped on exit."""
    # before anything imports prometheus_client (screening.observability does): with one
    # process, the client would otherwise keep its values in memory while /metrics reads
    # the (empty) folder, and answer nothing
    metrics_dir = _fresh_metrics_dir()
    import uvicorn

    from screening.db import stop_embedded_server
    from screening.observability import configure_logging

    configure_logging()
    try:
        settings = get_settings()
        url = asyncio.run(_prepare(settings))
        if demo:
            base = f"http://{host}:{port}"
            asyncio.run(_run_demo(settings, url, residents, 40, base_url=base, once=True))
        # the workers are new processes: they find the database (never starting their
        # own) and the shared metrics folder in the environment
        os.environ["SCREENING_DATABASE_URL"] = url
        logging.getLogger("screening").info(
            "serving", extra={"url": f"http://{host}:{port}", "workers": workers}
        )
        uvicorn.run(
            "screening.app:served_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            **uvicorn_options(forwarded_allow_ips),
        )
    finally:
        stop_embedded_server()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def uvicorn_options(forwarded_allow_ips: str | None) -> dict[str, Any]:
    """How uvicorn is run: X-Forwarded-For is read only from the named proxies (by
    default from nobody: uvicorn itself would trust 127.0.0.1), logs are ours."""
    return {
        "proxy_headers": forwarded_allow_ips is not None,
        "forwarded_allow_ips": forwarded_allow_ips or "",
        "log_config": None,
        "access_log": False,
        # live feeds (SSE) never end by themselves: give them 5 s on shutdown
        "timeout_graceful_shutdown": 5,
    }


def _fresh_metrics_dir() -> Path | None:
    """Point prometheus-client's multiprocess mode at an empty folder (a fresh one,
    removed on exit, unless PROMETHEUS_MULTIPROC_DIR names one: then it is emptied).
    prometheus-client reads the variable when it is first imported."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        for stale in Path(given).glob("*.db"):
            stale.unlink()
        return None
    folder = Path(tempfile.mkdtemp(prefix="screening-metrics-"))
    os.environ[MULTIPROC_ENV] = str(folder)
    return folder


@app.command()
def demo(
    residents: Annotated[int, typer.Option(help="people in the demo district")] = 100_000,
    points: Annotated[int, typer.Option(help="sampling points")] = 40,
) -> None:
    """Run a whole synthetic round end to end (registration, 10-in-1 swabbing, boxes,
    results in all four lab formats, de-pooling, the report) and print tokens."""
    settings = get_settings()
    asyncio.run(_run_demo(settings, asyncio.run(_prepare(settings)), residents, points))


@app.command()
def ingest(
    lab: Annotated[str, typer.Option(help="the lab's code")],
    files: Annotated[
        list[Path], typer.Argument(help="instrument or LIS exports", exists=True, dir_okay=False)
    ],
    format: Annotated[str | None, typer.Option(help="detected when absent")] = None,
    plate: Annotated[str | None, typer.Option(help="for files that name no plate")] = None,
) -> None:
    """Ingest result files for a lab from the command line (bulk back-loads)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from screening.results.service import upload_results
    from screening.tokens.service import Principal

    async def run() -> int:
        settings = get_settings()
        url = await _prepare(settings)
        engine = make_engine(url, settings)
        failures = 0
        columns = (
            *Progress.get_default_columns()[:1],
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        try:
            with Progress(*columns, console=console) as progress:
                task = progress.add_task(f"ingesting for {lab}", total=len(files))
                for path in files:
                    progress.update(task, description=path.name)
                    try:
                        async with make_sessionmaker(engine).begin() as session:
                            with path.open("rb") as raw:
                                summary = await upload_results(
                                    session,
                                    Principal(role="admin"),
                                    lab_code=lab,
                                    raw=raw,
                                    filename=path.name,
                                    fmt=format,
                                    plate=plate,
                                )
                        progress.console.print(
                            f"{path.name}: {summary.format}, {summary.rows} rows, "
                            f"{summary.accepted} accepted, {summary.duplicate} duplicate, "
                            f"{summary.rejected_total} rejected; tubes "
                            + ", ".join(f"{k} {v}" for k, v in summary.tubes.model_dump().items())
                        )
                    except AppError as exc:
                        failures += 1
                        progress.console.print(f"[red]{path.name}: {exc.detail}[/red]")
                    progress.advance(task)
        finally:
            await engine.dispose()
        return failures

    if asyncio.run(run()):
        raise typer.Exit(1)


@token_app.command("create")
def token_create(
    role: Annotated[Role, typer.Option(help="who the token is for")],
    sampling_point: Annotated[str | None, typer.Option(help="for a sampler")] = None,
    lab: Annotated[str | None, typer.Option(help="for a lab")] = None,
    label: Annotated[str | None, typer.Option(help="a note: who holds it")] = None,
) -> None:
    """Issue a token and print it (it is shown only once)."""

    async def run() -> str:
        settings = get_settings()
        url = await _prepare(settings)
        engine = make_engine(url, settings)
        try:
            async with make_sessionmaker(engine).begin() as session:
                issued = await create_token(
                    session, role=role, sampling_point=sampling_point, lab=lab, label=label
                )
                return issued.token
        finally:
            await engine.dispose()

    try:
        typer.echo(asyncio.run(run()))
    except AppError as exc:
        console.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from None


async def _in_transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in one transaction on the migrated database."""
    settings = get_settings()
    engine = make_engine(await _prepare(settings), settings)
    try:
        async with make_sessionmaker(engine).begin() as session:
            return await work(session)
    finally:
        await engine.dispose()


def _local(at: datetime | None) -> str:
    zone = ZoneInfo(get_settings().timezone)
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M") if at else ""


@token_app.command("list")
def token_list(
    revoked: Annotated[
        bool | None, typer.Option("--revoked/--active", help="only revoked / only working")
    ] = None,
) -> None:
    """List issued tokens (never their secrets): id, role, what each is bound to, label,
    issued and revoked times (local time)."""
    from screening.tokens.service import list_tokens

    async def run(session: AsyncSession) -> list[TokenRecord]:
        tokens: list[TokenRecord] = []
        while page := await list_tokens(
            session, revoked=revoked, after=tokens[-1].id if tokens else 0, limit=1000
        ):
            tokens += page
        return tokens

    zone = get_settings().timezone
    table = Table(title=f"tokens (times in {zone})")
    for column in ("id", "role", "bound to", "label", "issued", "revoked"):
        table.add_column(column)
    for t in asyncio.run(_in_transaction(run)):
        bound = t.sampling_point or t.lab or ""
        table.add_row(
            str(t.id), t.role, bound, t.label or "", _local(t.created_at), _local(t.revoked_at)
        )
    console.print(table)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[int, typer.Argument(help="the token's id (see `screening token list`)")],
) -> None:
    """Revoke a token at once (a lost phone): every running process refuses it within a
    second."""
    from screening.tokens.service import Principal, revoke_token

    try:
        record = asyncio.run(
            _in_transaction(lambda s: revoke_token(s, Principal(role="admin"), token_id))
        )
    except AppError as exc:
        console.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from None
    bound = (
        f" for {record.sampling_point or record.lab}" if record.sampling_point or record.lab else ""
    )
    console.print(
        f"token {record.id} ({record.role}{bound}) revoked at {_local(record.revoked_at)}"
    )


@feed_app.command("push")
def feed_push(
    url: Annotated[str, typer.Option(help="where the platform receives pages")],
    secret: Annotated[str, typer.Option(help="HMAC-SHA256 key shared with the platform")],
    format: Annotated[str, typer.Option(help="json or fhir")] = "json",
    name: Annotated[str, typer.Option(help="the relay's name (its cursor is kept by it)")] = "",
    limit: Annotated[int, typer.Option(help="changes per page")] = 1000,
    until_idle: Annotated[bool, typer.Option(help="stop once caught up")] = False,
) -> None:
    """Push the result feed to URL, page by page, signed; resumes where it stopped."""
    from screening.feed.relay import RelayConfig, push
    from screening.privacy import load_vault

    if format not in ("json", "fhir"):
        console.print("[red]--format is json or fhir[/red]")
        raise typer.Exit(2)
    settings = get_settings()
    config = RelayConfig(name=name or url, url=url, secret=secret, fmt=format, limit=limit)

    async def run() -> int:
        url_ = await _prepare(settings)
        engine = make_engine(url_, settings)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):  # finish the page in flight, then stop
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        try:
            return await push(
                engine, load_vault(settings), config, until_idle=until_idle, stop=stop
            )
        finally:
            await engine.dispose()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    pages = asyncio.run(run())
    console.print(f"{pages} pages delivered")


if __name__ == "__main__":
    app()

"""A rehearsal of a city deployment on one machine, on real parts, with faults.

    .venv/bin/python bench/fleet.py [--seconds 60] [--apps 2] [--clerks 24]

Needs Debian's packages: postgresql (any version under /usr/lib/postgresql), pgbouncer
and nginx. It starts, in a temporary folder:

    PostgreSQL primary  <-streaming--  PostgreSQL hot standby (the replica)
          ^
    PgBouncer (transaction mode)
          ^
    `screening serve` x --apps, each on its own port
      (SCREENING_DATABASE_URL through PgBouncer, SCREENING_DATABASE_POOLER=true,
       SCREENING_DATABASE_REPLICA_URL the standby)
          ^
    nginx (round robin; a request whose upstream fails is passed to the next one:
           scans carry an event_id and uploads are recognised by their bytes, so a
           repeat is answered as the first and changes nothing)

then seeds a round through nginx and drives it, for --seconds, with what a city sends
at once: clerks scanning (each scan with its event_id, resent on failure as the station
page does), a lab uploading plate files, residents querying, the command center reading
progress. A third of the way in it kills one app process (SIGKILL); two thirds in it
stops the replica (immediate shutdown). At the end it checks, on the primary, that every
acknowledged scan is held exactly once and every acknowledged upload is stored, and
prints rates, latencies and every error by kind.

The load comes from one Python process: the rates show the rehearsal held, they are not
the service's capacity (bench/load.py measures that, with wrk).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from service import day_round, screening_command  # beside this script

from lab_io import synthetic
from screening.demo import synthetic_prc_id

ADMIN = "fleet-" + secrets.token_hex(8)
H = {"Authorization": f"Bearer {ADMIN}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_bin() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if not versions:
        sys.exit("needs Debian's postgresql package (apt-get install postgresql)")
    return versions[-1]


def as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL and PgBouncer refuse to run as root: run them as the postgres user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@dataclass
class Fleet:
    folder: Path
    primary: int = field(default_factory=free_port)
    replica: int = field(default_factory=free_port)
    bouncer: int = field(default_factory=free_port)
    nginx: int = field(default_factory=free_port)
    apps: list[int] = field(default_factory=list)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def url(self, port: int) -> str:
        return f"postgresql://postgres@127.0.0.1:{port}/screening"

    def run(self, command: list[str]) -> None:
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start_databases(self) -> None:
        pg = pg_bin()
        os.chmod(self.folder, 0o777)
        primary, replica = self.folder / "primary", self.folder / "replica"
        self.run(
            as_postgres(
                [
                    str(pg / "initdb"),
                    "-D",
                    str(primary),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ]
            )
        )
        with (primary / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.primary}\n"
                f"unix_socket_directories = '{self.folder}'\nwal_level = replica\n"
                "max_wal_senders = 4\nmax_connections = 200\nhot_standby = on\n"
                "shared_buffers = 256MB\n"
            )
        self.run(
            as_postgres(
                [
                    str(pg / "pg_ctl"),
                    "-D",
                    str(primary),
                    "-l",
                    str(self.folder / "primary.log"),
                    "-w",
                    "start",
                ]
            )
        )
        self.run(
            as_postgres(
                [
                    "psql",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.primary),
                    "-U",
                    "postgres",
                    "-c",
                    "CREATE DATABASE screening",
                ]
            )
        )
        self.run(
            as_postgres(
                [
                    str(pg / "pg_basebackup"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.primary),
                    "-U",
                    "postgres",
                    "-D",
                    str(replica),
                    "-R",
                    "-X",
                    "stream",
                    "-c",
                    "fast",
                ]
            )
        )
        self.run(
            as_postgres(
                [
                    str(pg / "pg_ctl"),
                    "-D",
                    str(replica),
                    "-o",
                    f"-p {self.replica}",
                    "-l",
                    str(self.folder / "replica.log"),
                    "-w",
                    "start",
                ]
            )
        )

    def stop_replica(self) -> None:
        self.run(
            as_postgres(
                [
                    str(pg_bin() / "pg_ctl"),
                    "-D",
                    str(self.folder / "replica"),
                    "-m",
                    "immediate",
                    "stop",
                ]
            )
        )

    def stop_databases(self) -> None:
        for name in ("replica", "primary"):
            subprocess.run(
                as_postgres(
                    [str(pg_bin() / "pg_ctl"), "-D", str(self.folder / name), "-m", "fast", "stop"]
                ),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

    def start_bouncer(self) -> None:
        (self.folder / "userlist.txt").write_text('"postgres" ""\n')
        ini = self.folder / "pgbouncer.ini"
        ini.write_text(
            "[databases]\n"
            f"screening = host=127.0.0.1 port={self.primary} dbname=screening\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.bouncer}\n"
            f"unix_socket_dir = {self.folder}\nauth_type = trust\n"
            f"auth_file = {self.folder / 'userlist.txt'}\npool_mode = transaction\n"
            "max_client_conn = 1000\ndefault_pool_size = 40\n"
            f"logfile = {self.folder / 'pgbouncer.log'}\n"
        )
        self.processes["pgbouncer"] = subprocess.Popen(
            as_postgres(["pgbouncer", str(ini)]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.bouncer)

    def app_env(self, k: int, key: str) -> dict[str, str]:
        return {
            **os.environ,
            "SCREENING_DATABASE_URL": self.url(self.bouncer),
            "SCREENING_DATABASE_POOLER": "true",
            "SCREENING_DATABASE_REPLICA_URL": self.url(self.replica),
            "SCREENING_ADMIN_TOKEN": ADMIN,
            "SCREENING_SECRET_KEY": key,
            "SCREENING_DATA_DIR": str(self.folder / f"app{k}"),
        }

    def start_apps(self, count: int) -> None:
        key = secrets.token_hex(32)  # one key for the fleet: every process reads every row
        migrate = {**self.app_env(0, key), "SCREENING_DATABASE_URL": self.url(self.primary)}
        subprocess.run(
            screening_command("migrate"),
            env=migrate,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for k in range(count):
            port = free_port()
            self.apps.append(port)
            log = (self.folder / f"app{k}.log").open("wb")
            self.processes[f"app{k}"] = subprocess.Popen(
                screening_command("serve", "--port", str(port)),
                env=self.app_env(k, key),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        for port in self.apps:
            wait_http(f"http://127.0.0.1:{port}/healthz")

    def start_nginx(self) -> None:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        upstreams = "".join(
            f"server 127.0.0.1:{port} max_fails=1 fail_timeout=10s; " for port in self.apps
        )
        d = self.folder
        conf = d / "nginx.conf"
        conf.write_text(
            f"daemon off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/nginx.log;\n"
            "events { worker_connections 4096; }\n"
            f"http {{ access_log off; client_max_body_size 64m;"
            f" client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d};"
            f" uwsgi_temp_path {d}; scgi_temp_path {d};\n"
            f"  upstream app {{ {upstreams} keepalive 64; }}\n"
            f"  server {{ listen 127.0.0.1:{self.nginx};\n"
            "    location / { proxy_pass http://app; proxy_http_version 1.1;"
            ' proxy_set_header Connection ""; proxy_set_header X-Forwarded-For $remote_addr;'
            " proxy_read_timeout 120s;"
            " proxy_next_upstream error timeout http_502 non_idempotent;"
            " proxy_next_upstream_tries 2; } } }\n"
        )
        self.processes["nginx"] = subprocess.Popen([nginx, "-c", str(conf), "-p", str(d)])
        wait_port(self.nginx)

    def kill(self, name: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes.get(name)
        if process is not None and process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_port(port: int, seconds: float = 30) -> None:
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def wait_http(url: str, seconds: float = 120) -> None:
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} never answered")


@dataclass
class World:
    round_id: int
    people: list[tuple[str, str, str]]  # (resident code, ID number, name)
    barcodes: dict[str, list[str]]
    tokens: dict[str, dict[str, str]]
    received: list[str]  # tubes already at the lab, for the uploads


async def seed(client: httpx.AsyncClient, residents: int, points: int, lab_tubes: int) -> World:
    async def ok(path: str, body: object, headers: dict[str, str] = H) -> Any:
        r = await client.post(path, json=body, headers=headers, timeout=600)
        assert r.status_code in (200, 201), f"{path}: {r.status_code} {r.text[:300]}"
        return r.json()

    await ok("/districts", {"code": "F1", "name": "演练区", "population": residents})
    codes = [f"FP{k:02d}" for k in range(points)] + ["FUP"]
    for code in codes:
        body = {
            "code": code,
            "name": f"演练采样点{code}",
            "district": "F1",
            "stations": 10,
            "people_per_hour_per_station": 60,
        }
        await ok("/sampling-points", body)
    await ok("/labs", {"code": "FLAB", "name": "演练实验室", "daily_capacity_tubes": 200_000})
    rng = random.Random(11)
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < residents:
        n = synthetic_prc_id(rng)
        if n not in seen:
            seen.add(n)
            ids.append(n)
    lines = ["id_type,id_number,name,phone,district"]
    lines += [f"prc_id,{n},演练居民{i},,F1" for i, n in enumerate(ids)]
    r = await client.post(
        "/residents/import",
        headers=H,
        timeout=600,
        files={"file": ("c.csv", io.BytesIO("\n".join(lines).encode()))},
    )
    assert r.status_code == 200, r.text[:300]
    by_line = {c["line"]: c["resident_code"] for c in r.json()["codes"]}
    people = [(by_line[i + 2], n, f"演练居民{i}") for i, n in enumerate(ids)]
    now = datetime.now(UTC)
    round_id = (await ok("/rounds", day_round("fleet", "F1")))["id"]
    barcodes: dict[str, list[str]] = {}
    tokens: dict[str, dict[str, str]] = {}
    per_point = (residents - lab_tubes * 10) // 10 // points + 20
    for code in codes:
        count = lab_tubes if code == "FUP" else per_point
        issued = await ok(f"/rounds/{round_id}/barcodes", {"sampling_point": code, "count": count})
        listing = await client.get(
            f"/rounds/{round_id}/barcodes/{issued['range_id']}", headers=H, timeout=120
        )
        barcodes[code] = listing.json()["barcodes"]
        token = (await ok("/tokens", {"role": "sampler", "sampling_point": code}))["token"]
        tokens[code] = {"Authorization": f"Bearer {token}"}
    lab = (await ok("/tokens", {"role": "lab", "lab": "FLAB"}))["token"]
    tokens["FLAB"] = {"Authorization": f"Bearer {lab}"}
    # the tubes the lab will report on during the run: swabbed, boxed, received first
    upload_people = people[-lab_tubes * 10 :]
    tubes = barcodes["FUP"][: len(upload_people) // 10]
    events = [
        {
            "event_id": f"pre-{k}",
            "type": "sample",
            "tube": tubes[k // 10],
            "resident_code": code,
            "at": now.isoformat(),
        }
        for k, (code, _, _) in enumerate(upload_people[: len(tubes) * 10])
    ]
    for start in range(0, len(events), 5000):
        await ok(
            f"/rounds/{round_id}/sync", {"events": events[start : start + 5000]}, tokens["FUP"]
        )
    for b, start in enumerate(range(0, len(tubes), 50)):
        box = f"FBOX{b:05d}"
        await ok(
            "/boxes",
            {"barcode": box, "lab": "FLAB", "tubes": tubes[start : start + 50]},
            tokens["FUP"],
        )
        await ok(f"/boxes/{box}/dispatch", {}, tokens["FUP"])
        await ok(f"/boxes/{box}/receive", {}, tokens["FLAB"])
    return World(round_id, people[: -len(upload_people)], barcodes, tokens, tubes)


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    acknowledged_scans: dict[str, tuple[str, str]] = field(default_factory=dict)
    acknowledged_uploads: set[int] = field(default_factory=set)

    def took(self, kind: str, seconds: float) -> None:
        self.latencies.setdefault(kind, []).append(seconds)


async def call(
    client: httpx.AsyncClient, tally: Tally, kind: str, method: str, path: str, **kw: Any
) -> httpx.Response | None:
    t0 = time.perf_counter()
    try:
        r = await client.request(method, path, **kw)
    except httpx.HTTPError as exc:
        tally.errors[f"{kind}: {type(exc).__name__}"] += 1
        return None
    tally.took(kind, time.perf_counter() - t0)
    if r.status_code >= 400:
        tally.errors[f"{kind}: {r.status_code} {r.headers.get('content-type', '')[:20]}"] += 1
    return r


async def drive(
    client: httpx.AsyncClient, world: World, args: argparse.Namespace, fleet: Fleet
) -> Tally:
    tally = Tally()
    stop = time.monotonic() + args.seconds
    points = [p for p in world.barcodes if p.startswith("FP")]
    share = len(world.people) // args.clerks // 10 * 10

    async def clerk(c: int) -> None:
        point = points[c % len(points)]
        people = world.people[c * share : (c + 1) * share]
        offset = (c // len(points)) * (share // 10)
        for k, (code, _, _) in enumerate(people):
            if time.monotonic() >= stop:
                return
            event_id = str(uuid.uuid4())
            body = {
                "tube": world.barcodes[point][offset + k // 10],
                "resident_code": code,
                "event_id": event_id,
            }
            for _attempt in range(20):  # the station resends until the service answers
                r = await call(
                    client,
                    tally,
                    "scan",
                    "POST",
                    f"/rounds/{world.round_id}/samples",
                    json=body,
                    headers=world.tokens[point],
                )
                if r is not None and r.status_code == 201:
                    tally.acknowledged_scans[event_id] = (body["tube"], code)
                    break
                if r is not None and r.status_code < 500:
                    break  # refused for a reason: resending will not change it
                await asyncio.sleep(0.5)

    async def lab() -> None:
        tubes = world.received
        for n, start in enumerate(range(0, len(tubes), 94)):
            if time.monotonic() >= stop:
                return
            plate = synthetic.plate_of(
                f"FPLATE{n:04d}", [(t, synthetic.NEGATIVE) for t in tubes[start : start + 94]]
            )
            data = synthetic.lis_csv([plate])
            for _attempt in range(20):
                r = await call(
                    client,
                    tally,
                    "upload",
                    "POST",
                    "/labs/FLAB/results",
                    files={"file": (f"plate-{n}.csv", data, "text/csv")},
                    headers=world.tokens["FLAB"],
                    timeout=120,
                )
                if r is not None and r.status_code == 200:
                    tally.acknowledged_uploads.add(int(r.json()["upload_id"]))
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(1.0)

    async def resident() -> None:
        rng = random.Random(5)
        while time.monotonic() < stop:
            _, id_number, name = rng.choice(world.people)
            await call(
                client,
                tally,
                "query",
                "POST",
                "/results/query",
                json={"id_number": id_number, "name": name},
            )
            await asyncio.sleep(0.2)

    async def command_center() -> None:
        while time.monotonic() < stop:
            await call(
                client, tally, "progress", "GET", f"/rounds/{world.round_id}/progress", headers=H
            )
            await asyncio.sleep(0.5)

    async def faults() -> None:
        await asyncio.sleep(args.seconds / 3)
        print(f"  t={args.seconds / 3:.0f}s: SIGKILL app0 (port {fleet.apps[0]})")
        await asyncio.to_thread(fleet.kill, "app0", signal.SIGKILL)
        await asyncio.sleep(args.seconds / 3)
        replica = await asyncpg.connect(fleet.url(fleet.replica))
        served = await replica.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'screening'"
        )
        await replica.close()
        print(
            f"  t={2 * args.seconds / 3:.0f}s: replica stopped (immediate), after serving"
            f" {served:,} transactions"
        )
        await asyncio.to_thread(fleet.stop_replica)

    await asyncio.gather(
        *(clerk(c) for c in range(args.clerks)), lab(), resident(), command_center(), faults()
    )
    return tally


async def verify(fleet: Fleet, tally: Tally) -> dict[str, int]:
    conn = await asyncpg.connect(fleet.url(fleet.primary))
    try:
        pairs = list(tally.acknowledged_scans.values())
        held = await conn.fetch(
            """
            SELECT a.tube, a.code, count(s.id) AS n
            FROM unnest($1::text[], $2::text[]) AS a(tube, code)
            LEFT JOIN tubes t ON t.barcode = a.tube
            LEFT JOIN residents p ON p.code = a.code
            LEFT JOIN samples s ON s.tube_serial = t.serial AND s.resident_id = p.id
            GROUP BY a.tube, a.code
            """,
            [t for t, _ in pairs],
            [c for _, c in pairs],
        )
        uploads = await conn.fetchval(
            "SELECT count(*) FROM uploads WHERE id = ANY($1::bigint[])",
            list(tally.acknowledged_uploads),
        )
    finally:
        await conn.close()
    return {
        "scans acknowledged": len(pairs),
        "scans held once": sum(1 for r in held if r["n"] == 1),
        "scans missing": sum(1 for r in held if r["n"] == 0),
        "scans doubled": sum(1 for r in held if r["n"] > 1),
        "uploads acknowledged": len(tally.acknowledged_uploads),
        "uploads stored": int(uploads),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--apps", type=int, default=2)
    parser.add_argument("--clerks", type=int, default=24)
    parser.add_argument("--points", type=int, default=12)
    parser.add_argument("--residents", type=int, default=40_000)
    parser.add_argument("--lab-tubes", type=int, default=1500, help="tubes the lab reports on")
    parser.add_argument("--keep", action="store_true", help="keep the folder (logs)")
    args = parser.parse_args()
    for tool in ("pgbouncer", "nginx"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            sys.exit(f"needs {tool}: apt-get install {tool}")
    fleet = Fleet(Path(tempfile.mkdtemp(prefix="screening-fleet-")))
    try:
        print(f"starting the fleet in {fleet.folder}")
        fleet.start_databases()
        fleet.start_bouncer()
        fleet.start_apps(args.apps)
        fleet.start_nginx()
        base = f"http://127.0.0.1:{fleet.nginx}"
        print(
            f"primary :{fleet.primary}, replica :{fleet.replica}, pgbouncer :{fleet.bouncer},"
            f" apps {fleet.apps}, nginx :{fleet.nginx}"
        )

        async def rehearse() -> tuple[Tally, dict[str, int]]:
            limits = httpx.Limits(max_connections=args.clerks + 16)
            async with httpx.AsyncClient(
                base_url=base + "/api/v1", timeout=30, limits=limits
            ) as client:
                world = await seed(client, args.residents, args.points, args.lab_tubes)
                print(
                    f"seeded: {len(world.people):,} people, {len(world.received):,} tubes at"
                    f" the lab; driving for {args.seconds:.0f} s"
                )
                tally = await drive(client, world, args, fleet)
            return tally, await verify(fleet, tally)

        tally, held = asyncio.run(rehearse())
    finally:
        for name in [n for n in fleet.processes if n != "pgbouncer"] + ["pgbouncer"]:
            fleet.kill(name)
        fleet.stop_databases()
        if not args.keep:
            shutil.rmtree(fleet.folder, ignore_errors=True)
    print(f"\n{'what':10} {'answered':>9} {'per s':>7} {'p50 ms':>8} {'p99 ms':>8}")
    for kind, values in sorted(tally.latencies.items()):
        ordered = sorted(values)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        print(
            f"{kind:10} {len(values):9,} {len(values) / args.seconds:7.1f}"
            f" {statistics.median(values) * 1000:8.1f} {p99 * 1000:8.1f}"
        )
    print("errors seen (each resent until answered):" if tally.errors else "errors seen: none")
    for what, n in sorted(tally.errors.items()):
        print(f"  {what}: {n}")
    for what, n in held.items():
        print(f"{what}: {n:,}")


if __name__ == "__main__":
    main()

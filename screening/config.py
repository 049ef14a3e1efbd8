"""Settings, read once from the environment (prefix ``SCREENING_``)."""

from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SCREENING_", extra="ignore")

    database_url: str | None = None
    """A ``postgresql://`` URL; when absent an embedded PostgreSQL runs in ``data_dir/pg``."""
    data_dir: Path = Path("./var")
    admin_token: str | None = None
    secret_key: str | None = None
    """Hex key (64 hex digits) for personal data at rest; else kept in ``data_dir/secret.key``."""

    database_replica_url: str | None = None
    """A streaming replica of the same database: reads that may be a second stale (the
    dashboard, progress, reports) go there, and to the primary while it is down."""
    database_pooler: bool = False
    """The URL points at PgBouncer in transaction mode: no server-side statement cache."""
    db_pool_size: int = 40
    """Connections a process keeps (opened as needed, then kept). Connections beyond it
    (``db_max_overflow``) are closed whenever the pool has this many idle, and under a
    steady load past it that was a new PostgreSQL backend every few requests: with 10,
    32 clerks' scans ran at 0.68 of /healthz with p99 138 ms paced at 0.63 of the
    flat-out rate; with more than they use, 0.81 and 46 ms at 0.77 (bench/README.md)."""
    db_max_overflow: int = 0
    db_connect_timeout: float = 5.0
    db_pool_timeout: float = 10.0
    """Seconds a request waits for a free pooled connection before 503 database-unavailable."""
    heavy_work_slots: int = 4
    """Uploads, census imports and PDFs running at once per process; keep it below
    db_pool_size + db_max_overflow so scans always find a connection."""
    heavy_work_wait_seconds: float = 2.0
    """How long heavy work waits for a slot before 503 server-busy (with Retry-After)."""
    max_labels_per_sheet: int = 3000
    """Labels in one label-sheet PDF (100 A4 pages); larger ranges come in parts."""
    max_body_bytes: int = 64 * 1024 * 1024
    query_failures_per_minute: int = 10
    rate_limit_storage: str = "postgresql"
    """Where failed resident queries are counted: ``postgresql`` (shared by every
    process) or a ``limits`` storage URI (``async+redis://host:6379``)."""
    overdue_sweep_seconds: float = 30.0
    """How often the background sweep flags overdue de-pool members and cases."""
    token_cache_seconds: float = 30.0
    max_barcodes_per_range: int = 100_000
    max_sync_events: int = 20_000
    retest_member_overdue_minutes: float = 120.0
    """A de-pool member not re-sampled this long after their case opened is overdue."""
    retest_case_overdue_minutes: float = 360.0
    """A de-pool case not resolved this long after it opened is overdue."""
    box_late_minutes: float = 120.0
    """A box dispatched and not received this long is late."""
    feed_retention_days: float = 30.0
    """Result-feed changes of closed rounds older than this are pruned (never before a
    push relay has delivered them)."""
    feed_sequence_seconds: float = 1.0
    """How often the background worker numbers new feed changes."""
    events_poll_seconds: float = 1.0
    """How often the live feed (``GET /events``) looks for new events (one poller per
    process, whatever the number of listeners)."""
    timezone: str = "Asia/Shanghai"
    """IANA zone where human-read times are shown (pages, PDFs, CSV, the command line);
    JSON keeps ISO 8601 with offsets."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(
                f"unknown time zone {value!r} (an IANA name such as Asia/Shanghai)"
            ) from error
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    census_process_above_bytes: int = 4 << 20
    """A census file larger than this is checked and sealed in a worker process."""
    census_duty: float = Field(default=0.25, gt=0, le=1)
    """The share of wall time a census import may take: after each batch it rests
    (1 - duty) / duty times as long as the batch took, so the scans answered by the
    same process and database keep their latency. 1 runs at full speed."""
    code_sheet_max_cards: int = 5_000
    """Most cards in one code-sheet PDF; beyond it a community worker prints by community."""


@lru_cache
def get_settings() -> Settings:
    return Settings()

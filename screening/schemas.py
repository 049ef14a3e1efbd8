"""Shapes shared by every package's schemas."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Path as PathParam
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from screening.errors import Unprocessable

T = TypeVar("T")

CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$"


def _storable(value: Any) -> Any:
    """Text PostgreSQL can store: no NUL, valid UTF-8 (no lone surrogates)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("must not contain a NUL character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("must be valid Unicode text") from None
    elif isinstance(value, list | tuple | set):
        for item in value:
            _storable(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable(key)
            _storable(item)
    return value


class Schema(BaseModel):
    """Every request body: unknown fields refused, text trimmed and storable."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _text_is_storable(cls, value: Any) -> Any:
        return _storable(value)


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


Limit = Field(default=100, ge=1, le=1000)


def parse_cursor(cursor: str | None, *, where: str = "query", name: str = "cursor") -> int:
    """Cursors are the last id of the previous page, as text (ids are bigint at most).

    Anything else (junk, a sign, more than 64 bits) is a 422 naming the parameter: it
    cannot be a cursor this service gave out, and read as a number it would only fail
    in the database."""
    if cursor is None:
        return 0
    text = cursor.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) > INT64_MAX:
        raise Unprocessable(
            f"{name} is not a cursor this service gave out",
            errors=[{"loc": [where, name], "msg": f"must be a whole number from 0 to {INT64_MAX}"}],
        )
    return int(text)


def page_of(items: list[T], limit: int, last_id: int | None) -> Page[T]:
    """A page; ``next_cursor`` is set only when the page is full (more may follow)."""
    more = len(items) == limit and last_id is not None
    return Page[T](items=items, next_cursor=str(last_id) if more else None)


INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
# ids in paths, bounded by their columns (integer / bigint): out of range is a 422
# naming the parameter, never a database error
Id32 = Annotated[int, PathParam(ge=1, le=INT32_MAX)]
Id64 = Annotated[int, PathParam(ge=1, le=INT64_MAX)]

# Every time a client sends: with an offset, and inside years PostgreSQL and Python
# both hold after conversion to UTC. Year 1 or 9999 with an offset (.NET's
# DateTime.MinValue, a "never" sentinel) leaves Python's datetime range once moved to
# UTC; nothing this service plans or records happens outside these years.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def _in_range(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise ValueError(f"must be from {EARLIEST:%Y-%m-%d} to before {LATEST:%Y-%m-%d} (UTC)")
    return value


Instant = Annotated[AwareDatetime, AfterValidator(_in_range)]
"""A point in time from a client: ISO 8601 with an offset, within EARLIEST..LATEST."""

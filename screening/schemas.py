"""Shapes shared by every package's schemas."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")

CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$"


class Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


Limit = Field(default=100, ge=1, le=1000)


def parse_cursor(cursor: str | None) -> int:
    """Cursors are the last id of the previous page, as text; junk reads as the start."""
    if cursor is None:
        return 0
    try:
        return max(0, int(cursor))
    except ValueError:
        return 0


def page_of(items: list[T], limit: int, last_id: int | None) -> Page[T]:
    """A page; ``next_cursor`` is set only when the page is full (more may follow)."""
    more = len(items) == limit and last_id is not None
    return Page[T](items=items, next_cursor=str(last_id) if more else None)

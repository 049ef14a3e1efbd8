"""screening.db.retrying: a request's transaction that lost a race is run again, and
one that keeps losing answers 503 with Retry-After, never a 500 (issue 16)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from screening.db import RETRY_ATTEMPTS, RetryTransaction, retrying
from screening.errors import DatabaseUnavailable


async def test_a_lost_race_is_run_again_from_a_clean_transaction(db_session):
    attempts = []

    async def work():
        attempts.append(await db_session.scalar(text("SELECT count(*) FROM districts")))
        await db_session.execute(
            text("INSERT INTO districts (code, name, population) VALUES ('R1', 'r', 1)")
        )
        if len(attempts) < 3:
            raise RetryTransaction("lost")
        return "done"

    assert await retrying(db_session, work) == "done"
    assert attempts == [0, 0, 0]  # each try started without the last one's insert


async def test_a_real_deadlock_error_is_retried(db_session):
    calls = []

    async def work():
        calls.append(1)
        if len(calls) == 1:
            # what PostgreSQL raises when it picks this transaction as the victim
            await db_session.execute(
                text(
                    "DO $$ BEGIN RAISE EXCEPTION 'picked' USING ERRCODE = 'deadlock_detected';"
                    " END $$"
                )
            )
        return len(calls)

    assert await retrying(db_session, work) == 2


async def test_losing_every_time_is_a_503_not_a_500(db_session):
    async def work():
        raise RetryTransaction("lost again")

    with pytest.raises(DatabaseUnavailable) as caught:
        await retrying(db_session, work)
    assert caught.value.status == 503 and caught.value.headers["Retry-After"]
    assert RETRY_ATTEMPTS >= 3


async def test_other_errors_are_not_retried(db_session):
    calls = []

    async def work():
        calls.append(1)
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        await retrying(db_session, work)
    assert calls == [1]

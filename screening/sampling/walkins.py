"""Walk-ins in a sync batch: a ``sample`` event carrying ``resident: {id_type,
id_number, name, phone?, nationality?}`` instead of a code (someone with no code,
typed at the station or read from an ID card while offline). The person is found or
registered through the residents service (:func:`register_resident`, its validation
and its answer for a known person), in the district of the tube's sampling point,
then sampled like anyone else by the replay. A walk-in registered only for an event
the replay refuses is forgotten again by the caller (nothing is created for a
rejected event)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, TEXT
from sqlalchemy.ext.asyncio import AsyncSession

from screening.errors import AppError
from screening.privacy import Vault
from screening.residents.schemas import ResidentCreate
from screening.residents.service import register_resident
from screening.sampling.events import Event, Outcome
from screening.sampling.schemas import WalkInRegistered
from screening.sampling.service import may_use
from screening.tokens.service import Principal


async def walk_ins(
    session: AsyncSession,
    principal: Principal,
    vault: Vault,
    events: list[Event],
    ranges: dict[int, Any],
    outcome: Outcome,
    refused: set[str],
) -> set[str]:
    """Find or register each walk-in whose tube the caller may use (in the district of
    the tube's sampling point); answer the codes registered by this batch."""
    created: set[str] = set()
    for event in events:
        if event.walk_in is None:
            continue
        issued = ranges.get(event.serial)
        if issued is None or not may_use(principal, issued.point):
            continue  # refused by the replay, registering nobody
        fields = event.walk_in.model_dump(exclude_none=True)
        if "nationality" not in ResidentCreate.model_fields:
            fields.pop("nationality", None)
        try:
            body = ResidentCreate.model_validate({**fields, "district": issued.district})
            code, was_created = await register_resident(session, vault, body)
        except ValidationError as exc:
            detail = "; ".join(
                f"resident.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
                for err in exc.errors(include_url=False)
            )
            outcome.reject(event, "invalid-event", detail)
            refused.add(event.event_id)
            continue
        except AppError as exc:
            outcome.reject(event, exc.type, f"resident: {exc.detail}")
            refused.add(event.event_id)
            continue
        event.resident_code = code
        if was_created:
            created.add(code)
    return created


_WALK_INS_BEFORE = text(
    """
    SELECT e.event_id, p.code FROM applied_events e
    JOIN samples s ON s.id = e.sample_id JOIN residents p ON p.id = s.resident_id
    WHERE e.round_id = :round_id AND e.event_id = ANY(:event_ids)
    """
).bindparams(bindparam("event_ids", type_=ARRAY(TEXT)))


async def walk_ins_sent_before(
    session: AsyncSession, round_id: int, duplicates: list[Event]
) -> list[WalkInRegistered]:
    """The codes of walk-ins applied by an earlier sending of the same events (the
    answer to that one may never have reached the phone)."""
    if not duplicates:
        return []
    rows = await session.execute(
        _WALK_INS_BEFORE, {"round_id": round_id, "event_ids": [e.event_id for e in duplicates]}
    )
    return [WalkInRegistered(event_id=row.event_id, resident_code=row.code) for row in rows]

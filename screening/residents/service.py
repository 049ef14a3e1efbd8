"""Registering residents (one, or a census file) and their own result query.

Registration is a hot path and a bulk path, so it speaks SQL: one statement inserts
a whole batch with ``ON CONFLICT (id_hash) DO NOTHING`` and answers every line with
its code, whether the person is new or already known.
"""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY, BYTEA, INTEGER, TEXT
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession
from stdnum.iso7064 import mod_37_36

from pooling.standing import SampleOutcome, resident_status
from screening.errors import NotFound, Unprocessable, UnreadableFile
from screening.privacy import (
    ID_TYPES,
    InvalidIdNumber,
    Vault,
    mask_id_number,
    mask_name,
    mask_phone,
    normalize_id_number,
    normalize_name,
)
from screening.reference.models import District
from screening.residents.models import Resident
from screening.residents.schemas import (
    ImportCode,
    ImportRejection,
    ImportSummary,
    ResidentCreate,
    ResidentRead,
    RoundStanding,
)

CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # no I, L, O, U: nothing to misread
CODE_RANDOM_CHARS = 13
IMPORT_COLUMNS = ("id_type", "id_number", "name", "phone", "district")
IMPORT_BATCH = 5_000


class InvalidIdNumberError(Unprocessable):
    type, title = "invalid-id-number", "Invalid ID number"


def new_resident_code() -> str:
    """An opaque random personal code (65 bits) with a check character.

    Never derived from the ID number: a code leaks nothing about its holder.
    """
    body = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_RANDOM_CHARS))
    return body + mod_37_36.calc_check_digit(body, alphabet=CODE_ALPHABET)


def is_resident_code(code: str) -> bool:
    return (
        len(code) == CODE_RANDOM_CHARS + 1
        and all(c in CODE_ALPHABET for c in code)
        and mod_37_36.is_valid(code, alphabet=CODE_ALPHABET)
    )


@dataclass(frozen=True, slots=True)
class Registration:
    """One validated person, ready to store (values still in clear)."""

    id_type: str
    id_number: str
    name: str
    phone: str | None
    district_id: int


_REGISTER = text(
    """
    WITH input AS (
        SELECT * FROM unnest(:ords, :codes, :id_types, :hashes, :id_encs, :name_encs,
                             :phone_encs, :districts)
            AS t(ord, code, id_type, id_hash, id_enc, name_enc, phone_enc, district_id)
    ), ins AS (
        INSERT INTO residents (code, id_type, id_hash, id_enc, name_enc, phone_enc, district_id)
        SELECT DISTINCT ON (id_hash) code, id_type, id_hash, id_enc, name_enc, phone_enc,
               district_id
        FROM input ORDER BY id_hash, ord
        ON CONFLICT (id_hash) DO NOTHING
        RETURNING id_hash, code
    )
    SELECT i.ord, i.id_hash, COALESCE(ins.code, r.code) AS code, ins.code = i.code AS created
    FROM input i
    LEFT JOIN ins ON ins.id_hash = i.id_hash
    LEFT JOIN residents r ON r.id_hash = i.id_hash
    ORDER BY i.ord
    """
).bindparams(
    bindparam("ords", type_=ARRAY(INTEGER)),
    bindparam("codes", type_=ARRAY(TEXT)),
    bindparam("id_types", type_=ARRAY(TEXT)),
    bindparam("hashes", type_=ARRAY(BYTEA)),
    bindparam("id_encs", type_=ARRAY(BYTEA)),
    bindparam("name_encs", type_=ARRAY(BYTEA)),
    bindparam("phone_encs", type_=ARRAY(BYTEA)),
    bindparam("districts", type_=ARRAY(INTEGER)),
)


async def register_many(
    session: AsyncSession, vault: Vault, people: Sequence[Registration]
) -> list[tuple[str, bool]]:
    """Store ``people``; answer ``(resident_code, created)`` for each, in order."""
    if not people:
        return []
    hashes = [vault.id_hash(p.id_type, p.id_number) for p in people]
    rows = (
        await session.execute(
            _REGISTER,
            {
                "ords": list(range(len(people))),
                "codes": [new_resident_code() for _ in people],
                "id_types": [p.id_type for p in people],
                "hashes": hashes,
                "id_encs": [vault.encrypt(p.id_number) for p in people],
                "name_encs": [vault.encrypt(p.name) for p in people],
                "phone_encs": [vault.encrypt(p.phone) if p.phone else None for p in people],
                "districts": [p.district_id for p in people],
            },
        )
    ).all()
    answers = [(row.code, bool(row.created)) for row in rows]
    missing = [i for i, (code, _) in enumerate(answers) if code is None]
    if missing:
        # Registered by a concurrent request that committed after our snapshot.
        rows_found = await session.execute(
            select(Resident.id_hash, Resident.code).where(
                Resident.id_hash.in_([hashes[i] for i in missing])
            )
        )
        found = {id_hash: code for id_hash, code in rows_found}
        for i in missing:
            answers[i] = (found[hashes[i]], False)
    return answers


async def _district_ids(session: AsyncSession, codes: set[str]) -> dict[str, int]:
    rows = await session.execute(select(District.code, District.id).where(District.code.in_(codes)))
    return dict(rows.all())


def _validate(
    id_type: str, id_number: str, name: str, phone: str | None
) -> tuple[str, str, str | None]:
    """Normalised (id_number, name, phone); raises InvalidIdNumber or ValueError."""
    if id_type not in ID_TYPES:
        raise ValueError(f"id_type must be one of {', '.join(ID_TYPES)}")
    normalized = normalize_id_number(id_type, id_number)
    clean_name = normalize_name(name)
    if not clean_name or len(clean_name) > 100:
        raise ValueError("name is required (at most 100 characters)")
    clean_phone = "".join(c for c in (phone or "") if c.isdigit() or c == "+") or None
    if clean_phone is not None and not 5 <= len(clean_phone) <= 20:
        raise ValueError("phone must have 5 to 20 digits")
    return normalized, clean_name, clean_phone


async def register_resident(
    session: AsyncSession, vault: Vault, body: ResidentCreate
) -> tuple[str, bool]:
    try:
        id_number, name, phone = _validate(body.id_type, body.id_number, body.name, body.phone)
    except InvalidIdNumber as exc:
        raise InvalidIdNumberError(
            str(exc), errors=[{"loc": ["body", "id_number"], "msg": str(exc)}]
        ) from None
    except ValueError as exc:
        raise Unprocessable(str(exc)) from None
    districts = await _district_ids(session, {body.district})
    if body.district not in districts:
        raise NotFound(f"no district {body.district!r}")
    [answer] = await register_many(
        session,
        vault,
        [Registration(body.id_type, id_number, name, phone, districts[body.district])],
    )
    return answer


def _read_census(raw: IO[bytes]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) for each data line of a census CSV (header on line 1)."""
    data = raw.read()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            content = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - gb18030 decodes almost anything
        raise UnreadableFile("the file is neither UTF-8 nor GB18030 text")
    reader = csv.reader(io.StringIO(content, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except (StopIteration, csv.Error):
        raise UnreadableFile("the file is empty; expected a header line") from None
    missing = [c for c in IMPORT_COLUMNS if c not in header and c != "phone"]
    if missing:
        raise UnreadableFile(
            f"line 1: the header lacks {', '.join(missing)}; expected {','.join(IMPORT_COLUMNS)}"
        )
    index = {name: header.index(name) for name in IMPORT_COLUMNS if name in header}
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            yield line, {name: row[i].strip() if i < len(row) else "" for name, i in index.items()}
    except csv.Error as exc:
        raise UnreadableFile(f"line {reader.line_num}: {exc}") from None


async def import_residents(session: AsyncSession, vault: Vault, raw: IO[bytes]) -> ImportSummary:
    """Register every good line of a census CSV; each bad line comes back with its reason."""
    rejected: list[ImportRejection] = []
    codes: list[ImportCode] = []
    created = existing = 0
    district_cache: dict[str, int | None] = {}
    batch: list[tuple[int, Registration]] = []

    async def flush() -> None:
        nonlocal created, existing
        answers = await register_many(session, vault, [reg for _, reg in batch])
        for (line, _), (code, was_created) in zip(batch, answers, strict=True):
            codes.append(ImportCode(line=line, resident_code=code))
            created += was_created
            existing += not was_created
        batch.clear()

    for line, row in _read_census(raw):
        district = row["district"]
        if district not in district_cache:
            district_cache[district] = (await _district_ids(session, {district})).get(district)
        try:
            id_number, name, phone = _validate(
                row["id_type"], row["id_number"], row["name"], row.get("phone")
            )
        except InvalidIdNumber as exc:
            rejected.append(ImportRejection(line=line, type="invalid-id-number", detail=str(exc)))
            continue
        except ValueError as exc:
            rejected.append(ImportRejection(line=line, type="invalid-request", detail=str(exc)))
            continue
        district_id = district_cache[district]
        if district_id is None:
            rejected.append(
                ImportRejection(
                    line=line, type="unknown-district", detail=f"no district {district!r}"
                )
            )
            continue
        batch.append((line, Registration(row["id_type"], id_number, name, phone, district_id)))
        if len(batch) >= IMPORT_BATCH:
            await flush()
    if batch:
        await flush()
    codes.sort(key=lambda c: c.line)
    return ImportSummary(created=created, existing=existing, rejected=rejected, codes=codes)


async def read_resident(session: AsyncSession, vault: Vault, code: str) -> ResidentRead:
    row = (
        await session.execute(
            select(Resident, District.code)
            .join(District, District.id == Resident.district_id)
            .where(Resident.code == code)
        )
    ).first()
    if row is None:
        raise NotFound("no resident with that code")
    resident, district = row
    return ResidentRead(
        resident_code=resident.code,
        id_type=resident.id_type,
        id_masked=mask_id_number(vault.decrypt(resident.id_enc)),
        name_masked=mask_name(vault.decrypt(resident.name_enc)),
        phone_masked=mask_phone(vault.decrypt(resident.phone_enc)) if resident.phone_enc else None,
        district=district,
    )


async def resident_ids_for_code(session: AsyncSession, codes: Sequence[str]) -> dict[str, int]:
    rows = await session.execute(select(Resident.code, Resident.id).where(Resident.code.in_(codes)))
    return dict(rows.all())


def _candidate_hashes(vault: Vault, id_number: str) -> list[bytes]:
    hashes = []
    for id_type in ID_TYPES:
        try:
            hashes.append(vault.id_hash(id_type, normalize_id_number(id_type, id_number)))
        except InvalidIdNumber:
            continue
    return hashes


# one round trip: the people holding the ID number, and every sample of theirs (a pool
# of one reads as a single)
_LOOKUP = text(
    """
    SELECT p.id AS resident_id, p.name_enc,
           r.id AS round_id, r.name AS round_name,
           CASE WHEN t.capacity = 1 THEN 'single' ELSE s.kind END AS kind, s.sampled_at,
           t.result_call AS call, t.resulted_at AS reported_at, m.status AS retest,
           CASE WHEN m.status IN ('negative', 'positive', 'invalid') THEN m.updated_at END
               AS retest_at
    FROM residents p
    LEFT JOIN samples s ON s.resident_id = p.id
    LEFT JOIN rounds r ON r.id = s.round_id
    LEFT JOIN tubes t ON t.serial = s.tube_serial
    LEFT JOIN retest_cases c ON c.pool_tube_serial = t.serial
    LEFT JOIN retest_members m ON m.case_id = c.id AND m.resident_id = s.resident_id
    WHERE p.id_hash = ANY(:hashes)
    ORDER BY r.id DESC, s.sampled_at, s.id
    """
).bindparams(bindparam("hashes", type_=ARRAY(BYTEA)))


async def query_standings(
    session: AsyncSession, vault: Vault, id_number: str, name: str
) -> list[RoundStanding] | None:
    """The rounds of the person holding this ID number *and* this name, newest first
    (``[]`` before their first sample); None for either mismatch, alike."""
    hashes = _candidate_hashes(vault, id_number)
    if not hashes:
        return None
    rows = (await session.execute(_LOOKUP, {"hashes": hashes})).all()
    wanted = normalize_name(name)
    matching = {
        row.resident_id
        for row in {row.resident_id: row for row in rows}.values()
        if vault.decrypt(row.name_enc) == wanted
    }
    if not matching:
        return None
    return standings([row for row in rows if row.resident_id in matching and row.round_id])


def standings(rows: Sequence[Row[Any]]) -> list[RoundStanding]:
    """One item per round the person was sampled in, from their sample rows (newest
    round first, oldest sample first within a round)."""
    by_round: dict[int, list[Row[Any]]] = {}
    for row in rows:
        by_round.setdefault(row.round_id, []).append(row)
    items = []
    for group in by_round.values():
        first, last = group[0], group[-1]
        outcomes = [SampleOutcome(r.kind, r.call, r.retest) for r in group]
        reported = [t for r in group for t in (r.reported_at, r.retest_at) if t]
        items.append(
            RoundStanding(
                round=first.round_name,
                round_id=first.round_id,
                sampled_at=last.sampled_at,
                kind=last.kind,
                status=resident_status(outcomes),
                reported_at=max(reported) if reported else None,
            )
        )
    return items

"""Registering residents (one at a time, by a clerk, a sampler or the resident), and
reading one back masked.

Registration is a hot path and a bulk path, so it speaks SQL: one statement inserts
a whole batch with ``ON CONFLICT (id_hash) DO NOTHING`` and answers every line with
its code, whether the person is new or already known. A known ID number under a
*different* name is an identity conflict, never a merge: the second person must not
be handed the first one's code (and so their results).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from screening.errors import Conflict, NotFound, Unprocessable
from screening.privacy import Vault, mask_address, mask_id_number, mask_name, mask_phone
from screening.reference.models import District, SamplingPoint
from screening.residents.codes import is_resident_code, new_resident_code
from screening.residents.identity import (
    InvalidIdNumber,
    check_passport_number,
    normalize_id_number,
    normalize_name,
    same_name,
    split_canonical,
)
from screening.residents.models import Resident
from screening.residents.schemas import DistrictChoice, ResidentCode, ResidentCreate, ResidentRead

NAME_MAX = 100
COMMUNITY_MAX = 64
ADDRESS_MAX = 200


class InvalidIdNumberError(Unprocessable):
    type, title = "invalid-id-number", "Invalid ID number"


class IdentityConflict(Conflict):
    type, title = "identity-conflict", "ID number registered under another name"
    DETAIL = (
        "该证件号码已用另一个姓名登记过。请核对证件号码和姓名；"
        "如确为本人，请持证件到社区或采样点核实更正。"
    )


class BadResidentCode(Unprocessable):
    type, title = "bad-resident-code", "Resident code check character wrong"


@dataclass(frozen=True, slots=True)
class Registration:
    """One validated person, ready to store (values still in clear).

    ``id_number`` is the canonical form from ``normalize_id_number`` (for a passport
    ``USA:E1234567``: the nationality is part of who they are).
    """

    id_type: str
    id_number: str
    name: str
    phone: str | None
    district_id: int
    community: str | None = None
    address: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What registering one person came to: their code, or None for a conflict."""

    resident_code: str | None
    created: bool

    @property
    def conflict(self) -> bool:
        return self.resident_code is None


def validate_person(
    id_type: str,
    id_number: str,
    name: str,
    phone: str | None,
    *,
    nationality: str | None = None,
    community: str | None = None,
    address: str | None = None,
) -> tuple[str, str, str | None, str | None, str | None]:
    """Normalised (id_number, name, phone, community, address).

    Raises InvalidIdNumber for the ID, ValueError (a Chinese sentence) for the rest.
    """
    canonical = normalize_id_number(id_type, id_number, nationality=nationality)
    clean_name = normalize_name(name)
    if not clean_name or len(clean_name) > NAME_MAX:
        raise ValueError(f"姓名不能为空，最多{NAME_MAX}个字。")
    if any(unicodedata.category(c) == "Cc" for c in clean_name):
        # a NUL or another invisible character is a broken export, not a name
        raise ValueError("姓名里有看不见的控制字符（NUL 等），请重新输入姓名。")
    clean_phone = "".join(c for c in (phone or "") if c in "+0123456789") or None
    if clean_phone is not None and not 5 <= len(clean_phone) <= 20:
        raise ValueError("电话号码应为5至20位数字。")
    clean_community = " ".join((community or "").split()) or None
    if clean_community is not None and (
        len(clean_community) > COMMUNITY_MAX or "\x00" in clean_community
    ):
        raise ValueError(f"社区名称最多{COMMUNITY_MAX}个字。")
    clean_address = " ".join((address or "").split()) or None
    if clean_address is not None and len(clean_address) > ADDRESS_MAX:
        raise ValueError(f"住址最多{ADDRESS_MAX}个字。")
    return canonical, clean_name, clean_phone, clean_community, clean_address


@dataclass(frozen=True, slots=True)
class Sealed:
    """A batch in the form it is stored in: hashed, encrypted, with fresh codes
    (CPU work, done off the event loop for big batches)."""

    people: Sequence[Registration]
    params: dict[str, list[Any]]

    @property
    def hashes(self) -> list[bytes]:
        hashes: list[bytes] = self.params["hashes"]
        return hashes


def seal(vault: Vault, people: Sequence[Registration]) -> Sealed:
    """Hash and encrypt ``people`` (the printed number is encrypted; the hash covers
    the canonical form, nationality included)."""
    numbers = [split_canonical(p.id_number) for p in people]
    return Sealed(
        people,
        {
            "ords": list(range(len(people))),
            "codes": [new_resident_code() for _ in people],
            "id_types": [p.id_type for p in people],
            "hashes": [vault.id_hash(p.id_type, p.id_number) for p in people],
            "id_encs": [vault.encrypt(number) for number, _ in numbers],
            "name_encs": [vault.encrypt(p.name) for p in people],
            "phone_encs": [vault.encrypt(p.phone) if p.phone else None for p in people],
            "districts": [p.district_id for p in people],
            "nationalities": [country for _, country in numbers],
            "communities": [p.community for p in people],
            "address_encs": [vault.encrypt(p.address) if p.address else None for p in people],
            "passport_hashes": [
                vault.passport_number_hash(number) if p.id_type == "passport" else None
                for p, (number, _) in zip(people, numbers, strict=True)
            ],
        },
    )


# Spoken through asyncpg on the session's own connection (inside its transaction):
# asyncpg encodes the twelve arrays in C, where SQLAlchemy's bind processing walked
# every element in Python on the event loop (about 60 ms for 5,000 people). The answer
# comes back as three arrays, not a row per person: a census batch then leaves three
# lists in the service process instead of thousands of live records for its garbage
# collector to walk.
_REGISTER = """
    WITH input AS (
        SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::bytea[], $5::bytea[],
                             $6::bytea[], $7::bytea[], $8::int[], $9::text[], $10::text[],
                             $11::bytea[], $12::bytea[])
            AS t(ord, code, id_type, id_hash, id_enc, name_enc, phone_enc, district_id,
                 nationality, community, address_enc, passport_number_hash)
    ), ins AS (
        INSERT INTO residents (code, id_type, id_hash, id_enc, name_enc, phone_enc,
                               district_id, nationality, community, address_enc,
                               passport_number_hash)
        SELECT DISTINCT ON (id_hash) code, id_type, id_hash, id_enc, name_enc, phone_enc,
               district_id, nationality, community, address_enc, passport_number_hash
        FROM input ORDER BY id_hash, ord
        ON CONFLICT (id_hash) DO NOTHING
        RETURNING id_hash, code
    )
    SELECT array_agg(COALESCE(ins.code, r.code) ORDER BY i.ord),
           array_agg(COALESCE(ins.code = i.code, false) ORDER BY i.ord),
           array_agg(r.name_enc ORDER BY i.ord)
    FROM input i
    LEFT JOIN ins ON ins.id_hash = i.id_hash
    LEFT JOIN residents r ON r.id_hash = i.id_hash
"""
_COLUMNS = (
    "ords",
    "codes",
    "id_types",
    "hashes",
    "id_encs",
    "name_encs",
    "phone_encs",
    "districts",
    "nationalities",
    "communities",
    "address_encs",
    "passport_hashes",
)

Answer = tuple[str | None, bool, bytes | None]  # code, created, the known person's name


@dataclass(frozen=True)
class Answers:
    """What storing a batch answered, one column a field, in the batch's order: the
    code each person holds, whether this batch created them, and the stored name of
    one already known (None for the new, and for a repeat within the batch)."""

    codes: list[str]
    created: list[bool]
    known_names: list[bytes | None]

    def rows(self) -> list[Answer]:
        return list(zip(self.codes, self.created, self.known_names, strict=True))


def judge(
    vault: Vault, names: Sequence[str], hashes: Sequence[bytes], answers: Iterable[Answer]
) -> list[Outcome]:
    """Each person's outcome (``names`` and ``hashes`` in the batch's order): a known ID
    number stays that person's only under a name that compares equal (CPU work:
    decrypts the known names)."""
    first_name: dict[bytes, str] = {}
    for name, id_hash in zip(names, hashes, strict=True):
        first_name.setdefault(id_hash, name)
    outcomes = []
    for name, id_hash, (code, created, known) in zip(names, hashes, answers, strict=True):
        if created:
            outcomes.append(Outcome(code, True))
            continue
        # known before this batch (its stored name), or earlier in this batch
        holder = vault.decrypt(known) if known is not None else first_name[id_hash]
        outcomes.append(Outcome(code, False) if same_name(holder, name) else Outcome(None, False))
    return outcomes


async def store_columns(session: AsyncSession, params: dict[str, list[Any]]) -> Answers:
    """Insert a sealed batch (``Sealed.params``, not empty); its answers as columns."""
    connection = await (await session.connection()).get_raw_connection()
    driver: Any = connection.driver_connection
    codes, created, known = await driver.fetchrow(_REGISTER, *(params[c] for c in _COLUMNS))
    missing = [i for i, code in enumerate(codes) if code is None]
    if missing:
        # Registered by a concurrent request that committed after our snapshot.
        hashes = params["hashes"]
        found_rows = await session.execute(
            select(Resident.id_hash, Resident.code, Resident.name_enc).where(
                Resident.id_hash.in_([hashes[i] for i in missing])
            )
        )
        found = {id_hash: (code, name) for id_hash, code, name in found_rows}
        for i in missing:
            codes[i], known[i] = found[hashes[i]]
    return Answers(codes, created, known)


async def store(session: AsyncSession, sealed: Sealed) -> list[Answer]:
    """Insert the batch; answer (code, created, known name) per person, in order."""
    return (await store_columns(session, sealed.params)).rows()


async def register_people(
    session: AsyncSession, vault: Vault, people: Sequence[Registration], *, offload: bool = False
) -> list[Outcome]:
    """Store ``people``; one Outcome each, in order (conflicts are not stored).
    ``offload`` runs the hashing, encryption and name checks in a worker thread."""
    if not people:
        return []
    if offload:
        sealed = await anyio.to_thread.run_sync(seal, vault, people)
        answers = await store(session, sealed)
        names = [p.name for p in people]
        return await anyio.to_thread.run_sync(judge, vault, names, sealed.hashes, answers)
    sealed = seal(vault, people)
    answers = await store(session, sealed)
    return judge(vault, [p.name for p in people], sealed.hashes, answers)


async def register_many(
    session: AsyncSession, vault: Vault, people: Sequence[Registration]
) -> list[tuple[str, bool]]:
    """Store ``people``; answer ``(resident_code, created)`` for each, in order.
    Raises IdentityConflict when one of them is a known ID number under another name."""
    answers = []
    for outcome in await register_people(session, vault, people):
        if outcome.resident_code is None:
            raise IdentityConflict(IdentityConflict.DETAIL)
        answers.append((outcome.resident_code, outcome.created))
    return answers


def passport_number_of(printed: str) -> str:
    """The number a passport's look-up hash covers (a number stored before v1.1 that
    has no passport's shape: its plain form, as the query sends it)."""
    try:
        return check_passport_number(printed)
    except InvalidIdNumber:
        return normalize_id_number("other", printed)


BACKFILL_BATCH = 1_000


async def backfill_passport_numbers(engine: AsyncEngine, vault: Vault) -> int:
    """Hash the number alone of every passport stored before migration 0012 (which
    could not: the key is the deployment's). Run by each process as it starts; a
    second process waits on the first one's rows and then finds them done. Answers
    how many it filled in (none, once done: a probe of an empty partial index)."""
    filled = 0
    while True:
        async with engine.begin() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT id, id_enc FROM residents WHERE id_type = 'passport'"
                        " AND passport_number_hash IS NULL ORDER BY id LIMIT :n FOR UPDATE"
                    ),
                    {"n": BACKFILL_BATCH},
                )
            ).all()
            if not rows:
                return filled
            await conn.execute(
                text(
                    "UPDATE residents r SET passport_number_hash = f.hash FROM unnest("
                    "CAST(:ids AS bigint[]), CAST(:hashes AS bytea[])) AS f(id, hash)"
                    " WHERE r.id = f.id"
                ),
                {
                    "ids": [row.id for row in rows],
                    "hashes": [
                        vault.passport_number_hash(passport_number_of(vault.decrypt(row.id_enc)))
                        for row in rows
                    ],
                },
            )
            filled += len(rows)


async def district_ids(session: AsyncSession, codes: set[str] | None = None) -> dict[str, int]:
    """District code -> id (all districts when ``codes`` is None)."""
    query = select(District.code, District.id)
    if codes is not None:
        query = query.where(District.code.in_(codes))
    return dict((await session.execute(query)).all())


async def district_choices(session: AsyncSession) -> list[DistrictChoice]:
    rows = await session.execute(select(District.code, District.name).order_by(District.name))
    return [DistrictChoice(code=code, name=name) for code, name in rows]


async def district_of_point(session: AsyncSession, sampling_point_id: int) -> str:
    code = await session.scalar(
        select(District.code)
        .join(SamplingPoint, SamplingPoint.district_id == District.id)
        .where(SamplingPoint.id == sampling_point_id)
    )
    if code is None:
        raise NotFound("这个采样点没有所属的区。")
    return code


async def register_resident(
    session: AsyncSession,
    vault: Vault,
    body: ResidentCreate,
    *,
    default_district: str | None = None,
) -> tuple[str, bool]:
    """Register one person (``default_district`` when the body names none: a sampler's
    point's district); ``(resident_code, created)``."""
    try:
        id_number, name, phone, community, address = validate_person(
            body.id_type,
            body.id_number,
            body.name,
            body.phone,
            nationality=body.nationality,
            community=body.community,
            address=body.address,
        )
    except InvalidIdNumber as exc:
        raise InvalidIdNumberError(
            str(exc), errors=[{"loc": ["body", exc.field], "msg": str(exc)}]
        ) from None
    except ValueError as exc:
        raise Unprocessable(str(exc)) from None
    district = body.district or default_district
    if not district:
        raise Unprocessable(
            "请选择所在的区。", errors=[{"loc": ["body", "district"], "msg": "请选择所在的区。"}]
        )
    districts = await district_ids(session, {district})
    if district not in districts:
        raise NotFound(f"没有代码为“{district}”的区，请核对。")
    person = Registration(
        body.id_type, id_number, name, phone, districts[district], community, address
    )
    [answer] = await register_many(session, vault, [person])
    return answer


async def answer_for(
    session: AsyncSession, vault: Vault, code: str, name: str, *, created: bool
) -> ResidentCode:
    """The registration answer; a known person's masked name is the one on record
    (``王 小明`` again is still ``王*明``)."""
    if not created:
        stored = await session.scalar(select(Resident.name_enc).where(Resident.code == code))
        if stored is not None:
            name = vault.decrypt(stored)
    return ResidentCode(resident_code=code, name_masked=mask_name(normalize_name(name)))


async def read_resident(session: AsyncSession, vault: Vault, code: str) -> ResidentRead:
    row = (
        await session.execute(
            select(Resident, District.code)
            .join(District, District.id == Resident.district_id)
            .where(Resident.code == code)
        )
    ).first()
    if row is None:
        raise NotFound("没有这个居民码。")
    resident, district = row
    return ResidentRead(
        resident_code=resident.code,
        id_type=resident.id_type,
        id_masked=mask_id_number(vault.decrypt(resident.id_enc)),
        name_masked=mask_name(vault.decrypt(resident.name_enc)),
        phone_masked=mask_phone(vault.decrypt(resident.phone_enc)) if resident.phone_enc else None,
        district=district,
        nationality=resident.nationality,
        community=resident.community,
        address_masked=mask_address(vault.decrypt(resident.address_enc))
        if resident.address_enc
        else None,
    )


async def resident_exists(session: AsyncSession, code: str) -> bool:
    """Whether ``code`` is a resident's (422 bad-resident-code for a mistyped one)."""
    if not is_resident_code(code):
        raise BadResidentCode("居民码校验位不对，请重新扫描或核对。")
    return await session.scalar(select(Resident.id).where(Resident.code == code)) is not None


async def resident_ids_for_code(session: AsyncSession, codes: Sequence[str]) -> dict[str, int]:
    rows = await session.execute(select(Resident.code, Resident.id).where(Resident.code.in_(codes)))
    return dict(rows.all())

"""Sync batches that must never fail whole (issue 11 "Nothing lost at the station",
issue 16 "Sampling abuse" and odd inputs): malformed events rejected alone, walk-ins
registered and sampled in one event, nothing created for a rejected event."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from pooling.barcodes import parse_barcode
from screening.residents.codes import new_resident_code
from screening.sampling.events import _plain
from screening.sampling.schemas import SyncEvent
from tests.conftest import valid_prc_id
from tests.screening.sampling.test_field_rules import rejected, sample, sync


async def counts(db_session):
    row = (
        await db_session.execute(
            text(
                "SELECT (SELECT count(*) FROM tubes), (SELECT count(*) FROM samples),"
                " (SELECT count(*) FROM residents), (SELECT count(*) FROM applied_events)"
            )
        )
    ).one()
    return tuple(row)


class TestMalformedEvents:
    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"event_id": None}, "event_id"),
            ({"type": "teleport"}, "type"),
            ({"tube": None}, "tube"),
            ({"resident_code": "X" * 60}, "resident_code"),
            ({"resident_code": None}, "resident_code"),
            ({"kind": "triple"}, "kind"),
            ({"at": "yesterday"}, "at"),
            ({"at": "2026-11-22T09:00:00"}, "at"),
            ({"at": "0001-01-01T00:00:00+01:00"}, "at"),
            ({"at": "9999-12-31T23:59:59-01:00"}, "at"),
            ({"at": "2099-01-01T00:00:00+08:00"}, "at"),
            ({"resident_code": "A\x00B"}, "resident_code"),
            ({"tube": ["a list"]}, "tube"),
        ],
    )
    async def test_a_malformed_event_is_rejected_alone_naming_its_field(self, scene, change, field):
        tube = scene.barcodes["P1"][0]
        bad = {**sample("bad", tube, scene.codes[0]), **change}
        bad = {k: v for k, v in bad.items() if v is not None}
        body = await sync(
            scene, [sample("ok1", tube, scene.codes[1]), bad, sample("ok2", tube, scene.codes[2])]
        )
        assert body["applied"] == 2, body
        [rejection] = body["rejected"]
        assert rejection["type"] == "invalid-event"
        assert rejection["index"] == 1
        assert field in rejection["detail"]
        if "event_id" in bad:
            assert rejection["event_id"] == "bad"

    async def test_an_event_id_the_answer_cannot_carry_is_rejected_alone(self, scene):
        tube = scene.barcodes["P1"][0]
        ok = json.dumps(sample("ok", tube, scene.codes[1]))
        body = (
            '{"events": [{"event_id": "a\\u0000b", "type": "sample"},'
            ' {"event_id": "c\\ud800d", "type": "seal"}, ' + ok + "]}"
        )
        r = await scene.client.post(
            f"/rounds/{scene.round_id}/sync",
            content=body.encode(),
            headers={**scene.tokens["P1"], "content-type": "application/json"},
        )
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["applied"] == 1
        assert [(x["index"], x["type"], x["event_id"]) for x in answer["rejected"]] == [
            (0, "invalid-event", "a\ufffdb"),
            (1, "invalid-event", "c?d"),
        ]

    async def test_an_event_that_is_not_an_object_is_rejected_alone(self, scene):
        tube = scene.barcodes["P1"][0]
        body = await sync(scene, [42, "x", None, sample("ok", tube, scene.codes[1])])
        assert body["applied"] == 1
        assert [(x["index"], x["type"]) for x in body["rejected"]] == [
            (0, "invalid-event"),
            (1, "invalid-event"),
            (2, "invalid-event"),
        ]

    @pytest.mark.parametrize(
        "envelope", [[], {"events": "x"}, {"evts": []}, "events", {"events": [{}] * 5001}]
    )
    async def test_only_a_bad_envelope_or_over_5000_events_fails_the_request(self, scene, envelope):
        r = await scene.client.post(
            f"/rounds/{scene.round_id}/sync", json=envelope, headers=scene.tokens["P1"]
        )
        assert (r.status_code, r.json()["type"]) == (422, "invalid-request")

    async def test_5000_events_are_not_too_many(self, scene):
        body = await sync(scene, [{"event_id": f"e{i}"} for i in range(5000)])
        assert len(body["rejected"]) == 5000

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        st.lists(
            st.dictionaries(
                st.sampled_from(
                    ["event_id", "type", "tube", "at", "resident_code", "kind", "resident"]
                ),
                st.one_of(
                    st.none(),
                    st.integers(),
                    st.text(max_size=70),
                    st.sampled_from(["sample", "seal", "pool", "single"]),
                    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
                    st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=3),
                ),
            ),
            max_size=8,
        )
    )
    async def test_any_batch_of_odd_events_is_accounted_for_event_by_event(
        self, scene_once, events
    ):
        scene = scene_once
        r = await scene.post(f"/rounds/{scene.round_id}/sync", {"events": events}, "P1")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["applied"] + body["duplicates"] + len(body["rejected"]) == len(events)


@pytest.fixture
async def scene_once(scene):
    return scene


class TestWalkIns:
    def walk_in(self, event_id, tube, n, **extra):
        event = sample(event_id, tube, None)
        del event["resident_code"]
        event["resident"] = {
            "id_type": "prc_id",
            "id_number": valid_prc_id(n),
            "name": f"李四{n}",
            **extra,
        }
        return event

    async def test_a_walk_in_is_registered_and_sampled_in_one_event(self, scene):
        tube = scene.barcodes["P1"][0]
        body = await sync(scene, [self.walk_in("w1", tube, 500, phone="13900000000")])
        assert body["applied"] == 1, body
        [registered] = body["registered"]
        assert registered["event_id"] == "w1"
        code = registered["resident_code"]
        state = await scene.client.get(
            f"/rounds/{scene.round_id}/tubes/{tube}", headers=scene.tokens["P1"]
        )
        assert [m["resident_code"] for m in state.json()["members"]] == [code]
        person = await scene.client.get(f"/residents/{code}", headers=scene.tokens["admin"])
        assert person.json()["district"] == "D1"  # the district of the station's point
        query = await scene.client.post(
            "/results/query", json={"id_number": valid_prc_id(500), "name": "李四500"}
        )
        assert query.json()["items"][0]["status"] == "pending"

    async def test_a_walk_in_sent_again_answers_its_code_again(self, scene):
        tube = scene.barcodes["P1"][0]
        event = self.walk_in("w1", tube, 504)
        first = await sync(scene, [event])
        again = await sync(scene, [event])
        assert again["duplicates"] == 1 and again["applied"] == 0
        assert again["registered"] == first["registered"]

    async def test_a_known_person_walking_in_keeps_their_code(self, scene):
        tube = scene.barcodes["P1"][0]
        event = self.walk_in("w1", tube, 0)
        event["resident"]["name"] = scene.names[0]
        body = await sync(scene, [event])
        assert body["registered"] == [{"event_id": "w1", "resident_code": scene.codes[0]}]

    async def test_a_walk_in_with_a_bad_id_number_is_rejected_and_nobody_registered(
        self, scene, db_session
    ):
        tube = scene.barcodes["P1"][0]
        before = await counts(db_session)
        bad = self.walk_in("w1", tube, 501)
        bad["resident"]["id_number"] = bad["resident"]["id_number"][:-1] + (
            "0" if bad["resident"]["id_number"][-1] != "0" else "1"
        )
        missing = self.walk_in("w2", tube, 502)
        del missing["resident"]["name"]
        body = await sync(scene, [bad, missing])
        assert rejected(body) == {"w1": "invalid-id-number", "w2": "invalid-event"}
        assert "resident.name" in body["rejected"][1]["detail"]
        assert await counts(db_session) == before

    async def test_a_walk_in_refused_by_the_tube_is_not_registered(self, scene, db_session):
        tube = scene.barcodes["P1"][0]
        await scene.fill(tube, range(10))
        before = await counts(db_session)
        body = await sync(scene, [self.walk_in("w1", tube, 503)])
        assert rejected(body) == {"w1": "tube-full"}
        assert body["registered"] == []
        assert await counts(db_session) == before


class TestNothingCreatedForARejectedEvent:
    async def test_another_points_barcodes_stay_unused_whatever_the_kind(self, scene, db_session):
        theirs = scene.barcodes["P2"][:3]
        before = await counts(db_session)
        body = await sync(
            scene,
            [
                sample("a", theirs[0], scene.codes[0], kind="single"),
                sample("b", theirs[1], scene.codes[1]),
                {"event_id": "c", "type": "seal", "tube": theirs[2]},
            ],
        )
        assert rejected(body) == {"a": "forbidden", "b": "forbidden", "c": "forbidden"}
        assert await counts(db_session) == before
        r = await scene.sample(theirs[0], scene.codes[0], who="P2")
        assert (r.status_code, r.json()["kind"]) == (201, "pool")

    async def test_an_unknown_resident_opens_no_tube(self, scene, db_session):
        tube = scene.barcodes["P1"][0]
        before = await counts(db_session)
        body = await sync(scene, [sample("a", tube, new_resident_code(), kind="single")])
        assert rejected(body) == {"a": "unknown-resident"}
        assert await counts(db_session) == before
        r = await scene.sample(tube, scene.codes[0])
        assert (r.status_code, r.json()["kind"]) == (201, "pool")

    async def test_a_tube_opened_by_a_batch_is_counted_and_timed_by_its_swabs(
        self, scene, db_session
    ):
        tube = scene.barcodes["P1"][0]
        at = "2026-11-22T09:00:00+08:00"
        await sync(scene, [sample(f"e{i}", tube, scene.codes[i], at=at) for i in range(10)])
        row = (
            await db_session.execute(
                text("SELECT count, state, opened_at, sealed_at FROM tubes WHERE serial = :s"),
                {"s": parse_barcode(tube)},
            )
        ).one()
        moment = datetime.fromisoformat(at).astimezone(UTC)
        assert (row.count, row.state, row.opened_at, row.sealed_at) == (
            10,
            "sealed",
            moment,
            moment,
        )
        progress = await scene.client.get(
            f"/rounds/{scene.round_id}/progress", headers=scene.tokens["admin"]
        )
        assert progress.json()["tubes"]["sealed"] == 1
        assert progress.json()["registered"] == 10


_PLAIN_TIMES = st.datetimes(
    min_value=datetime(1990, 1, 1),
    max_value=datetime(2110, 1, 1),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=8)), timezone(-timedelta(hours=5, minutes=30))]
    ),
).map(lambda d: d.isoformat())
_ODD_TIMES = st.one_of(
    st.sampled_from(
        [
            "2026-11-22T09:00:00Z",
            "2026-11-22T09:00:00.5+08:00",
            "2026-11-22T09:00:00.1234567+08:00",
            "2026-11-22 09:00:00+08:00",
            "2026-11-22T09:00+08:00",
            "2026-11-22T09:00:00+0800",
            "2026-13-22T09:00:00+08:00",
            "2026-11-22T24:00:00+08:00",
            "2026-11-22T09:00:60+08:00",
            "2026-11-22T09:00:00+24:00",
            "2026-11-22T09:00:00",
            "0001-01-01T00:00:00+01:00",
            "١٢٣٤-11-22T09:00:00+08:00",
            "1700000000",
        ]
    ),
    st.integers(),
    st.booleans(),
)
_ODD_TEXT = st.one_of(
    st.text(max_size=45),
    st.sampled_from([" a", "a ", "\x1ca", "a\x00b", "\u2003a", "\u00e9", "x" * 101, ""]),
    st.integers(),
    st.booleans(),
    st.lists(st.text(max_size=3), max_size=2),
)


def _mostly(plausible, odd):
    """A field as a station writes it seven times in eight, else an odd value."""
    return st.integers(0, 7).flatmap(lambda n: plausible if n else odd)


def _ascii(max_size):
    return st.text(
        alphabet=st.characters(min_codepoint=1, max_codepoint=127), min_size=1, max_size=max_size
    )


_EVENTS = st.fixed_dictionaries(
    {
        "event_id": _mostly(_ascii(101), _ODD_TEXT),
        "type": _mostly(st.sampled_from(["sample", "seal"]), _ODD_TEXT),
        "tube": _mostly(_ascii(41), _ODD_TEXT),
        "at": _mostly(st.one_of(_PLAIN_TIMES, st.none()), _ODD_TIMES),
        "resident_code": _mostly(_ascii(41), _ODD_TEXT),
        "kind": _mostly(st.sampled_from([None, "pool", "single"]), _ODD_TEXT),
        "resident": _mostly(st.none(), st.just({"id_type": "other"})),
        "extra": _ODD_TEXT,
    }
).flatmap(
    lambda event: _mostly(st.just(frozenset()), st.sets(st.sampled_from(sorted(event)))).map(
        lambda dropped: {k: v for k, v in event.items() if k not in dropped}
    )
)


class TestPlainlyWrittenEvents:
    """Events in the shape stations send are read without building a SyncEvent
    (screening.sampling.events._plain): whatever it takes, SyncEvent takes too, and
    reads the same; anything else is left to SyncEvent."""

    @settings(max_examples=500, deadline=None)
    @given(_EVENTS)
    def test_what_the_plain_reader_takes_sync_event_reads_alike(self, raw):
        plain = _plain(raw)
        if plain is None:
            return
        model = SyncEvent.model_validate(raw)
        assert plain == (
            model.event_id,
            model.type,
            model.tube,
            model.at,
            model.resident_code,
            model.kind,
        )
        assert plain[3] is None or plain[3].tzinfo == UTC

    def test_the_shape_stations_send_is_read_plainly(self):
        raw = {
            "event_id": "e1",
            "type": "sample",
            "tube": "00000000012342",
            "resident_code": "0123456789ABC",
            "at": "2026-11-22T09:00:00.25+08:00",
            "kind": "single",
        }
        assert _plain(raw) == (
            "e1",
            "sample",
            "00000000012342",
            datetime(2026, 11, 22, 1, 0, 0, 250000, tzinfo=UTC),
            "0123456789ABC",
            "single",
        )

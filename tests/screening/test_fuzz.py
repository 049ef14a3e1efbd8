"""schemathesis against the service's own OpenAPI schema, on a running `screening
serve`, with an admin token: whatever it sends, no answer is a 5xx. Bounded (a few
examples an operation) to fit CI; ``SCREENING_FUZZ_EXAMPLES`` raises it. The live
feed, which streams until the client goes, is left out.

Three runs:
- every operation alone, with generated parameters and bodies;
- the multipart endpoints (lab uploads, census imports) against a lab and districts
  that exist, with generated *files*: random bytes, and real instrument and census
  files cut, spliced, NUL-poisoned, re-encoded or stretched, so the parsers are
  reached instead of a 404 for a random lab code;
- stateful: sequences that follow OpenAPI links added here (a round's id into its
  plan, barcodes, samples, close and report; a range into its labels; a lab into its
  uploads; a sample's tube into its seal; a box into its dispatch and receipt), so
  calls reach real objects in every state a sequence leaves them in.
"""

from __future__ import annotations

import contextlib
import os
import random
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky

from screening.app import create_app
from screening.config import Settings

EXAMPLES = int(os.environ.get("SCREENING_FUZZ_EXAMPLES", "8"))
FIXTURES = Path(__file__).parents[1] / "lab_io" / "fixtures"
PREFIX = "/api/v1"

SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=not os.environ.get("SCREENING_FUZZ_EXAMPLES"),
    database=None,
)

# (source method, path, status) -> [(target method, path, {parameter: expression})]
LINKS: dict[tuple[str, str, str], list[tuple[str, str, dict[str, str]]]] = {
    ("post", "/rounds", "201"): [
        (method, path, {"round_id": "$response.body#/id"})
        for method, path in (
            ("get", "/rounds/{round_id}"),
            ("get", "/rounds/{round_id}/plan"),
            ("post", "/rounds/{round_id}/barcodes"),
            ("post", "/rounds/{round_id}/samples"),
            ("post", "/rounds/{round_id}/sync"),
            ("get", "/rounds/{round_id}/progress"),
            ("get", "/rounds/{round_id}/retests"),
            ("get", "/rounds/{round_id}/advice"),
            ("get", "/rounds/{round_id}/report.pdf"),
            ("post", "/rounds/{round_id}/close"),
        )
    ],
    ("post", "/rounds/{round_id}/barcodes", "201"): [
        (
            method,
            path,
            {"round_id": "$request.path.round_id", "range_id": "$response.body#/range_id"},
        )
        for method, path in (
            ("get", "/rounds/{round_id}/barcodes/{range_id}"),
            ("get", "/rounds/{round_id}/barcodes/{range_id}/labels.pdf"),
        )
    ],
    ("post", "/rounds/{round_id}/samples", "201"): [
        (method, path, {"round_id": "$request.path.round_id", "tube": "$response.body#/tube"})
        for method, path in (
            ("post", "/rounds/{round_id}/tubes/{tube}/seal"),
            ("get", "/rounds/{round_id}/tubes/{tube}"),
        )
    ],
    ("post", "/labs", "201"): [
        ("post", "/labs/{lab}/results", {"lab": "$response.body#/code"}),
        ("get", "/labs/{lab}/uploads", {"lab": "$response.body#/code"}),
    ],
    ("post", "/labs/{lab}/results", "200"): [
        (
            "get",
            "/labs/{lab}/uploads/{upload_id}",
            {"lab": "$request.path.lab", "upload_id": "$response.body#/upload_id"},
        ),
    ],
    ("post", "/residents", "201"): [
        ("get", "/residents/{resident_code}", {"resident_code": "$response.body#/resident_code"}),
    ],
    ("post", "/boxes", "201"): [
        (method, path, {"barcode": "$response.body#/barcode"})
        for method, path in (
            ("get", "/boxes/{barcode}"),
            ("post", "/boxes/{barcode}/dispatch"),
            ("post", "/boxes/{barcode}/receive"),
        )
    ],
}


def linked(document: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with LINKS written into its responses (by operationId; a
    path or status that is gone fails here, loudly)."""
    paths = document["paths"]
    for (method, path, status), targets in LINKS.items():
        response = paths[PREFIX + path][method]["responses"][status]
        response["links"] = {
            f"{target_method}{target}".replace("/", "_").replace("{", "").replace("}", ""): {
                "operationId": paths[PREFIX + target][target_method]["operationId"],
                "parameters": parameters,
            }
            for target_method, target, parameters in targets
        }
    return document


DOCUMENT = linked(create_app(Settings(admin_token="schema-only")).openapi())
schema = schemathesis.openapi.from_dict(DOCUMENT).exclude(path=f"{PREFIX}/events")
MULTIPART = [
    (path[len(PREFIX) :], method)
    for path, operations in DOCUMENT["paths"].items()
    for method, operation in operations.items()
    if "multipart/form-data" in operation.get("requestBody", {}).get("content", {})
]


@pytest.fixture(scope="module")
def service(live_module):
    """The running service, with a lab FZL, a district FZD and its point FZP for
    generated files and sequences to land in."""
    admin = {"Authorization": f"Bearer {live_module.admin_token}"}
    with httpx.Client(base_url=live_module.base + PREFIX, headers=admin, timeout=30) as client:
        for path, body in (
            ("/districts", {"code": "FZD", "name": "模糊区", "population": 1000}),
            ("/labs", {"code": "FZL", "name": "模糊实验室", "daily_capacity_tubes": 1000}),
            (
                "/sampling-points",
                {
                    "code": "FZP",
                    "name": "模糊采样点",
                    "address": "模糊路1号",
                    "district": "FZD",
                    "stations": 2,
                    "people_per_hour_per_station": 60,
                },
            ),
        ):
            r = client.post(path, json=body)
            assert r.status_code in (201, 409), r.text
    return live_module


def no_5xx(case: Any, response: Any) -> None:
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} {case.query} {case.body!r:.300}"
        f" -> {response.status_code}: {response.text[:300]}"
    )


@schema.parametrize()
@SETTINGS
def test_no_request_makes_the_service_fail(case, service):
    response = case.call(
        base_url=service.base,
        headers={"Authorization": f"Bearer {service.admin_token}"},
        timeout=30,
    )
    no_5xx(case, response)


SAMPLES = [
    *(path.read_bytes() for path in sorted(FIXTURES.iterdir())),
    b"id_type,id_number,name,phone,district\npassport,E1234567,Bob,13800000000,FZD\n"
    b"prc_id,110105198001010019,\xe5\xbc\xa0\xe4\xb8\x89,,FZD\n",
]


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One of the ways a real file goes wrong on its way from an instrument."""
    cut = rng.randrange(len(data) + 1)
    return rng.choice(
        [
            lambda: data[:cut],  # truncated
            lambda: data[:cut] + b"\x00" + data[cut:],  # a NUL inside
            lambda: data[:cut] + data[cut:][::-1],  # scrambled tail
            lambda: data.replace(b",", b";"),  # another separator
            lambda: data.replace(b"\n", b"\r\n") + b"\n\n\n",  # CRLF and blank lines
            lambda: data.decode("utf-8", "replace").encode("utf-16"),  # re-encoded
            lambda: data[:cut] + b"9" * rng.choice([300, 70_000, 140_000]) + data[cut:],
            lambda: data + data,  # sent twice in one
            lambda: bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4096))),
        ]
    )()


@schema.include(path_regex="|".join(f"^{PREFIX}{path}$" for path, _ in MULTIPART)).parametrize()
@schema.given(seed=st.integers(0, 2**32), sample=st.sampled_from(SAMPLES))
@SETTINGS
def test_no_generated_file_makes_an_upload_fail(case, seed, sample, service):
    rng = random.Random(seed)
    if "lab" in (case.path_parameters or {}):
        case.path_parameters["lab"] = "FZL"
    body = case.body if isinstance(case.body, dict) else {}
    body["file"] = mutate(sample, rng) if rng.random() < 0.8 else sample
    body = {k: v for k, v in body.items() if k in ("file", "format", "plate")}
    case.body = body
    response = case.call(
        base_url=service.base,
        headers={"Authorization": f"Bearer {service.admin_token}"},
        timeout=120,
    )
    no_5xx(case, response)


def test_the_multipart_run_covers_every_upload_endpoint():
    assert sorted(MULTIPART) == [("/labs/{lab}/results", "post"), ("/residents/import", "post")]


def test_following_links_never_makes_the_service_fail(service):
    # The service keeps what every sequence did, so hypothesis cannot replay a sequence
    # and get the same answers: it calls that flaky (schemathesis's own runner takes it
    # as the end of a suite, and so does this test) and could not shrink a failure.
    # Failures are therefore collected, each with the calls that led to it.
    failures: list[str] = []
    calls: list[str] = []
    scenario: list[str] = []

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self):
            scenario.clear()

        def get_call_kwargs(self, case):
            return {
                "base_url": service.base,
                "headers": {"Authorization": f"Bearer {service.admin_token}"},
                "timeout": 60,
            }

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            scenario.append(f"{case.method} {case.path} -> {response.status_code}")
            calls.append(scenario[-1])
            try:
                no_5xx(case, response)
            except AssertionError as failure:
                failures.append(f"{failure}\n  after: {' | '.join(scenario[-6:])}")

        def before_call(self, case):
            # Random district and point codes never exist: half the rounds and ranges
            # are made over real ones, so the links have something to follow.
            body = case.body
            if not isinstance(body, dict) or len(repr(body)) % 2:
                return
            if case.method == "POST" and case.path == f"{PREFIX}/rounds":
                body |= {
                    "districts": ["FZD"],
                    "pool_size_by_district": {},
                    "starts_at": "2026-11-22T06:00:00+08:00",
                    "deadline": "2026-11-23T06:00:00+08:00",
                }
            elif case.method == "POST" and case.path.endswith("/barcodes"):
                body |= {"sampling_point": "FZP", "count": 1 + len(repr(body)) % 40}

    with contextlib.suppress(Flaky):
        Workflow.run(
            settings=settings(
                max_examples=max(2 * EXAMPLES, 4),
                stateful_step_count=10,
                phases=[Phase.generate],
                deadline=None,
                suppress_health_check=list(HealthCheck),
                derandomize=not os.environ.get("SCREENING_FUZZ_EXAMPLES"),
                database=None,
            )
        )
    assert not failures, "\n".join(failures)
    followed = {
        f"{PREFIX}/rounds/{{round_id}}/plan -> 200",
        f"{PREFIX}/rounds/{{round_id}}/barcodes/{{range_id}}/labels.pdf -> 200",
        f"{PREFIX}/rounds/{{round_id}} -> 200",
    }
    reached = {call.split(" ", 1)[1] for call in calls} & followed
    assert len(calls) >= 20 and reached, f"the links led nowhere: {calls[:40]}"

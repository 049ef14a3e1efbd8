"""schemathesis against the service's own OpenAPI schema, on a running `screening
serve`, with an admin token: whatever it sends, no answer is a 5xx. Bounded (a few
examples an operation) to fit CI; the live feed, which streams until the client goes,
is left out."""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from screening.app import create_app
from screening.config import Settings

schema = schemathesis.openapi.from_dict(
    create_app(Settings(admin_token="schema-only")).openapi()
).exclude(path="/api/v1/events")


@pytest.fixture(scope="module")
def service(live_module):
    return live_module


@schema.parametrize()
@settings(
    max_examples=int(os.environ.get("SCREENING_FUZZ_EXAMPLES", "8")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=not os.environ.get("SCREENING_FUZZ_EXAMPLES"),
)
def test_no_request_makes_the_service_fail(case, service):
    response = case.call(
        base_url=service.base,
        headers={"Authorization": f"Bearer {service.admin_token}"},
        timeout=30,
    )
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} {case.query} {case.body!r:.300}"
        f" -> {response.status_code}: {response.text[:300]}"
    )

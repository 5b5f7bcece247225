"""Fuzzing the Google mapper: whatever an Event resource holds, it answers, never raises."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st

from connectors.google_map import read_event
from tests.hostile.jsonread_fuzz import ZONES, check, google_events

FUZZ = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(google_events(), st.booleans(), st.sampled_from(ZONES))
def test_fuzz_google_mapper_answers_with_a_projection_or_a_problem(
        resource: Any, describe_guests: bool, default_tz: str) -> None:
    event = check(read_event(resource, owner="owner@example.com", default_tz=default_tz,
                             describe_guests=describe_guests))
    # Readable events went through every step of the mapping: steer towards them.
    target(1.0 if event.projection is not None else 0.0, label="readable")
    target(float(len(resource) if isinstance(resource, dict) else 0), label="fields")
